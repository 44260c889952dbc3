"""The few Kubernetes API calls the operator makes itself (kopf covers watching, finalizers and
handler status): read a Secret, write a status from the sweep, post an Event. Plain httpx."""

from __future__ import annotations

import base64
import datetime
import logging
import ssl
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..crd import GROUP, VERSION
from .decide import Event, RoomObject

log = logging.getLogger("roomctl.operator.kube")


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to authenticate (filled from kopf's login result)."""

    server: str
    token: str | None = None
    ca_path: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    certificate_path: str | None = None
    certificate_data: bytes | None = None
    private_key_path: str | None = None
    private_key_data: bytes | None = None

    def __repr__(self) -> str:
        return f"Connection(server={self.server!r})"  # never the token


class KubeError(Exception):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _ssl_context(conn: Connection) -> ssl.SSLContext | bool:
    if not conn.server.startswith("https"):
        return True
    if conn.insecure:
        return False
    context = ssl.create_default_context(cafile=conn.ca_path)
    if conn.ca_data:
        context.load_verify_locations(cadata=conn.ca_data.decode())
    cert, key = conn.certificate_path, conn.private_key_path
    if conn.certificate_data and conn.private_key_data:
        # ssl only loads client certificates from files.
        with tempfile.NamedTemporaryFile("wb", delete=False, suffix=".crt") as c_file:
            c_file.write(conn.certificate_data)
        with tempfile.NamedTemporaryFile("wb", delete=False, suffix=".key") as k_file:
            k_file.write(conn.private_key_data)
        cert, key = c_file.name, k_file.name
    if cert:
        context.load_cert_chain(cert, key)
    return context


class KubeClient:
    def __init__(self, conn: Connection, timeout: float = 15.0) -> None:
        headers = {"Authorization": f"Bearer {conn.token}"} if conn.token else {}
        self.client = httpx.AsyncClient(base_url=conn.server.rstrip("/"), headers=headers,
                                        verify=_ssl_context(conn), timeout=timeout)

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
        plural = f"{obj.kind.lower()}s"
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
