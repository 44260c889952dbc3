"""The few Kubernetes API calls the operator makes itself (kopf covers watching, finalizers and
handler status): read a Secret, write a status from the sweep, post an Event. Plain httpx."""

from __future__ import annotations

import base64
import datetime
import logging
import ssl
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from ..crd import GROUP, PLURALS, VERSION
from .decide import Event, RoomObject

log = logging.getLogger("roomctl.operator.kube")


class KubeError(Exception):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class KubeClient:
    """`headers` and `verify` come from kopf's login result (ConnectionInfo.as_http_headers and
    .as_ssl_context), so token, basic auth, CA and client certificates are handled once, by kopf."""

    def __init__(self, server: str, headers: Mapping[str, str], verify: ssl.SSLContext | bool,
                 timeout: float = 15.0) -> None:
        self.client = httpx.AsyncClient(base_url=server.rstrip("/"), headers=dict(headers), verify=verify,
                                        timeout=timeout)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KubeError(f"cannot reach the Kubernetes API: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise KubeError(f"{method} {path}: HTTP {response.status_code}", response.status_code)
        body: dict[str, Any] = response.json() if response.content else {}
        return body

    async def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        """The Secret's data, decoded. Raises KubeError (404, 403) without any of its content."""
        body = await self._send("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        data: Mapping[str, str] = body.get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    async def patch_status(self, obj: RoomObject, status: Mapping[str, Any]) -> None:
        plural = PLURALS.get(obj.kind, f"{obj.kind.lower()}s")
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{obj.namespace}/{plural}/{obj.name}/status"
        await self._send("PATCH", path, json={"status": dict(status)},
                         headers={"Content-Type": "application/merge-patch+json"})

    async def post_event(self, obj: RoomObject, event: Event) -> None:
        """A core/v1 Event about the object; failures are logged, never raised (events are best effort)."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{obj.name}.{uuid.uuid4().hex[:16]}", "namespace": obj.namespace},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": obj.kind, "name": obj.name,
                               "namespace": obj.namespace, "uid": obj.uid},
            "reason": event.reason,
            "message": event.message[:1024],
            "type": event.type,
            "source": {"component": "roomctl-operator"},
            "reportingComponent": "roomctl.dev/operator",
            "reportingInstance": "roomctl-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": None,
            "count": 1,
        }
        try:
            await self._send("POST", f"/api/v1/namespaces/{obj.namespace}/events", json=body)
        except KubeError as exc:
            log.warning("could not post event %s for %s: %s", event.reason, obj.key, exc)
