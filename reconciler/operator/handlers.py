"""The kopf wiring (with operator/webhook.py, which registers its own index and endpoint). Handlers gather inputs, call the
Reconciler (which calls the shared plan/execute and the pure decisions), and carry out the
result: status patch, events, retry. The same handlers serve Room and PlugNmeetRoom; the sweep is
one task over the kopf indexes of both."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import kopf
import yaml

from ..backends.errors import BackendError
from ..backends.twirp import RetryPolicy
from ..crd import GROUP, PLUGNMEET_ROOM, ROOM, ROOM_POLICY, VERSION, Kind
from . import metrics, webhook
from .decide import CredentialsError, Event, Outcome, RoomObject, backoff, failed, failure_for, status_changed
from .kube import KubeClient
from .reconciler import Reconciler
from .servers import Credentials, ServerPool, server_key

log = logging.getLogger("roomctl.operator")

FINALIZER = f"{GROUP}/finalizer"
INDEX = "rooms_by_server"
# The kinds reconciled as rooms, each with its own kopf index (kopf passes an index by its id).
ROOM_KINDS: tuple[Kind, ...] = (ROOM, PLUGNMEET_ROOM)
POLICY_INDEX = "roompolicies_by_server"
INDEXES = {ROOM.kind: INDEX, PLUGNMEET_ROOM.kind: "plugnmeetrooms_by_server", ROOM_POLICY.kind: POLICY_INDEX}


@dataclass
class OperatorConfig:
    namespaces: Collection[str] = ()  # empty: all namespaces
    sync_interval: float = 60.0
    # A status whose only change would be lastSyncTime is written at most this often.
    status_refresh: float = 300.0
    liveness_endpoint: str | None = None  # e.g. http://0.0.0.0:8080/healthz
    metrics_port: int | None = None
    default_credentials: Credentials | None = None
    plugnmeet_credentials: Credentials | None = None
    request_timeout: float = 10.0
    # Temporary failures (outage, 429) are retried after retry_first, 2x, 4x, ... up to retry_cap seconds.
    retry_first: float = 15.0
    retry_cap: float = 600.0
    server_retry: RetryPolicy | None = None  # attempts per server call; None: the backends' defaults
    # The LiveKit webhook endpoint (operator/webhook.py): (host, port), None disables it.
    webhook_listen: tuple[str, int] | None = None
    webhook_queue_size: int = 1000


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
    indexes: list[kopf.Index[str, RoomObject]] = field(default_factory=list)  # one per kind (RoomPolicy too)
    policy_index: kopf.Index[str, RoomObject] | None = None
    outcomes: list[tuple[str, Outcome]] = field(default_factory=list)  # the last sweep's, for tests
    webhook: Any = None  # the running WebhookEndpoint, when enabled

    def connected_reconciler(self) -> Reconciler:
        if self.reconciler is None:
            self.pool = ServerPool(self.config.default_credentials, lambda: self.kube,
                                   plugnmeet_default=self.config.plugnmeet_credentials,
                                   timeout=self.config.request_timeout, on_call=metrics.observe_call,
                                   retry=self.config.server_retry)
            self.reconciler = Reconciler(self.pool, policy_objects=self.policy_objects)
        return self.reconciler

    def policy_objects(self) -> list[RoomObject]:
        index = self.policy_index
        return [] if index is None else [obj for key in list(index) for obj in list(index.get(key, []))]

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


def kube_config_problem() -> str | None:
    """Why kopf could not log in to any cluster, in one line; None when it can. Checked before kopf
    starts: without it kopf retries its login forever, a traceback each time."""
    settings_ = settings()
    where = os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        info = (kopf.login_with_service_account(settings=settings_)
                or kopf.login_with_kubeconfig(settings=settings_))
    except OSError as exc:
        return f"cannot read the kubeconfig {exc.filename or where}: {exc.strerror}"
    except kopf.LoginError as exc:
        return f"kubeconfig {where}: {exc}"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return f"kubeconfig {where}: not valid YAML" + (f" (line {mark.line + 1})" if mark else "")
    except KeyError as exc:
        return f"kubeconfig {where}: context, cluster or user {exc} not found"
    except Exception as exc:  # any other shape kopf's reader trips on: still one line, no traceback
        return f"kubeconfig {where}: malformed ({type(exc).__name__})"
    if info is None:
        return ("no Kubernetes configuration: not in a cluster (no service account token) and no kubeconfig "
                "(set KUBECONFIG or create ~/.kube/config)")
    if not info.server:
        return f"kubeconfig {where}: the current context's cluster has no server"
    return None


def _raise_for(outcome: Outcome, retry: int, config: OperatorConfig) -> None:
    failure = outcome.failure
    if failure is None:
        return
    if failure.retry == "permanent":
        # No crash loop: the condition says why; the sweep tries again every interval (a fixed Secret heals it).
        raise kopf.PermanentError(f"{failure.reason}: {failure.message}")
    delay = backoff(failure, retry, config.retry_first, config.retry_cap)
    raise kopf.TemporaryError(f"{failure.reason}: {failure.message}", delay=delay)


def build_registry(state: OperatorState) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    for kind in ROOM_KINDS:
        _register_kind(registry, state, kind)
    _register_policies(registry, state)
    webhook.register(registry, state)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is not None:
            verify = info.as_ssl_context() if info.server.startswith("https") else True
            state.kube = KubeClient(info.server, info.as_http_headers(), verify)
        return info

    @kopf.on.startup(registry=registry)
    async def startup(**kwargs: Any) -> None:
        state.indexes = [kwargs[i] for i in INDEXES.values()]  # kopf passes each index by its id
        state.policy_index = kwargs[POLICY_INDEX]
        if state.config.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(state.config.metrics_port, registry=metrics.REGISTRY)
        state.connected_reconciler()
        state.sweep_task = asyncio.create_task(_sweep_forever(state, state.indexes), name="roomctl sweep")

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

    return registry


def _register_kind(registry: kopf.OperatorRegistry, state: OperatorState, kind: Kind) -> None:
    """The handlers of one room kind (Room, PlugNmeetRoom): identical, the Reconciler picks the kind's ops."""
    resource = (GROUP, VERSION, kind.plural)

    @kopf.index(*resource, id=INDEXES[kind.kind], registry=registry)
    def by_server(body: kopf.Body, meta: kopf.Meta, namespace: str | None,
                  **_: Any) -> dict[str, RoomObject] | None:
        if meta.get("deletionTimestamp") or namespace is None:
            return None  # going away: the delete handler owns it now
        obj = RoomObject.from_body(body)
        return {server_key(namespace, obj.spec, kind.kind): obj}

    async def reconcile(body: kopf.Body, patch: kopf.Patch, trigger: str, retry: int) -> None:
        obj = RoomObject.from_body(body)
        try:
            outcome = await state.connected_reconciler().reconcile(obj, trigger)
        except Exception as exc:  # a bug: reported in status and retried with backoff, never a tight loop
            log.exception("%s %s %s", trigger, kind.kind, obj.key)
            outcome = failed(obj, failure_for(exc), state.connected_reconciler().now())
        patch.status.update(outcome.status)
        await state.post(obj, outcome.events)
        _raise_for(outcome, retry, state.config)

    @kopf.on.create(*resource, registry=registry)
    async def created(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
        await reconcile(body, patch, "create", retry)

    @kopf.on.update(*resource, registry=registry)
    async def updated(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
        await reconcile(body, patch, "update", retry)

    @kopf.on.resume(*resource, registry=registry)
    async def resumed(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, meta: kopf.Meta, retry: int,
                      **_: Any) -> None:
        if status.get("observedGeneration") == meta.get("generation") and status.get("roomName"):
            # Handled before the restart and unchanged since: the batched sweep re-checks it, so a
            # restart with 1,000 objects costs one observation per server, not 1,000 reconciles.
            return
        await reconcile(body, patch, "resume", retry)

    @kopf.on.delete(*resource, registry=registry)
    async def deleted(body: kopf.Body, retry: int, **_: Any) -> None:
        obj = RoomObject.from_body(body)
        try:
            event = await state.connected_reconciler().delete(obj)
        except (BackendError, CredentialsError) as exc:
            # The finalizer stays until the room is really gone (or the policy says Orphan): a room
            # is never deleted, nor its object let go, on an observation that failed.
            failure = failure_for(exc)
            await state.post(obj, [Event("Warning", "SyncFailed", f"deleting the room failed: {exc}")])
            delay = backoff(failure, retry, state.config.retry_first, state.config.retry_cap)
            raise kopf.TemporaryError(f"deleting the room failed: {exc}", delay=delay) from None
        await state.post(obj, [event])


def _register_policies(registry: kopf.OperatorRegistry, state: OperatorState) -> None:
    """RoomPolicy: indexed by server (the sweep enforces it with that server's Rooms); a created or
    changed policy is validated at once (operator/policy.py), enforced by the next sweep."""
    resource = (GROUP, VERSION, ROOM_POLICY.plural)

    @kopf.index(*resource, id=POLICY_INDEX, registry=registry)
    def by_server(body: kopf.Body, meta: kopf.Meta, namespace: str | None,
                  **_: Any) -> dict[str, RoomObject] | None:
        if meta.get("deletionTimestamp") or namespace is None:
            return None
        obj = RoomObject.from_body(body)
        return {server_key(namespace, obj.spec, ROOM_POLICY.kind): obj}

    @kopf.on.create(*resource, registry=registry)
    @kopf.on.update(*resource, registry=registry)
    @kopf.on.resume(*resource, registry=registry)
    async def changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        obj = RoomObject.from_body(body)
        outcome = state.connected_reconciler().check_policy(obj)
        patch.status.update(outcome.status)
        await state.post(obj, outcome.events)


async def _sweep_forever(state: OperatorState, indexes: list[kopf.Index[str, RoomObject]]) -> None:
    while True:
        await asyncio.sleep(state.config.sync_interval)
        try:
            await sweep_once(state, indexes)
        except Exception:  # the loop must outlive any one bad sweep
            log.exception("drift sweep failed")


async def sweep_once(state: OperatorState, indexes: list[kopf.Index[str, RoomObject]]) -> None:
    objects = [obj for index in indexes for key in list(index) for obj in list(index.get(key, []))]
    metrics.ROOMS.set(sum(1 for obj in objects if obj.kind != ROOM_POLICY.kind))
    outcomes = await state.connected_reconciler().sweep(objects)
    gate = asyncio.Semaphore(16)

    async def write(obj: RoomObject, outcome: Outcome) -> None:
        async with gate:
            if state.kube is None:
                return
            since = _seconds_since(obj.status.get("lastSyncTime") or obj.status.get("lastEnforcedTime"))
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
