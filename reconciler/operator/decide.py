"""The operator's decisions, pure: one Room object + what the server showed -> actions, then
results -> status patch + events + how to retry. No kopf, no I/O, no clock (time is passed in).

The kopf handlers and the sweep only gather inputs and carry out what these functions return,
so every rule here is tested without a cluster (kubernetes-testing.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from ..backends.errors import AuthFailed, BackendError, InvalidArgument, NotFound, RateLimited
from ..execute import ActionResult
from ..model import API_VERSION, DesiredRoom, RoomManifest
from ..model.plugnmeet import DesiredPnmRoom
from ..observed import ObservedPnmRoom, ObservedRoom
from ..plan import Action, ActionKind, Drift, DriftReason, RoomPlan, plan_room

# Both kinds the operator reconciles; every decision below reads only what they share
# (name, spec.policy, sid, participants).
AnyDesired = DesiredRoom | DesiredPnmRoom
AnyObserved = ObservedRoom | ObservedPnmRoom

Retry = Literal["none", "temporary", "permanent"]
ManifestT = TypeVar("ManifestT", bound=BaseModel)
EventType = Literal["Normal", "Warning"]

# Stable event reasons: users alert on these, so they never change once released.
ROOM_CREATED = "RoomCreated"
ROOM_RECREATED = "RoomRecreated"
METADATA_UPDATED = "MetadataUpdated"
PARTICIPANT_UPDATED = "ParticipantUpdated"
PARTICIPANT_REMOVED = "ParticipantRemoved"
DISPATCH_CREATED = "AgentDispatched"
DISPATCH_DELETED = "AgentDispatchDeleted"
DRIFT_DETECTED = "DriftDetected"
REQUIRES_RECREATE = "RequiresRecreate"
SYNC_FAILED = "SyncFailed"
ROOM_DELETED = "RoomDeleted"
ROOM_ORPHANED = "RoomOrphaned"

_ACTION_EVENTS = {
    ActionKind.CREATE_ROOM: ROOM_CREATED,
    ActionKind.RECREATE_ROOM: ROOM_RECREATED,
    ActionKind.UPDATE_ROOM_METADATA: METADATA_UPDATED,
    ActionKind.UPDATE_PARTICIPANT: PARTICIPANT_UPDATED,
    ActionKind.REMOVE_PARTICIPANT: PARTICIPANT_REMOVED,
    ActionKind.CREATE_DISPATCH: DISPATCH_CREATED,
    ActionKind.DELETE_DISPATCH: DISPATCH_DELETED,
    ActionKind.DELETE_ROOM: ROOM_DELETED,
}
_RECREATE_REASONS = {DriftReason.RECREATE_NEVER, DriftReason.RECREATE_OCCUPIED}


@dataclass(frozen=True)
class RoomObject:
    """What the operator knows about one Room or PlugNmeetRoom custom resource. Built from any body,
    however malformed (no CRD validation in front, an old CRD): a spec that is not a mapping stays as
    given and fails validation later as InvalidSpec, reported in status, never a crash."""

    namespace: str
    name: str
    spec: Any
    status: Mapping[str, Any] = field(default_factory=dict)
    generation: int = 0
    uid: str = ""
    kind: str = "Room"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ident(self) -> str:
        """Unique across kinds: a Room and a PlugNmeetRoom may share a namespace and a name."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def source(self) -> str:
        return f"{self.kind.lower()}s/{self.namespace}/{self.name}"

    @property
    def spec_map(self) -> Mapping[str, Any]:
        return self.spec if isinstance(self.spec, Mapping) else {}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RoomObject:
        meta = _mapping(body.get("metadata"))
        spec = body.get("spec")
        generation = meta.get("generation")
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            spec=dict(spec) if isinstance(spec, Mapping) else {} if spec is None else spec,
            status=dict(_mapping(body.get("status"))),
            generation=generation if isinstance(generation, int) and generation >= 0 else 0,
            uid=str(meta.get("uid") or ""),
            kind=str(body.get("kind") or "Room"),
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _conditions(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The status' conditions that are conditions at all (a hand-edited status may hold anything)."""
    found = status.get("conditions")
    return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []


@dataclass(frozen=True)
class Failure:
    """Why a reconcile could not complete; `reason` is the Ready condition's reason. `delay` is the
    least wait before the next try (a server's Retry-After); `backoff` grows it per attempt."""

    reason: str
    message: str
    retry: Retry
    delay: float = 0.0


def backoff(failure: Failure, attempt: int, first: float = 15.0, cap: float = 600.0) -> float:
    """Seconds before retry number `attempt` (0-based) of a temporary failure: doubling from `first`
    up to `cap`, never sooner than the server asked. An outage costs a handful of calls per object,
    not a loop; the sweep still re-checks every object once per interval."""
    return min(cap, max(failure.delay, first * 2.0 ** min(max(attempt, 0), 30)))


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    status: dict[str, Any]
    events: tuple[Event, ...]
    failure: Failure | None = None

    @property
    def retry(self) -> Retry:
        return self.failure.retry if self.failure else "none"


class InvalidSpec(Exception):
    """The object's spec does not validate: one line naming the field."""


def validated(model: type[ManifestT], obj: RoomObject) -> ManifestT:
    """The object as the CLI would read it from a file, validated by the same model."""
    document = {"apiVersion": API_VERSION, "kind": obj.kind,
                "metadata": {"name": obj.name, "namespace": obj.namespace}, "spec": obj.spec}
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        raise InvalidSpec(f"{where}: {first['msg']}") from None


def desired_room(obj: RoomObject) -> DesiredRoom:
    """The Room object as the CLI's DesiredRoom, validated by the same models."""
    return DesiredRoom(validated(RoomManifest, obj), obj.source, 0)


def failure_for(exc: BaseException) -> Failure:
    """Server errors as retry decisions (DESIGN §3 "Failures")."""
    if isinstance(exc, InvalidSpec):
        return Failure("InvalidSpec", str(exc), "permanent")
    if isinstance(exc, CredentialsError):
        return Failure("CredentialsUnavailable", str(exc), "permanent")
    if isinstance(exc, AuthFailed):
        return Failure("AuthFailed", f"the server refused the credentials: {exc}", "permanent")
    if isinstance(exc, InvalidArgument | NotFound):
        return Failure("ServerRejected", str(exc), "permanent")
    if isinstance(exc, RateLimited):
        return Failure("RateLimited", str(exc), "temporary", exc.retry_after or 0.0)
    if isinstance(exc, BackendError):
        return Failure("ServerUnavailable", str(exc), "temporary")
    return Failure("InternalError", f"{type(exc).__name__}", "temporary")


class CredentialsError(Exception):
    """The server credentials could not be read (missing Secret, missing key): one clear line."""


# ---- conditions ---------------------------------------------------------------------------------


def condition(previous: Sequence[Mapping[str, Any]], type_: str, status: bool, reason: str, message: str,
              generation: int, now: str) -> dict[str, Any]:
    """A metav1.Condition; lastTransitionTime moves only when the status itself changes."""
    value = "True" if status else "False"
    old = next((c for c in previous if isinstance(c, Mapping) and c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == value and old.get("lastTransitionTime") else now
    return {"type": type_, "status": value, "observedGeneration": generation, "lastTransitionTime": since,
            "reason": reason, "message": message[:32768]}


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _drift_entry(drift: Drift) -> dict[str, str]:
    return {"field": drift.field, "observed": _text(drift.observed), "desired": _text(drift.desired),
            "reason": str(drift.reason), "detail": drift.detail}


# ---- the two decisions --------------------------------------------------------------------------


def decide(desired: DesiredRoom, observed: ObservedRoom | None) -> RoomPlan:
    """What to do for one Room: exactly the CLI's plan for that room."""
    return plan_room(desired, observed)


def conclude(
    obj: RoomObject,
    desired: AnyDesired,
    room_plan: RoomPlan,
    observed: AnyObserved | None,
    results: Sequence[ActionResult],
    now: str,
) -> Outcome:
    """Status and events once the plan's actions ran (results empty when there were none)."""
    previous = _conditions(obj.status)
    events: list[Event] = []
    sid = observed.sid if observed else ""
    participants = observed.num_participants if observed else 0
    unsuccessful = [r for r in results if not r.ok]
    for result in results:
        if not result.ok:
            continue
        action = result.action
        if action.kind in (ActionKind.CREATE_ROOM, ActionKind.RECREATE_ROOM):
            sid = result.sid or sid
            participants = 0
        events.append(Event("Normal", _ACTION_EVENTS[action.kind], _describe(action, result)))

    drifts = [_drift_entry(d) for d in room_plan.drifts]
    given = obj.status.get("drift")
    old_drift: list[Any] = given if isinstance(given, list) else []
    if drifts and drifts != old_drift:
        # Events only for drift that is new since the last status: a sweep must not repeat them.
        fresh = [d for d in room_plan.drifts if _drift_entry(d) not in old_drift]
        for reason_group, event_reason in ((True, REQUIRES_RECREATE), (False, DRIFT_DETECTED)):
            group = [d for d in fresh if (d.reason in _RECREATE_REASONS) == reason_group]
            if group:
                events.append(Event("Warning", event_reason,
                                    "; ".join(f"{d.field}: {_text(d.observed)!r} -> {_text(d.desired)!r} ({d.detail})"
                                              for d in group)))

    generation = obj.generation
    if unsuccessful:
        failure = _failure_from_results(unsuccessful)
        message = failure.message
        events.append(Event("Warning", SYNC_FAILED, message))
        ready = condition(previous, "Ready", False, failure.reason, message, generation, now)
        synced = condition(previous, "Synced", False, SYNC_FAILED, message, generation, now)
    else:
        failure = None
        exists = bool(sid)
        lifecycle = desired.spec.policy.lifecycle
        if room_plan.status == "suspended" and not exists:
            ready = condition(previous, "Ready", False, "Suspended",
                              f"room {desired.name!r} does not exist; spec.suspend is true: nothing is done",
                              generation, now)
        elif exists:
            ready = condition(previous, "Ready", True, "RoomReady", f"room {desired.name!r} is live ({sid})",
                              generation, now)
        elif lifecycle == "OnDemand":
            ready = condition(previous, "Ready", True, "OnDemand",
                              f"room {desired.name!r} does not exist; policy.lifecycle OnDemand: the first join "
                              "creates it", generation, now)
        else:
            ready = condition(previous, "Ready", False, "RoomAbsent",
                              f"room {desired.name!r} does not exist and policy.observeOnly prevents creating it",
                              generation, now)
        if room_plan.status == "suspended":
            synced = condition(previous, "Synced", False, "Suspended",
                               "spec.suspend is true: the room is neither created, updated nor deleted",
                               generation, now)
        elif drifts:
            reason = ("RequiresRecreate" if any(d.reason in _RECREATE_REASONS for d in room_plan.drifts)
                      else "ObserveOnly" if all(d.reason == DriftReason.OBSERVE_ONLY for d in room_plan.drifts)
                      else "Drift")
            synced = condition(previous, "Synced", False, reason,
                               f"{len(drifts)} difference(s) not applied; see status.drift", generation, now)
        else:
            synced = condition(previous, "Synced", True, "InSync", "the room matches the spec", generation, now)
    status = {
        "observedGeneration": generation,
        "roomName": desired.name,
        "roomSid": sid,
        "numParticipants": participants,
        "lastSyncTime": now,
        "drift": drifts,
        "conditions": [ready, synced],
    }
    return Outcome(status, tuple(events), failure)


def _failure_from_results(unsuccessful: Sequence[ActionResult]) -> Failure:
    cause = next((r.cause for r in unsuccessful if r.cause is not None), None)
    message = "; ".join(f"{r.action.kind}: {r.error}" for r in unsuccessful)
    if cause is None:
        return Failure("SyncFailed", message, "temporary")
    found = failure_for(cause)
    return Failure(found.reason, message, found.retry, found.delay)


def failed(obj: RoomObject, failure: Failure, now: str, room_name: str = "") -> Outcome:
    """The status when nothing could be planned (bad spec, bad secret, server down). The SyncFailed
    event fires when the failure is new; a retry or a sweep meeting the same failure stays quiet
    (the Ready condition already says it), so an outage or a bad object never floods the events."""
    previous = _conditions(obj.status)
    old_ready = next((c for c in previous if c.get("type") == "Ready"), {})
    repeated = (old_ready.get("status") == "False" and old_ready.get("reason") == failure.reason
                and old_ready.get("message") == failure.message[:32768]
                and old_ready.get("observedGeneration") == obj.generation)
    status: dict[str, Any] = dict(obj.status)
    status.pop("conditions", None)
    if not isinstance(status.get("drift", []), list):
        status["drift"] = []
    status.update({
        "observedGeneration": obj.generation,
        "conditions": [
            condition(previous, "Ready", False, failure.reason, failure.message, obj.generation, now),
            condition(previous, "Synced", False, failure.reason, failure.message, obj.generation, now),
        ],
    })
    if room_name:
        status["roomName"] = room_name
    events = () if repeated else (Event("Warning", SYNC_FAILED, f"{failure.reason}: {failure.message}"),)
    return Outcome(status, events, failure)


def _describe(action: Action, result: ActionResult) -> str:
    kind = action.kind
    if kind == ActionKind.CREATE_ROOM:
        return f"created room {action.room!r} ({result.sid})"
    if kind == ActionKind.RECREATE_ROOM:
        changed = ", ".join(f"{c.field} {_text(c.old)} -> {_text(c.new)}" for c in action.changes)
        return f"re-created room {action.room!r}: {action.old_sid} -> {result.sid} ({changed})"
    if kind == ActionKind.UPDATE_ROOM_METADATA:
        return f"updated the metadata of room {action.room!r}"
    if kind in (ActionKind.UPDATE_PARTICIPANT, ActionKind.REMOVE_PARTICIPANT):
        verb = "updated" if kind == ActionKind.UPDATE_PARTICIPANT else "removed"
        return f"{verb} participant {action.target!r} in room {action.room!r}"
    if kind == ActionKind.CREATE_DISPATCH:
        return f"dispatched agent {action.request.get('agent_name', '')!r} to room {action.room!r}"
    if kind == ActionKind.DELETE_DISPATCH:
        return f"deleted agent dispatch {action.target} in room {action.room!r}"
    return f"deleted room {action.room!r}"


# ---- deletion -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletionPlan:
    action: Action | None
    event: Event


def decide_deletion(desired: AnyDesired, observed: AnyObserved | None) -> DeletionPlan:
    """Deleting the object deletes its room unless `policy.deletion: Orphan` (DESIGN §3 "Operator").
    observeOnly and spec.suspend change nothing, so they also leave the room."""
    policy = desired.spec.policy
    name = desired.name
    if policy.deletion == "Orphan" or policy.observe_only or desired.spec.suspend:
        why = ("policy.deletion is Orphan" if policy.deletion == "Orphan"
               else "policy.observeOnly is set" if policy.observe_only else "spec.suspend is true")
        return DeletionPlan(None, Event("Normal", ROOM_ORPHANED, f"left room {name!r} on the server: {why}"))
    if observed is None:
        return DeletionPlan(None, Event("Normal", ROOM_DELETED, f"room {name!r} was already gone"))
    action = Action(ActionKind.DELETE_ROOM, name, (), {"room": name}, old_sid=observed.sid)
    return DeletionPlan(action, Event("Normal", ROOM_DELETED, f"deleted room {name!r} ({observed.sid})"))


def status_changed(old: Mapping[str, Any], new: Mapping[str, Any], seconds_since_sync: float | None,
                   refresh_after: float) -> bool:
    """Whether the sweep should write the status: anything but lastSyncTime (a RoomPolicy's
    lastEnforcedTime) differs, or that is stale. Writing 1,000 identical statuses every interval
    would only load the API server."""
    keys = set(old) | set(new)
    if any(old.get(k) != new.get(k) for k in keys if k not in ("lastSyncTime", "lastEnforcedTime")):
        return True
    return seconds_since_sync is None or seconds_since_sync >= refresh_after
