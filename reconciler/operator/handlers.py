"""The kopf wiring: the only module that imports kopf. Handlers gather inputs, call the
Reconciler (which calls the shared plan/execute and the pure decisions), and carry out the
result: status patch, events, retry. The sweep is one task over the kopf index of all Rooms."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import kopf

from ..backends.errors import BackendError
from ..crd import GROUP, VERSION
from . import metrics
from .decide import CredentialsError, Event, Outcome, RoomObject, status_changed
from .kube import KubeClient
from .reconciler import Reconciler
from .servers import Credentials, ServerPool, server_key

log = logging.getLogger("roomctl.operator")

FINALIZER = f"{GROUP}/finalizer"
INDEX = "rooms_by_server"


@dataclass
class OperatorConfig:
    namespaces: Collection[str] = ()  # empty: all namespaces
    sync_interval: float = 60.0
    # A status whose only change would be lastSyncTime is written at most this often.
    status_refresh: float = 300.0
    liveness_endpoint: str | None = None  # e.g. http://0.0.0.0:8080/healthz
    metrics_port: int | None = None
    default_credentials: Credentials | None = None
    request_timeout: float = 10.0


@dataclass
class OperatorState:
    """Everything a running operator holds; one per registry, so tests can run several."""

    config: OperatorConfig
    kube: KubeClient | None = None
    pool: ServerPool | None = None
    reconciler: Reconciler | None = None
    sweeps: int = 0
    swept: int = 0  # objects in the last sweep
    last_sweep: str = ""
    sweep_task: asyncio.Task[None] | None = None
    outcomes: list[tuple[str, Outcome]] = field(default_factory=list)  # the last sweep's, for tests

    def connected_reconciler(self) -> Reconciler:
        if self.reconciler is None:
            self.pool = ServerPool(self.config.default_credentials, lambda: self.kube,
                                   timeout=self.config.request_timeout, on_call=metrics.observe_call)
            self.reconciler = Reconciler(self.pool)
        return self.reconciler

    async def post(self, obj: RoomObject, events: Collection[Event]) -> None:
        if self.kube is not None:
            for event in events:
                await self.kube.post_event(obj, event)


def settings() -> kopf.OperatorSettings:
    result = kopf.OperatorSettings()
    result.persistence.finalizer = FINALIZER
    # Progress and diff-base in roomctl.dev annotations, not kopf's defaults: status stays ours.
    result.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    result.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP,
                                                                          key="last-handled-configuration")
    # No CRD/namespace watching (and so no RBAC for them): the CRDs are installed before the operator.
    result.scanning.disabled = True
    # Our own events carry stable reasons; kopf's per-handler events would only repeat them.
    result.posting.enabled = False
    result.peering.standalone = True  # one replica, Recreate: no peering objects needed
    return result


def _seconds_since(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        then = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return None
    return (datetime.datetime.now(datetime.UTC) - then).total_seconds()


def _raise_for(outcome: Outcome) -> None:
    failure = outcome.failure
    if failure is None:
        return
    if failure.retry == "permanent":
        # No crash loop: the condition says why; the sweep tries again every interval (a fixed Secret heals it).
        raise kopf.PermanentError(f"{failure.reason}: {failure.message}")
    raise kopf.TemporaryError(f"{failure.reason}: {failure.message}", delay=failure.delay)


def build_registry(state: OperatorState) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    room = (GROUP, VERSION, "rooms")

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is not None:
            verify = info.as_ssl_context() if info.server.startswith("https") else True
            state.kube = KubeClient(info.server, info.as_http_headers(), verify)
        return info

    @kopf.index(*room, id=INDEX, registry=registry)
    def rooms_by_server(body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, namespace: str | None,
                        **_: Any) -> dict[str, RoomObject] | None:
        if meta.get("deletionTimestamp") or namespace is None:
            return None  # going away: the delete handler owns it now
        return {server_key(namespace, spec): RoomObject.from_body(body)}

    @kopf.on.startup(registry=registry)
    async def startup(**kwargs: Any) -> None:
        index: kopf.Index[str, RoomObject] = kwargs[INDEX]  # kopf passes each index by its name
        if state.config.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(state.config.metrics_port, registry=metrics.REGISTRY)
        state.connected_reconciler()
        state.sweep_task = asyncio.create_task(_sweep_forever(state, index), name="roomctl sweep")

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if state.sweep_task is not None:
            state.sweep_task.cancel()
        if state.pool is not None:
            await state.pool.aclose()
        if state.kube is not None:
            await state.kube.aclose()

    @kopf.on.probe(id="lastSweep", registry=registry)
    def last_sweep(**_: Any) -> str:
        return state.last_sweep

    async def reconcile(body: kopf.Body, patch: kopf.Patch, trigger: str) -> None:
        obj = RoomObject.from_body(body)
        outcome = await state.connected_reconciler().reconcile(obj, trigger)
        patch.status.update(outcome.status)
        await state.post(obj, outcome.events)
        _raise_for(outcome)

    @kopf.on.create(*room, registry=registry)
    async def created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await reconcile(body, patch, "create")

    @kopf.on.update(*room, registry=registry)
    async def updated(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await reconcile(body, patch, "update")

    @kopf.on.resume(*room, registry=registry)
    async def resumed(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, meta: kopf.Meta, **_: Any) -> None:
        if status.get("observedGeneration") == meta.get("generation") and status.get("roomName"):
            # Handled before the restart and unchanged since: the batched sweep re-checks it, so a
            # restart with 1,000 Rooms costs one ListRooms, not 1,000 individual reconciles.
            return
        await reconcile(body, patch, "resume")

    @kopf.on.delete(*room, registry=registry)
    async def deleted(body: kopf.Body, **_: Any) -> None:
        obj = RoomObject.from_body(body)
        try:
            event = await state.connected_reconciler().delete(obj)
        except (BackendError, CredentialsError) as exc:
            # The finalizer stays until the room is really gone (or the policy says Orphan).
            await state.post(obj, [Event("Warning", "SyncFailed", f"deleting the room failed: {exc}")])
            raise kopf.TemporaryError(f"deleting the room failed: {exc}", delay=30) from None
        await state.post(obj, [event])

    return registry


async def _sweep_forever(state: OperatorState, index: kopf.Index[str, RoomObject]) -> None:
    while True:
        await asyncio.sleep(state.config.sync_interval)
        try:
            await sweep_once(state, index)
        except Exception:  # the loop must outlive any one bad sweep
            log.exception("drift sweep failed")


async def sweep_once(state: OperatorState, index: kopf.Index[str, RoomObject]) -> None:
    objects = [obj for key in list(index) for obj in list(index.get(key, []))]
    metrics.ROOMS.set(len(objects))
    outcomes = await state.connected_reconciler().sweep(objects)
    gate = asyncio.Semaphore(16)

    async def write(obj: RoomObject, outcome: Outcome) -> None:
        async with gate:
            if state.kube is None:
                return
            since = _seconds_since(obj.status.get("lastSyncTime"))
            if status_changed(obj.status, outcome.status, since, state.config.status_refresh):
                try:
                    await state.kube.patch_status(obj, outcome.status)
                except Exception as exc:
                    log.warning("could not write the status of %s: %s", obj.key, exc)
            await state.post(obj, outcome.events)

    await asyncio.gather(*(write(obj, outcome) for obj, outcome in outcomes))
    state.outcomes = [(obj.key, outcome) for obj, outcome in outcomes]
    state.swept = len(objects)
    state.sweeps += 1
    state.last_sweep = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def run(config: OperatorConfig, *, stop_flag: asyncio.Event | None = None,
              ready_flag: asyncio.Event | None = None, state: OperatorState | None = None) -> None:
    state = state or OperatorState(config)
    await kopf.operator(
        registry=build_registry(state),
        settings=settings(),
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        liveness_endpoint=config.liveness_endpoint,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
