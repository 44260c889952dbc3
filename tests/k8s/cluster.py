"""kmock as the Kubernetes API for the real kopf loop, with the three workarounds of
kubernetes-testing.md, and the operator running in the test's own event loop."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kmock
import yaml

from reconciler.backends.twirp import RetryPolicy
from reconciler.operator.handlers import OperatorConfig, OperatorState, run
from reconciler.operator.servers import Credentials
from reconciler.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET

ROOMS = "roomctl.dev/v1alpha1/rooms"
PNM_ROOMS = "roomctl.dev/v1alpha1/plugnmeetrooms"
POLICIES = "roomctl.dev/v1alpha1/roompolicies"
PLURALS = {"Room": "rooms", "PlugNmeetRoom": "plugnmeetrooms", "RoomPolicy": "roompolicies"}
# `in kmock.objects` needs the parsed resource, not the string
RESOURCES = {"Room": kmock.resource(ROOMS), "PlugNmeetRoom": kmock.resource(PNM_ROOMS),
             "RoomPolicy": kmock.resource(POLICIES)}
ROOMS_RESOURCE = RESOURCES["Room"]
PNM_KEY, PNM_SECRET = "plugnmeet", "secret"  # the sandbox's plugNmeet credentials
_versions = itertools.count(1000)


class VersionedEmulator(kmock.KubernetesEmulator):
    """kmock, plus a new resourceVersion on every write, as a real API server does. Without it,
    kopf cannot tell a stale event (from its own finalizer patch) from a fresh one and runs a
    creation handler twice (a fourth workaround beside the three of kubernetes-testing.md)."""

    async def _handle(self, request: Any) -> Any:
        if request.action == kmock.action.UPDATE and isinstance(request.data, dict):
            request.data.setdefault("metadata", {})["resourceVersion"] = str(next(_versions))
        return await super()._handle(request)


@dataclass
class Cluster:
    mock: kmock.KubernetesEmulator
    api: httpx.AsyncClient
    state: OperatorState

    async def apply(self, name: str, spec: Any, namespace: str = "default", kind: str = "Room") -> None:
        """Create, or replace the spec and bump the generation (what the API server would do)."""
        current = self.get(name, namespace, kind)
        path = f"/apis/roomctl.dev/v1alpha1/namespaces/{namespace}/{PLURALS[kind]}"
        if current is not None:
            generation = int(current["metadata"].get("generation", 1)) + 1
            body = {"spec": spec, "metadata": {"generation": generation, "resourceVersion": str(next(_versions))}}
            r = await self.api.patch(f"{path}/{name}", json=body,
                                     headers={"Content-Type": "application/merge-patch+json"})
        else:
            body = {"apiVersion": "roomctl.dev/v1alpha1", "kind": kind,
                    # Workaround 3: kmock assigns no resourceVersion; kopf's patches need one.
                    "metadata": {"name": name, "namespace": namespace, "generation": 1,
                                 "uid": f"uid-{name}", "resourceVersion": str(next(_versions))},
                    "spec": spec}
            r = await self.api.post(path, json=body)
        r.raise_for_status()

    async def delete(self, name: str, namespace: str = "default", kind: str = "Room") -> None:
        r = await self.api.delete(f"/apis/roomctl.dev/v1alpha1/namespaces/{namespace}/{PLURALS[kind]}/{name}")
        r.raise_for_status()

    def get(self, name: str, namespace: str = "default", kind: str = "Room") -> dict[str, Any] | None:
        key = (RESOURCES[kind], namespace, name)
        if key not in self.mock.objects or self.mock.objects[key].deleted:
            return None
        return dict(self.mock.objects[key].raw)

    async def sweep(self) -> None:
        """One drift sweep now (what the background task does every interval)."""
        from reconciler.operator.handlers import sweep_once

        await sweep_once(self.state, self.state.indexes)

    def add_secret(self, name: str, data: dict[str, str], namespace: str = "default") -> None:
        import base64

        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.mock.objects["v1/secrets", namespace, name] = {"metadata": {"name": name, "namespace": namespace},
                                                            "data": encoded}

    def events(self, name: str) -> list[dict[str, Any]]:
        return [dict(obj.raw) for (res, _, _), obj in self.mock.objects.items()
                if res.plural == "events" and not obj.deleted
                and obj.raw.get("involvedObject", {}).get("name") == name]

    async def wait_for(self, predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)


async def server_rooms(url: str) -> dict[str, Any]:
    """The rooms as the official SDK lists them (an independent client of the sandbox)."""
    from livekit import api

    client = api.LiveKitAPI(url, DEFAULT_API_KEY, DEFAULT_API_SECRET, failover=False)
    try:
        listed = await client.room.list_rooms(api.ListRoomsRequest())
    finally:
        await client.aclose()
    return {room.name: room for room in listed.rooms}


def ready(obj: dict[str, Any] | None) -> str | None:
    for cond in (obj or {}).get("status", {}).get("conditions", []):
        if cond["type"] == "Ready":
            return str(cond["status"])
    return None


async def handled_rooms(livekit_url: str, names: list[str]) -> list[dict[str, Any]]:
    """Room objects as an operator leaves them: room created, finalizer, kopf's diff-base, current status."""
    import kopf

    from reconciler.backends.livekit import LiveKitBackend
    from reconciler.operator.decide import RoomObject, conclude, decide, desired_room
    from reconciler.operator.handlers import FINALIZER, settings

    backend = LiveKitBackend(livekit_url, DEFAULT_API_KEY, DEFAULT_API_SECRET, concurrency=32)
    try:
        gate = asyncio.Semaphore(32)

        async def create(name: str) -> None:
            async with gate:
                await backend.create_room({"name": name, "metadata": f"meta-{name}"})

        await asyncio.gather(*(create(n) for n in names))
        listed = {r.name: r for r in await backend.list_rooms(names)}
    finally:
        await backend.aclose()
    storage = settings().persistence.diffbase_storage
    bodies = []
    for name in names:
        raw: dict[str, Any] = {
            "apiVersion": "roomctl.dev/v1alpha1", "kind": "Room",
            "metadata": {"name": name, "namespace": "default", "generation": 1, "uid": f"uid-{name}",
                         "resourceVersion": str(next(_versions)), "finalizers": [FINALIZER], "annotations": {}},
            "spec": {"metadata": f"meta-{name}"},
        }
        patch = kopf.Patch()
        storage.store(body=kopf.Body(raw), patch=patch, essence=storage.build(body=kopf.Body(raw)))
        raw["metadata"]["annotations"].update(patch["metadata"]["annotations"])
        obj = RoomObject.from_body(raw)
        desired = desired_room(obj)
        observed = listed[name]
        raw["status"] = conclude(obj, desired, decide(desired, observed), observed, (), utc_now()).status
        bodies.append(raw)
    return bodies


