"""RoomPolicy objects in the operator: validated by the CLI's model, enforced by the shared engine
(`plan_live_room`) inside the batched sweep — one ListRooms per server per interval serves the
Rooms and the RoomPolicies of that server together — and summed up in each policy's status.

A policy owns no room: it has no finalizer and its deletion changes nothing on the server. Its
status says what the last sweep found and did: matchedRooms, changesLastSweep, lastEnforcedTime
and the Ready/Synced conditions; enforcement failures are Warning events on the policy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..execute import ActionResult
from ..model.policy import DesiredPolicy, RoomPolicyManifest
from ..observed import ObservedRoom
from ..plan import RoomPlan, plan_live_room
from ..plan.core import POLICY_KIND
from .decide import Event, Failure, InvalidSpec, Outcome, RoomObject, condition, failure_for, validated

ENFORCED = "PolicyEnforced"
ENFORCEMENT_FAILED = "EnforcementFailed"


def is_policy(obj: RoomObject) -> bool:
    return obj.kind == POLICY_KIND


def desired_policy(obj: RoomObject) -> DesiredPolicy:
    """The RoomPolicy object as the CLI's DesiredPolicy; raises InvalidSpec naming the field."""
    return DesiredPolicy(validated(RoomPolicyManifest, obj), f"roompolicies/{obj.namespace}/{obj.name}", 0)


def valid_policies(objects: Iterable[RoomObject]) -> list[DesiredPolicy]:
    """The policies that validate (an invalid one says so in its own status and enforces nothing)."""
    out = []
    for obj in objects:
        try:
            out.append(desired_policy(obj))
        except InvalidSpec:
            continue
    return out


def _label(policy: DesiredPolicy) -> str:
    return f"{POLICY_KIND} {policy.name},"


@dataclass
class Enforcement:
    """What one sweep did on one server, for the policies' statuses."""

    observed: Mapping[str, ObservedRoom]
    plans: list[RoomPlan] = field(default_factory=list)  # every live room's plan (declared or not)
    results: list[ActionResult] = field(default_factory=list)

    def matched(self, policy: DesiredPolicy) -> int:
        return sum(1 for name in self.observed if policy.matches(name))

    def of(self, policy: DesiredPolicy) -> tuple[list[ActionResult], int]:
        label = _label(policy)
        mine = [r for r in self.results if r.action.source.startswith(label)]
        drift = sum(1 for p in self.plans for d in p.drifts if d.source.startswith(label))
        return mine, drift


def plan_undeclared(policies: Sequence[DesiredPolicy], observed: Mapping[str, ObservedRoom],
                    declared: Iterable[str]) -> list[RoomPlan]:
    """The live rooms no Room object declares, each planned by the shared single-room decision."""
    skip = set(declared)
    plans = []
    for name in sorted(observed):
        if name in skip:
            continue
        planned = plan_live_room(None, policies, observed[name])
        if planned is not None:
            plans.append(planned)
    return plans


def conclude_policy(obj: RoomObject, policy: DesiredPolicy, enforcement: Enforcement, now: str) -> Outcome:
    """Status and events of one policy after a sweep enforced it."""
    previous = obj.status.get("conditions") or []
    results, drift = enforcement.of(policy)
    failures = [r for r in results if not r.ok]
    changes = len(results) - len(failures)
    matched = enforcement.matched(policy)
    generation = obj.generation
    events: list[Event] = []
    ready = condition(previous, "Ready", True, "Enforced", f"enforced on {matched} live room(s)", generation, now)
    failure: Failure | None = None
    if failures:
        message = "; ".join(f"{r.action.kind} {r.action.room}"
                            + (f" [{r.action.target}]" if r.action.target else "") + f": {r.error}"
                            for r in failures[:10])
        if len(failures) > 10:
            message += f"; and {len(failures) - 10} more"
        synced = condition(previous, "Synced", False, ENFORCEMENT_FAILED,
                           f"{len(failures)} change(s) failed: {message}", generation, now)
        if _is_new(previous, synced):  # the same failure every sweep is one event, not one per interval
            events.append(Event("Warning", ENFORCEMENT_FAILED, message))
        cause = next((r.cause for r in failures if r.cause is not None), None)
        found = failure_for(cause) if cause is not None else Failure(ENFORCEMENT_FAILED, message, "temporary")
        failure = Failure(found.reason, message, found.retry, found.delay)
    elif drift:
        reason = "ObserveOnly" if policy.spec.policy.observe_only else "Drift"
        synced = condition(previous, "Synced", False, reason,
                           f"{drift} difference(s) reported, not applied", generation, now)
    else:
        synced = condition(previous, "Synced", True, "InSync", "every matched room follows the policy",
                           generation, now)
    if changes:
        rooms = len({r.action.room for r in results if r.ok})
        events.append(Event("Normal", ENFORCED, f"made {changes} change(s) in {rooms} room(s)"))
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "matchedRooms": matched,
        "changesLastSweep": changes,
        "failuresLastSweep": len(failures),
        "driftLastSweep": drift,
        "lastEnforcedTime": now,
        "conditions": [ready, synced],
    }
    return Outcome(status, tuple(events), failure)


def policy_checked(obj: RoomObject, now: str) -> Outcome:
    """A created or changed policy, validated: Accepted (enforced by the next sweep) or InvalidSpec."""
    try:
        return accepted(obj, now)
    except InvalidSpec as exc:
        return policy_failed(obj, exc, now)


def accepted(obj: RoomObject, now: str) -> Outcome:
    """A created or changed policy that validates: enforced by the next sweep of its server."""
    previous = obj.status.get("conditions") or []
    desired_policy(obj)  # raises InvalidSpec
    status = dict(obj.status)
    status["observedGeneration"] = obj.generation
    ready = next((c for c in previous if c.get("type") == "Ready" and c.get("status") == "True"), None)
    status["conditions"] = [
        ready or condition(previous, "Ready", True, "Accepted", "valid; enforced by the next sweep",
                           obj.generation, now),
        *[c for c in previous if c.get("type") == "Synced"],
    ]
    return Outcome(status, ())


def policy_failed(obj: RoomObject, exc: BaseException, now: str) -> Outcome:
    """Nothing could be enforced (bad spec, bad Secret, server down): both conditions False."""
    failure = failure_for(exc)
    previous = obj.status.get("conditions") or []
    status = {k: v for k, v in obj.status.items() if k != "conditions"}
    status["observedGeneration"] = obj.generation
    ready = condition(previous, "Ready", False, failure.reason, failure.message, obj.generation, now)
    status["conditions"] = [
        ready, condition(previous, "Synced", False, failure.reason, failure.message, obj.generation, now),
    ]
    events = (Event("Warning", ENFORCEMENT_FAILED, f"{failure.reason}: {failure.message}"),)
    return Outcome(status, events if _is_new(previous, ready) else (), failure)


def _is_new(previous: Sequence[Mapping[str, Any]], new: Mapping[str, Any]) -> bool:
    old = next((c for c in previous if c.get("type") == new["type"]), None)
    return old is None or any(old.get(k) != new[k] for k in ("status", "reason", "message", "observedGeneration"))
