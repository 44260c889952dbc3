"""The operator's I/O edge without kopf: observe, plan (the shared engine), execute, conclude.

Handlers call `reconcile`/`delete` for one object; the sweep calls `sweep` for every indexed
object with one observation per server. Both end in the pure functions of `decide`. Written once
for every kind: what differs (model, backend, observation, plan) is the kind's `KindOps`."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..backends.errors import BackendError, Unavailable
from ..execute import ActionResult, execute
from ..model.policy import DesiredPolicy
from ..plan import Plan, RoomPlan
from . import metrics
from .decide import (
    CredentialsError,
    Event,
    Failure,
    InvalidSpec,
    Outcome,
    RoomObject,
    conclude,
    decide_deletion,
    failed,
    failure_for,
)
from .kinds import ROOM_OPS, KindOps
from .plugnmeet import PLUGNMEET_OPS
from .policy import (
    Enforcement,
    conclude_policy,
    desired_policy,
    is_policy,
    plan_undeclared,
    policy_checked,
    policy_failed,
    valid_policies,
)
from .servers import ServerPool, server_key

Ops = KindOps[Any, Any, Any]
KIND_OPS: dict[str, Ops] = {ops.kind: ops for ops in (ROOM_OPS, PLUGNMEET_OPS)}

log = logging.getLogger("roomctl.operator")


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ObservationBatcher:
    """Coalesces single-room observations made within `window` seconds into one observation of the
    server: after an operator restart, 1,000 resume handlers cost a handful of ListRooms (or
    getActiveRoomsInfo), not 1,000."""

    def __init__(self, ops: Ops, backend: Any, window: float = 0.05) -> None:
        self.ops = ops
        self.backend = backend
        self.window = window
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._policies: dict[str, DesiredPolicy] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def observe(self, desired: Any, policies: Sequence[DesiredPolicy] = ()) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((desired, future))
        self._policies.update((p.source, p) for p in policies)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        return await future

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.window)
        batch, self._pending, self._flusher = self._pending, [], None
        policies, self._policies = list(self._policies.values()), {}
        unique = {d.name: d for d, _ in batch}
        try:
            rooms = await self.ops.observe_with(self.backend, list(unique.values()), policies)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for desired, future in batch:
            if not future.done():
                future.set_result(rooms.get(desired.name))


@dataclass
class Reconciler:
    pool: ServerPool
    now: Callable[[], str] = utc_now
    batch_window: float = 0.05
    concurrency: int = 16
    kinds: dict[str, Ops] = field(default_factory=lambda: dict(KIND_OPS))
    _locks: dict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    _batchers: dict[tuple[str, int], ObservationBatcher] = field(default_factory=dict)
    _touched: dict[str, float] = field(default_factory=dict)
    # The last status concluded per object: the kopf index (and so the sweep's view of an object) lags
    # behind our own status writes until the watch event arrives; drift events must not repeat for it.
    _statuses: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    # Every RoomPolicy object the operator knows (the kopf index); Rooms read the ones of their server.
    policy_objects: Callable[[], Sequence[RoomObject]] = lambda: ()

    def _policy_view(self, obj: RoomObject) -> RoomObject:
        """The policy with the status we last concluded: the index lags behind our own writes, and an
        event must not repeat because the sweep saw the object before its status arrived."""
        mine = self._statuses.get(f"{obj.kind}:{obj.key}")
        return obj if mine is None else replace(obj, status=dict(mine))

    def _remember(self, obj: RoomObject, outcome: Outcome) -> Outcome:
        self._statuses[f"{obj.kind}:{obj.key}"] = outcome.status
        return outcome

    def check_policy(self, obj: RoomObject) -> Outcome:
        """A created or changed RoomPolicy: validated now, enforced by the next sweep."""
        return self._remember(obj, policy_checked(replace(obj, status=self._policy_view(obj).status), self.now()))

    def policies_for(self, obj: RoomObject) -> list[DesiredPolicy]:
        """The valid RoomPolicies that govern the server of `obj` (none for a plugNmeet kind)."""
        kind = self.ops(obj).kind
        if kind != "Room":
            return []
        key = server_key(obj.namespace, obj.spec, kind)
        return valid_policies(p for p in self.policy_objects() if server_key(p.namespace, p.spec, kind) == key)

    def _latest(self, obj: RoomObject) -> RoomObject:
        mine = self._statuses.get(obj.ident)
        if mine is None or str(mine.get("lastSyncTime", "")) < str(obj.status.get("lastSyncTime", "")):
            return obj
        return replace(obj, status=dict(mine))

    def ops(self, obj: RoomObject) -> Ops:
        return self.kinds.get(obj.kind, self.kinds["Room"])

    def _batcher(self, ops: Ops, backend: Any) -> ObservationBatcher:
        key = (ops.kind, id(backend))
        found = self._batchers.get(key)
        if found is None or found.backend is not backend:
            found = self._batchers[key] = ObservationBatcher(ops, backend, self.batch_window)
        return found

    async def _connect(self, obj: RoomObject) -> tuple[Any, Any]:
        ops = self.ops(obj)
        desired = ops.desired(obj)
        creds = await self.pool.credentials(obj)
        return desired, ops.backend(self.pool, creds)

    def _failed(self, obj: RoomObject, exc: BaseException, trigger: str) -> Outcome:
        failure = failure_for(exc)
        spec = obj.spec_map
        name = str(spec.get("name") or spec.get("roomId") or obj.name)
        metrics.RECONCILES.labels(trigger, "failed").inc()
        metrics.FAILURES.labels(failure.reason).inc()
        log.warning("%s %s %s: %s: %s", trigger, obj.kind, obj.key, failure.reason, failure.message)
        outcome = failed(self._latest(obj), failure, self.now(), name)
        self._statuses[obj.ident] = outcome.status
        metrics.record_drift(obj, outcome.status)
        return outcome

    async def reconcile(self, obj: RoomObject, trigger: str = "change") -> Outcome:
        """One object, as the create/update/resume handlers see it. Nothing is done on the server
        unless it was observed first: a failed observation is a status, never an action."""
        try:
            desired, backend = await self._connect(obj)
        except (InvalidSpec, CredentialsError) as exc:
            return self._failed(obj, exc, trigger)
        async with self._locks[obj.ident]:
            policies = self.policies_for(obj)
            try:
                observed = await self._batcher(self.ops(obj), backend).observe(desired, policies)
            except BackendError as exc:
                return self._failed(obj, exc, trigger)
            outcome = await self._apply(obj, desired, observed, backend, trigger, policies)
            self._touched[obj.ident] = time.monotonic()
            return outcome

    async def _apply(self, obj: RoomObject, desired: Any, observed: Any, backend: Any, trigger: str,
                     policies: Sequence[DesiredPolicy] = (), enforcement: Enforcement | None = None) -> Outcome:
        room_plan = self.ops(obj).plan_with(desired, observed, policies)
        if room_plan.status == "unreadable":
            # Its participants or dispatches could not be read: this object fails (and retries) alone.
            return self._failed(obj, Unavailable(room_plan.error), trigger)
        results: tuple[ActionResult, ...] = ()
        if room_plan.actions:
            done = await execute(Plan((room_plan,)), backend, concurrency=self.concurrency)
            results = done.results
            for result in results:
                metrics.ACTIONS.labels(str(result.action.kind), "ok" if result.ok else "failed").inc()
        if enforcement is not None:
            enforcement.plans.append(room_plan)
            enforcement.results.extend(results)
        outcome = conclude(self._latest(obj), desired, room_plan, observed, results, self.now())
        self._statuses[obj.ident] = outcome.status
        metrics.RECONCILES.labels(trigger, "failed" if outcome.failure else "ok").inc()
        if outcome.failure:
            metrics.FAILURES.labels(outcome.failure.reason).inc()
        metrics.record_drift(obj, outcome.status)
        return outcome

    async def delete(self, obj: RoomObject) -> Event:
        """Runs under the finalizer. Raises BackendError/CredentialsError to keep the finalizer (retry):
        a room is deleted only after an observation that succeeded showed it."""
        ops = self.ops(obj)
        try:
            desired = ops.desired(obj)
        except InvalidSpec:
            # Without a valid spec the deletion policy is unknown: leaving the room is the safe side.
            self.forget(obj)
            return Event("Warning", "RoomOrphaned",
                         "the spec does not validate, so policy.deletion is unknown; the room was left in place")
        creds = await self.pool.credentials(obj)
        backend = ops.backend(self.pool, creds)
        async with self._locks[obj.ident]:
            observed = (await ops.observe(backend, [desired])).get(desired.name)
            decision = decide_deletion(desired, observed)
            if decision.action is not None:
                deletion = RoomPlan(desired.name, obj.source, "delete", decision.action.old_sid,
                                    (decision.action,), kind=ops.kind)
                done = await execute(Plan((deletion,)), backend)
                if done.failed:
                    cause = done.failed[0].cause
                    raise cause if cause is not None else BackendError(done.failed[0].error)
        self.forget(obj)
        return decision.event

    def forget(self, obj: RoomObject) -> None:
        """The object is gone: drop its lock, its timestamps and its metric series."""
        self._locks.pop(obj.ident, None)
        self._touched.pop(obj.ident, None)
        self._statuses.pop(obj.ident, None)
        metrics.forget_drift(obj)

    async def sweep(self, objects: Sequence[RoomObject]) -> list[tuple[RoomObject, Outcome]]:
        """Every object, grouped by kind and server: one observation per server (one ListRooms for
        the Rooms and RoomPolicies of a LiveKit server together, one getActiveRoomsInfo for the
        PlugNmeetRooms). Metric series of objects that are no longer there are dropped."""
        groups: dict[str, list[RoomObject]] = defaultdict(list)
        for obj in objects:
            groups[server_key(obj.namespace, obj.spec, self.ops(obj).kind)].append(obj)
        outcomes: list[tuple[RoomObject, Outcome]] = []
        for group in groups.values():
            outcomes.extend(await self._sweep_server(self.ops(group[0]), group))
        metrics.retain_drift(objects)
        present = {o.ident for o in objects}
        for gone in set(self._statuses) - present:  # deleted while no handler saw it go
            self._statuses.pop(gone, None)
        return outcomes

    async def _sweep_server(self, ops: Ops, group: Sequence[RoomObject]) -> list[tuple[RoomObject, Outcome]]:
        outcomes: list[tuple[RoomObject, Outcome]] = []
        valid: list[tuple[RoomObject, Any]] = []
        owners: dict[str, str] = {}
        policy_objects: list[tuple[RoomObject, DesiredPolicy]] = []
        for obj in sorted((o for o in group if is_policy(o)), key=lambda o: o.key):
            view = self._policy_view(obj)
            try:
                policy_objects.append((view, desired_policy(view)))
            except InvalidSpec as exc:
                outcomes.append((obj, self._remember(obj, policy_failed(view, exc, self.now()))))
        policies = [p for _, p in policy_objects]
        for obj in sorted((o for o in group if not is_policy(o)), key=lambda o: o.key):
            try:
                desired = ops.desired(obj)
            except InvalidSpec as exc:
                outcomes.append((obj, self._failed(obj, exc, "sweep")))
                continue
            owner = owners.setdefault(desired.name, obj.key)
            if owner != obj.key:
                conflict = Failure("RoomNameConflict", f"room {desired.name!r} on this server is owned by {owner}",
                                   "permanent")
                outcome = failed(obj, conflict, self.now(), desired.name)
                metrics.record_drift(obj, outcome.status)
                outcomes.append((obj, outcome))
                continue
            valid.append((obj, desired))
        if not valid and not policy_objects:
            return outcomes
        try:
            creds = await self.pool.credentials(valid[0][0] if valid else policy_objects[0][0])
            backend = ops.backend(self.pool, creds)
            started = time.monotonic()
            # With policies: every live room, in the same one ListRooms.
            rooms = await ops.observe_with(backend, [d for _, d in valid], policies, everything=bool(policies))
        except (CredentialsError, BackendError) as exc:
            metrics.SWEEPS.labels("failed").inc()
            return (outcomes + [(obj, self._failed(obj, exc, "sweep")) for obj, _ in valid]
                    + [(obj, self._remember(obj, policy_failed(obj, exc, self.now()))) for obj, _ in policy_objects])
        metrics.SWEEPS.labels("ok").inc()
        gate = asyncio.Semaphore(self.concurrency)
        enforcement = Enforcement(rooms)

        async def one(obj: RoomObject, desired: Any) -> tuple[RoomObject, Outcome] | None:
            async with gate, self._locks[obj.ident]:
                if self._touched.get(obj.ident, 0.0) > started:
                    return None  # a handler reconciled it after this sweep looked: our view is older
                return obj, await self._apply(obj, desired, rooms.get(desired.name), backend, "sweep",
                                              policies, enforcement)

        done = await asyncio.gather(*(one(o, d) for o, d in valid))
        outcomes += [pair for pair in done if pair is not None]
        if policy_objects:
            outcomes += await self._enforce(policy_objects, rooms, {d.name for _, d in valid}, backend, enforcement)
        return outcomes

    async def _enforce(self, policy_objects: Sequence[tuple[RoomObject, DesiredPolicy]], rooms: Mapping[str, Any],
                       declared: set[str], backend: Any,
                       enforcement: Enforcement) -> list[tuple[RoomObject, Outcome]]:
        """The live rooms no Room object declares, planned by the shared single-room decision and run
        as one plan; then every policy's status from what its rules did (declared rooms included)."""
        plans = plan_undeclared([p for _, p in policy_objects], rooms, declared)
        enforcement.plans.extend(plans)
        if any(p.actions for p in plans):
            done = await execute(Plan(tuple(plans)), backend, concurrency=self.concurrency)
            enforcement.results.extend(done.results)
            for result in done.results:
                metrics.ACTIONS.labels(str(result.action.kind), "ok" if result.ok else "failed").inc()
        now = self.now()
        return [(obj, self._remember(obj, conclude_policy(obj, policy, enforcement, now)))
                for obj, policy in policy_objects]