def utc_now() -> str:
    from reconciler.operator.reconciler import utc_now as now

    return now()


@asynccontextmanager
async def running_operator(tmp_path: Path, livekit_url: str, monkeypatch: Any, sync_interval: float = 3600.0,
                           preload: list[dict[str, Any]] = (),  # type: ignore[assignment]
                           namespaces: tuple[str, ...] = (), liveness: str | None = None,
                           retry_first: float = 15.0, server_attempts: int | None = None,
                           webhook_listen: tuple[str, int] | None = None) -> AsyncIterator[Cluster]:
    async with VersionedEmulator() as mock, kmock.Server(mock) as server:
        mock.resources[ROOMS] = kmock.ResourceInfo(kind="Room", namespaced=True, subresources={"status"},
                                                   verbs={"list", "watch", "get", "patch"})
        mock.resources[PNM_ROOMS] = kmock.ResourceInfo(kind="PlugNmeetRoom", namespaced=True,
                                                       subresources={"status"}, verbs={"list", "watch", "get", "patch"})
        mock.resources[POLICIES] = kmock.ResourceInfo(kind="RoomPolicy", namespaced=True,
                                                      subresources={"status"}, verbs={"list", "watch", "get", "patch"})
        # Workaround 1: kopf waits for namespaces forever unless kmock serves them.
        mock.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False)
        mock.resources["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True)
        mock.resources["v1/secrets"] = kmock.ResourceInfo(kind="Secret", namespaced=True)
        for body in preload:
            resource = PNM_ROOMS if body.get("kind") == "PlugNmeetRoom" else ROOMS
            mock.objects[resource, body["metadata"]["namespace"], body["metadata"]["name"]] = body
        kubeconfig = tmp_path / "kubeconfig"
        url = str(server.url).rstrip("/")
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
            "clusters": [{"name": "kmock", "cluster": {"server": url}}],
            "users": [{"name": "u", "user": {"token": "test-token"}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "u"}}],
        }))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        config = OperatorConfig(sync_interval=sync_interval, status_refresh=3600.0, namespaces=namespaces,
                                liveness_endpoint=liveness, retry_first=retry_first, retry_cap=max(retry_first, 2.0),
                                server_retry=RetryPolicy(attempts=server_attempts, base_delay=0.05)
                                if server_attempts else None,
                                default_credentials=Credentials(livekit_url, DEFAULT_API_KEY, DEFAULT_API_SECRET),
                                plugnmeet_credentials=Credentials(livekit_url, PNM_KEY, PNM_SECRET),
                                webhook_listen=webhook_listen)
        state = OperatorState(config)
        stop, ready_flag = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(run(config, stop_flag=stop, ready_flag=ready_flag, state=state))
        async with httpx.AsyncClient(base_url=url) as api:
            await asyncio.wait_for(ready_flag.wait(), 20)
            try:
                yield Cluster(mock, api, state)
            finally:
                stop.set()
                try:
                    await asyncio.wait_for(task, 20)
                except TimeoutError:
                    task.cancel()
