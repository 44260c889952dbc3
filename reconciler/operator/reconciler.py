"""The operator's I/O edge without kopf: observe, plan (the shared engine), execute, conclude.

Handlers call `reconcile`/`delete` for one object; the sweep calls `sweep` for every indexed
object with one observation per server. Both end in the pure functions of `decide`."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..backends.errors import BackendError
from ..backends.livekit import LiveKitBackend
from ..execute import ActionResult, execute, perform
from ..model import DesiredRoom
from ..observed import ObservedRoom
from ..plan import Plan
from . import metrics
from .decide import (
    CredentialsError,
    Event,
    Failure,
    InvalidSpec,
    Outcome,
    RoomObject,
    conclude,
    decide,
    decide_deletion,
    desired_room,
    failed,
    failure_for,
)
from .servers import ServerPool, server_key

log = logging.getLogger("roomctl.operator")


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ObservationBatcher:
    """Coalesces single-room observations made within `window` seconds into one backend.observe:
    after an operator restart, 1,000 resume handlers cost a handful of ListRooms, not 1,000."""

    def __init__(self, backend: LiveKitBackend, window: float = 0.05) -> None:
        self.backend = backend
        self.window = window
        self._pending: list[tuple[DesiredRoom, asyncio.Future[ObservedRoom | None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def observe(self, desired: DesiredRoom) -> ObservedRoom | None:
        future: asyncio.Future[ObservedRoom | None] = asyncio.get_running_loop().create_future()
        self._pending.append((desired, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        return await future

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.window)
        batch, self._pending, self._flusher = self._pending, [], None
        unique = {d.name: d for d, _ in batch}
        try:
            state = await self.backend.observe(list(unique.values()))
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for desired, future in batch:
            if not future.done():
                future.set_result(state.rooms.get(desired.name))


@dataclass
class Reconciler:
    pool: ServerPool
    now: Callable[[], str] = utc_now
    batch_window: float = 0.05
    concurrency: int = 16
    _locks: dict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    _batchers: dict[LiveKitBackend, ObservationBatcher] = field(default_factory=dict)
    _touched: dict[str, float] = field(default_factory=dict)

    def _batcher(self, backend: LiveKitBackend) -> ObservationBatcher:
        found = self._batchers.get(backend)
        if found is None:
            found = self._batchers[backend] = ObservationBatcher(backend, self.batch_window)
        return found

    async def _connect(self, obj: RoomObject) -> tuple[DesiredRoom, LiveKitBackend]:
        desired = desired_room(obj)
        creds = await self.pool.credentials(obj)
        return desired, self.pool.backend(creds)

    def _failed(self, obj: RoomObject, exc: BaseException, trigger: str) -> Outcome:
        failure = failure_for(exc)
        name = str(obj.spec.get("name") or obj.name)
        metrics.RECONCILES.labels(trigger, "failed").inc()
        metrics.FAILURES.labels(failure.reason).inc()
        log.warning("%s %s: %s: %s", trigger, obj.key, failure.reason, failure.message)
        return failed(obj, failure, self.now(), name)

    async def reconcile(self, obj: RoomObject, trigger: str = "change") -> Outcome:
        """One object, as the create/update/resume handlers see it."""
        try:
            desired, backend = await self._connect(obj)
        except (InvalidSpec, CredentialsError) as exc:
            return self._failed(obj, exc, trigger)
        async with self._locks[obj.key]:
            try:
                observed = await self._batcher(backend).observe(desired)
            except BackendError as exc:
                return self._failed(obj, exc, trigger)
            outcome = await self._apply(obj, desired, observed, backend, trigger)
            self._touched[obj.key] = time.monotonic()
            return outcome

    async def _apply(self, obj: RoomObject, desired: DesiredRoom, observed: ObservedRoom | None,
                     backend: LiveKitBackend, trigger: str) -> Outcome:
        room_plan = decide(desired, observed)
        results: tuple[ActionResult, ...] = ()
        if room_plan.actions:
            done = await execute(Plan((room_plan,)), backend, concurrency=self.concurrency)
            results = done.results
            for result in results:
                metrics.ACTIONS.labels(str(result.action.kind), "ok" if result.ok else "failed").inc()
        outcome = conclude(obj, desired, room_plan, observed, results, self.now())
        metrics.RECONCILES.labels(trigger, "failed" if outcome.failure else "ok").inc()
        if outcome.failure:
            metrics.FAILURES.labels(outcome.failure.reason).inc()
        return outcome

    async def delete(self, obj: RoomObject) -> Event:
        """Runs under the finalizer. Raises BackendError/CredentialsError to keep the finalizer (retry)."""
        try:
            desired = desired_room(obj)
        except InvalidSpec:
            # Without a valid spec the deletion policy is unknown: leaving the room is the safe side.
            return Event("Warning", "RoomOrphaned",
                         "the spec does not validate, so policy.deletion is unknown; the room was left in place")
        creds = await self.pool.credentials(obj)
        backend = self.pool.backend(creds)
        async with self._locks[obj.key]:
            observed = (await backend.observe([desired])).rooms.get(desired.name)
            decision = decide_deletion(desired, observed)
            if decision.action is not None:
                await perform(backend, decision.action)
        self._locks.pop(obj.key, None)
        self._touched.pop(obj.key, None)
        return decision.event

    async def sweep(self, objects: Sequence[RoomObject]) -> list[tuple[RoomObject, Outcome]]:
        """Every object, grouped by server: one observation (one ListRooms) per server."""
        groups: dict[str, list[RoomObject]] = defaultdict(list)
        for obj in objects:
            groups[server_key(obj.namespace, obj.spec)].append(obj)
        outcomes: list[tuple[RoomObject, Outcome]] = []
        for group in groups.values():
            outcomes.extend(await self._sweep_server(group))
        metrics.DRIFT.set(sum(len(o.status.get("drift") or []) for _, o in outcomes))
        return outcomes

    async def _sweep_server(self, group: Sequence[RoomObject]) -> list[tuple[RoomObject, Outcome]]:
        outcomes: list[tuple[RoomObject, Outcome]] = []
        valid: list[tuple[RoomObject, DesiredRoom]] = []
        owners: dict[str, str] = {}
        for obj in sorted(group, key=lambda o: o.key):
            try:
                desired = desired_room(obj)
            except InvalidSpec as exc:
                outcomes.append((obj, self._failed(obj, exc, "sweep")))
                continue
            owner = owners.setdefault(desired.name, obj.key)
            if owner != obj.key:
                conflict = Failure("RoomNameConflict", f"room {desired.name!r} on this server is owned by {owner}",
                                   "permanent")
                outcomes.append((obj, failed(obj, conflict, self.now(), desired.name)))
                continue
            valid.append((obj, desired))
        if not valid:
            return outcomes
        try:
            creds = await self.pool.credentials(valid[0][0])
            backend = self.pool.backend(creds)
            started = time.monotonic()
            state = await backend.observe([d for _, d in valid])
        except (CredentialsError, BackendError) as exc:
            metrics.SWEEPS.labels("failed").inc()
            return outcomes + [(obj, self._failed(obj, exc, "sweep")) for obj, _ in valid]
        metrics.SWEEPS.labels("ok").inc()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(obj: RoomObject, desired: DesiredRoom) -> tuple[RoomObject, Outcome] | None:
            async with gate, self._locks[obj.key]:
                if self._touched.get(obj.key, 0.0) > started:
                    return None  # a handler reconciled it after this sweep looked: our view is older
                return obj, await self._apply(obj, desired, state.rooms.get(desired.name), backend, "sweep")

        done = await asyncio.gather(*(one(o, d) for o, d in valid))
        return outcomes + [pair for pair in done if pair is not None]
