"""The operator's decisions, without kopf or a cluster: spec + status + observed -> actions, status, events."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.backends.errors import AuthFailed, RateLimited, Unavailable
from reconciler.execute import ActionResult
from reconciler.observed import ObservedRoom
from reconciler.operator.decide import (
    CredentialsError,
    InvalidSpec,
    Outcome,
    RoomObject,
    conclude,
    condition,
    decide,
    decide_deletion,
    desired_room,
    failed,
    failure_for,
    status_changed,
)
from reconciler.plan import ActionKind, RoomPlan

NOW = "2026-11-21T10:00:00Z"
LATER = "2026-11-21T10:05:00Z"


def obj(spec: dict[str, Any], status: dict[str, Any] | None = None, generation: int = 1) -> RoomObject:
    return RoomObject("events", "town-hall", spec, status or {}, generation, "uid-1")


def room(sid: str = "RM_old", participants: int = 0, **fields: Any) -> ObservedRoom:
    base = {"empty_timeout": 300, "departure_timeout": 20, "max_participants": 0, "metadata": ""}
    base.update(fields)
    return ObservedRoom("town-hall", sid, base["empty_timeout"], base["departure_timeout"],
                        base["max_participants"], base["metadata"], participants)


def ok(room_plan: RoomPlan, sid: str = "") -> tuple[ActionResult, ...]:
    return tuple(ActionResult(a, True, sid=sid if a.kind in (ActionKind.CREATE_ROOM, ActionKind.RECREATE_ROOM)
                              else "") for a in room_plan.actions)


def run(o: RoomObject, observed: ObservedRoom | None, new_sid: str = "RM_new", *,
        results: tuple[ActionResult, ...] | None = None) -> tuple[RoomPlan, Outcome]:
    desired = desired_room(o)
    room_plan = decide(desired, observed)
    done = ok(room_plan, new_sid) if results is None else results
    return room_plan, conclude(o, desired, room_plan, observed, done, NOW)


def cond(outcome: Outcome, type_: str) -> dict[str, Any]:
    return next(c for c in outcome.status["conditions"] if c["type"] == type_)


def has(found: dict[str, Any], expected: dict[str, Any]) -> bool:
    return {k: found.get(k) for k in expected} == expected


def reasons(outcome: Outcome) -> list[str]:
    return [e.reason for e in outcome.events]


def test_creating_a_room_creates_it_and_sets_ready_with_observed_generation() -> None:
    room_plan, outcome = run(obj({"emptyTimeout": 600}, generation=3), None)
    assert [a.kind for a in room_plan.actions] == [ActionKind.CREATE_ROOM]
    assert room_plan.actions[0].request == {"name": "town-hall", "empty_timeout": 600}
    assert has(cond(outcome, "Ready"), {"status": "True", "reason": "RoomReady", "observedGeneration": 3})
    assert cond(outcome, "Synced")["status"] == "True"
    assert outcome.status["observedGeneration"] == 3 and outcome.status["roomSid"] == "RM_new"
    assert outcome.status["lastSyncTime"] == NOW and outcome.status["drift"] == []
    assert reasons(outcome) == ["RoomCreated"] and outcome.failure is None


def test_editing_metadata_yields_update_room_metadata_and_nothing_else() -> None:
    room_plan, outcome = run(obj({"metadata": "v2", "emptyTimeout": 300}), room(metadata="v1"))
    assert [(a.kind, dict(a.request)) for a in room_plan.actions] == [
        (ActionKind.UPDATE_ROOM_METADATA, {"room": "town-hall", "metadata": "v2"})]
    assert reasons(outcome) == ["MetadataUpdated"]
    assert outcome.status["roomSid"] == "RM_old"


def test_max_participants_with_recreate_never_is_a_requires_recreate_drift() -> None:
    room_plan, outcome = run(obj({"maxParticipants": 50}), room(max_participants=10))
    assert room_plan.actions == ()
    assert outcome.status["drift"] == [{"field": "maxParticipants", "observed": "10", "desired": "50",
                                        "reason": "recreate_never", "detail": room_plan.drifts[0].detail}]
    assert reasons(outcome) == ["RequiresRecreate"]
    assert has(cond(outcome, "Synced"), {"status": "False", "reason": "RequiresRecreate"})
    assert cond(outcome, "Ready")["status"] == "True"  # the room is there and usable


def test_max_participants_with_if_empty_recreates_with_a_new_sid() -> None:
    spec = {"maxParticipants": 50, "policy": {"recreate": "IfEmpty"}}
    room_plan, outcome = run(obj(spec), room(max_participants=10))
    assert [a.kind for a in room_plan.actions] == [ActionKind.RECREATE_ROOM]
    assert room_plan.actions[0].old_sid == "RM_old"
    assert outcome.status["roomSid"] == "RM_new" and outcome.status["numParticipants"] == 0
    assert reasons(outcome) == ["RoomRecreated"]
    assert "RM_old -> RM_new" in outcome.events[0].message


def test_if_empty_with_participants_is_drift_not_a_recreate() -> None:
    spec = {"maxParticipants": 50, "policy": {"recreate": "IfEmpty"}}
    room_plan, outcome = run(obj(spec), room(max_participants=10, participants=3))
    assert room_plan.actions == () and outcome.status["drift"][0]["reason"] == "recreate_occupied"
    assert outcome.status["numParticipants"] == 3


def test_drift_events_fire_once_not_on_every_sweep() -> None:
    first = run(obj({"maxParticipants": 50}), room(max_participants=10))[1]
    again = run(obj({"maxParticipants": 50}, status=first.status), room(max_participants=10))[1]
    assert reasons(first) == ["RequiresRecreate"] and reasons(again) == []


def test_observe_only_reports_and_changes_nothing() -> None:
    room_plan, outcome = run(obj({"metadata": "v2", "policy": {"observeOnly": True}}), room(metadata="v1"))
    assert room_plan.actions == ()
    assert reasons(outcome) == ["DriftDetected"]
    assert cond(outcome, "Synced")["reason"] == "ObserveOnly"


def test_on_demand_absent_room_is_ready_and_not_created() -> None:
    room_plan, outcome = run(obj({"policy": {"lifecycle": "OnDemand"}}), None)
    assert room_plan.actions == ()
    assert has(cond(outcome, "Ready"), {"status": "True", "reason": "OnDemand"})
    assert outcome.status["roomSid"] == ""


def test_room_deleted_out_of_band_is_created_again() -> None:
    handled = run(obj({"metadata": "x"}), room(metadata="x"))[1]
    room_plan, outcome = run(obj({"metadata": "x"}, status=handled.status), None, new_sid="RM_again")
    assert [a.kind for a in room_plan.actions] == [ActionKind.CREATE_ROOM]
    assert outcome.status["roomSid"] == "RM_again" and reasons(outcome) == ["RoomCreated"]


def test_deletion_deletes_the_room_or_keeps_it_when_orphaned() -> None:
    delete = decide_deletion(desired_room(obj({})), room())
    assert delete.action is not None and delete.action.kind == ActionKind.DELETE_ROOM
    assert delete.event.reason == "RoomDeleted"
    orphan = decide_deletion(desired_room(obj({"policy": {"deletion": "Orphan"}})), room())
    assert orphan.action is None and orphan.event.reason == "RoomOrphaned"
    gone = decide_deletion(desired_room(obj({})), None)
    assert gone.action is None and "already gone" in gone.event.message
    watched = decide_deletion(desired_room(obj({"policy": {"observeOnly": True}})), room())
    assert watched.action is None


def test_failed_action_sets_ready_false_with_a_retry() -> None:
    desired = desired_room(obj({}))
    room_plan = decide(desired, None)
    results = (ActionResult(room_plan.actions[0], False, error="unavailable: try later",
                            cause=Unavailable("unavailable")),)
    outcome = conclude(obj({}), desired, room_plan, None, results, NOW)
    assert has(cond(outcome, "Ready"), {"status": "False", "reason": "ServerUnavailable"})
    assert outcome.retry == "temporary" and reasons(outcome) == ["SyncFailed"]


@pytest.mark.parametrize(("exc", "reason", "retry"), [
    (CredentialsError("cannot read Secret events/lk: it does not exist"), "CredentialsUnavailable", "permanent"),
    (AuthFailed("authentication failed (HTTP 401)"), "AuthFailed", "permanent"),
    (InvalidSpec("spec.emptyTimeout: must be > 0"), "InvalidSpec", "permanent"),
    (Unavailable("503"), "ServerUnavailable", "temporary"),
    (RateLimited("429", retry_after=7), "RateLimited", "temporary"),
])
def test_failures_map_to_a_reason_and_a_retry(exc: Exception, reason: str, retry: str) -> None:
    failure = failure_for(exc)
    assert (failure.reason, failure.retry) == (reason, retry)
    outcome = failed(obj({}), failure, NOW, "town-hall")
    assert has(cond(outcome, "Ready"), {"status": "False", "reason": reason})
    assert str(exc) in cond(outcome, "Ready")["message"]
    if isinstance(exc, RateLimited):
        assert failure.delay == 7


def test_invalid_spec_names_the_field() -> None:
    with pytest.raises(InvalidSpec, match=r"spec\.emptyTimeout"):
        desired_room(obj({"emptyTimeout": -1}))
    with pytest.raises(InvalidSpec, match=r"spec\.metadata"):
        desired_room(obj({"metadata": 5}))


def test_last_transition_time_moves_only_when_the_status_does() -> None:
    first = condition([], "Ready", True, "RoomReady", "a", 1, NOW)
    same = condition([first], "Ready", True, "RoomReady", "b", 2, LATER)
    flipped = condition([same], "Ready", False, "AuthFailed", "c", 2, LATER)
    assert first["lastTransitionTime"] == NOW and same["lastTransitionTime"] == NOW
    assert flipped["lastTransitionTime"] == LATER


def test_status_is_rewritten_only_when_something_but_the_sync_time_changed() -> None:
    base = run(obj({}), room())[1].status
    later = dict(base, lastSyncTime=LATER)
    assert not status_changed(base, later, seconds_since_sync=10, refresh_after=300)
    assert status_changed(base, later, seconds_since_sync=301, refresh_after=300)
    assert status_changed(base, dict(later, numParticipants=4), seconds_since_sync=10, refresh_after=300)


def test_suspended_room_is_reported_as_suspended_and_nothing_is_done() -> None:
    live, outcome = run(obj({"suspend": True, "maxParticipants": 9, "metadata": "new"}), room(participants=2))
    assert (live.status, live.actions) == ("suspended", ())
    assert has(cond(outcome, "Synced"), {"status": "False", "reason": "Suspended"})
    assert has(cond(outcome, "Ready"), {"status": "True", "reason": "RoomReady"})
    assert outcome.events == () and outcome.status["drift"] == []
    absent, outcome = run(obj({"suspend": True}), None)
    assert (absent.status, absent.actions) == ("suspended", ())  # a Persistent room is not created either
    assert has(cond(outcome, "Ready"), {"status": "False", "reason": "Suspended"})
    kept = decide_deletion(desired_room(obj({"suspend": True})), room())
    assert kept.action is None and "spec.suspend" in kept.event.message
