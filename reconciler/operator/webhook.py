"""The operator's webhook endpoint: the receiver `roomctl serve` uses, with the reaction mapped onto
Room objects through a kopf index keyed by LiveKit room name. A reaction is the object's ordinary
reconcile (the shared plan and executor, the per-object lock the handlers and the sweep take),
its status written and its events (RoomCreated, ParticipantUpdated, ...) recorded on the object.
The drift sweep stays the safety net for webhooks that never arrive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kopf

from ..crd import GROUP, ROOM, VERSION
from ..engine import plan_one_room
from ..execute import execute
from ..manifests import Inputs
from ..model.policy import DesiredPolicy
from ..plan import Plan
from ..plan.core import POLICY_KIND
from ..webhook.app import QuietServer, WebhookApp
from ..webhook.receiver import EventQueue, Receiver, RoomWork
from . import metrics
from .decide import CredentialsError, Event, InvalidSpec, RoomObject, status_changed
from .policy import ENFORCED, ENFORCEMENT_FAILED, desired_policy

if TYPE_CHECKING:
    from .handlers import OperatorState

log = logging.getLogger("roomctl.operator.webhook")

INDEX = "rooms_by_room_name"
KEEP_ALIVE_SECONDS = 95  # longer than LiveKit's Go client keeps idle connections (see cli/serve.py)


def room_name(obj: RoomObject) -> str:
    name = obj.spec_map.get("name")
    return name if isinstance(name, str) and name else obj.name


@dataclass
class WebhookEndpoint:
    state: OperatorState
    index: kopf.Index[str, RoomObject]
    host: str
    port: int
    queue_size: int = 1000
    started: bool = False
    _server: Any = field(default=None, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.queue = EventQueue(self.react, capacity=self.queue_size, metrics=metrics.WEBHOOK)
        self.receiver = Receiver(self.secret_for, self.queue, metrics.WEBHOOK)
        self.app = WebhookApp(self.receiver, ready=lambda: self.started, registry=metrics.REGISTRY)

    def secret_for(self, api_key: str) -> str | None:
        """The secret of a server the operator talks to: the operator-wide one, or a serverRef Secret read before."""
        known = [self.state.config.default_credentials]
        if self.state.pool is not None:
            known.extend(self.state.pool.known_credentials())
        for creds in known:
            if creds is not None and creds.api_key == api_key and creds.api_secret:
                return creds.api_secret
        return None

    async def react(self, work: RoomWork) -> None:
        runs = metrics.WEBHOOK.runs
        objects = [o for o in self.index.get(work.room, []) if o.kind == ROOM.kind]
        acted = failed = declared = False
        reconciler = self.state.connected_reconciler()
        pool = self.state.pool
        assert pool is not None
        try:
            for obj in objects:
                try:
                    creds = await pool.credentials(obj)
                except CredentialsError:
                    continue  # the sweep reports it on the object
                if creds.api_key != work.api_key:
                    continue  # a room of the same name on another server
                declared = True
                outcome = await reconciler.reconcile(obj, "webhook")  # its own rules, then the policies'
                acted = acted or any(e.type == "Normal" for e in outcome.events)
                failed = failed or outcome.failure is not None
                await self._record(obj, outcome.status, outcome.events)
            if not declared:
                acted, failed = await self._undeclared(work)
        finally:
            runs.labels("failed" if failed else "acted" if acted else "no_action").inc()
            done = time.monotonic()
            for received in work.received:
                metrics.WEBHOOK.latency.observe(done - received)

    async def _undeclared(self, work: RoomWork) -> tuple[bool, bool]:
        """A room no Room object declares, governed by the RoomPolicy objects of the signer's server:
        observed and planned by the engine's single-room entry (`plan_one_room`, as `roomctl serve`),
        executed, and recorded as events on each policy whose rules acted. Policy statuses stay the
        sweep's summary."""
        pool = self.state.pool
        assert pool is not None
        governing: list[tuple[RoomObject, DesiredPolicy]] = []
        backend = None
        for obj in self.state.policy_objects():
            try:
                policy = desired_policy(obj)
                creds = await pool.credentials(obj)
            except (InvalidSpec, CredentialsError):
                continue  # reported on the policy by the sweep
            if creds.api_key == work.api_key and policy.matches(work.room):
                governing.append((obj, policy))
                backend = pool.backend(creds)
        if backend is None:
            return False, False
        room_plan = await plan_one_room(backend, Inputs([], [], [p for _, p in governing]), work.room)
        if room_plan is None or not room_plan.actions:
            return False, False
        results = (await execute(Plan((room_plan,)), backend)).results
        for result in results:
            metrics.ACTIONS.labels(str(result.action.kind), "ok" if result.ok else "failed").inc()
        for obj, policy in governing:
            label = f"{POLICY_KIND} {policy.name},"
            mine = [r for r in results if r.action.source.startswith(label)]
            done = [r for r in mine if r.ok]
            events = []
            if done:
                events.append(Event("Normal", ENFORCED, f"webhook: made {len(done)} change(s) in room {work.room}"))
            if len(done) < len(mine):
                failed_one = next(r for r in mine if not r.ok)
                events.append(Event("Warning", ENFORCEMENT_FAILED,
                                    f"webhook: {failed_one.action.kind} {work.room}: {failed_one.error}"))
            await self.state.post(obj, events)
        return any(r.ok for r in results), not all(r.ok for r in results)

    async def _record(self, obj: RoomObject, status: Any, events: Any) -> None:
        kube = self.state.kube
        if kube is None:
            return
        if status_changed(obj.status, status, 0.0, float("inf")):  # only a real change; the sweep refreshes
            try:
                await kube.patch_status(obj, status)
            except Exception as exc:
                log.warning("could not write the status of %s: %s", obj.key, exc)
        await self.state.post(obj, events)

    async def start(self) -> None:
        import uvicorn

        self.queue.start()
        self._server = QuietServer(uvicorn.Config(self.app, host=self.host, port=self.port, lifespan="off",
                                                  log_level="warning", access_log=False,
                                                  timeout_keep_alive=KEEP_ALIVE_SECONDS))
        self._task = asyncio.create_task(self._server.serve(), name="roomctl webhook endpoint")
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            raise RuntimeError(f"the webhook endpoint cannot listen on {self.host}:{self.port}")
        self.started = True
        log.info("webhook endpoint on %s:%d/webhook", self.host, self.port)

    async def stop(self) -> None:
        self.started = False
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self.queue.stop()


def register(registry: kopf.OperatorRegistry, state: OperatorState) -> None:
    """The room-name index and the endpoint's start/stop; a no-op endpoint when no port is configured."""
    endpoint: list[WebhookEndpoint] = []

    @kopf.index(GROUP, VERSION, ROOM.plural, id=INDEX, registry=registry)
    def rooms_by_room_name(body: kopf.Body, meta: kopf.Meta, namespace: str | None,
                           **_: Any) -> dict[str, RoomObject] | None:
        if meta.get("deletionTimestamp") or namespace is None:
            return None
        obj = RoomObject.from_body(body)
        return {room_name(obj): obj}

    @kopf.on.startup(registry=registry)
    async def start_webhook_endpoint(**kwargs: Any) -> None:
        listen = state.config.webhook_listen
        if listen is None:
            return
        state.connected_reconciler()
        found = WebhookEndpoint(state, kwargs[INDEX], listen[0], listen[1], state.config.webhook_queue_size)
        await found.start()
        endpoint.append(found)
        state.webhook = found

    @kopf.on.cleanup(registry=registry)
    async def stop_webhook_endpoint(**_: Any) -> None:
        while endpoint:
            await endpoint.pop().stop()
