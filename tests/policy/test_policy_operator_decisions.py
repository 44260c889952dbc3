"""The operator's RoomPolicy decisions, pure: sweep results -> status, conditions and events."""

from __future__ import annotations

from typing import Any

from reconciler.backends.errors import NotFound
from reconciler.execute import ActionResult
from reconciler.observed import ObservedRoom
from reconciler.operator.decide import RoomObject, status_changed
from reconciler.operator.policy import Enforcement, conclude_policy, desired_policy, plan_undeclared, policy_checked
from reconciler.plan import Action, ActionKind

NOW, LATER = "2026-11-29T12:00:00Z", "2026-11-29T12:01:00Z"


def obj(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> RoomObject:
    return RoomObject("support", "calls", spec or {"rooms": ["support-*"], "participants": [
        {"identity": "*", "permission": {"canPublishData": False}}]}, status or {}, 3, "uid", "RoomPolicy")


def live(name: str) -> ObservedRoom:
    return ObservedRoom(name, "RM_" + name, 300, 20, 0, "", 1, participants=())


def result(ok: bool, source: str = "RoomPolicy calls, rule 1", room: str = "support-1") -> ActionResult:
    action = Action(ActionKind.UPDATE_PARTICIPANT, room, target="u1", source=source)
    return ActionResult(action, ok, "" if ok else "participant not found", cause=None if ok else NotFound("gone"))


def test_status_counts_only_this_policys_changes() -> None:
    o = obj()
    rooms = {n: live(n) for n in ("support-1", "support-2", "sales-1")}
    enforcement = Enforcement(rooms, results=[result(True), result(True, "RoomPolicy other, rule 1"),
                                              result(True, "Room support-2, rule 1", "support-2")])
    outcome = conclude_policy(o, desired_policy(o), enforcement, NOW)
    status = outcome.status
    assert (status["matchedRooms"], status["changesLastSweep"], status["failuresLastSweep"]) == (2, 1, 0)
    assert status["lastEnforcedTime"] == NOW and status["observedGeneration"] == 3
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Ready", "True", "Enforced"), ("Synced", "True", "InSync")]
    assert [(e.type, e.reason) for e in outcome.events] == [("Normal", "PolicyEnforced")]
    assert outcome.failure is None


def test_enforcement_failure_is_a_warning_once_not_every_sweep() -> None:
    o = obj()
    first = conclude_policy(o, desired_policy(o), Enforcement({"support-1": live("support-1")},
                                                              results=[result(False)]), NOW)
    synced = first.status["conditions"][1]
    assert (synced["status"], synced["reason"]) == ("False", "EnforcementFailed")
    assert "participant not found" in synced["message"]
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "EnforcementFailed")]
    assert first.failure is not None and first.failure.reason == "ServerRejected"
    again = conclude_policy(obj(status=first.status), desired_policy(o),
                            Enforcement({"support-1": live("support-1")}, results=[result(False)]), LATER)
    assert again.events == ()
    assert again.status["conditions"][1]["lastTransitionTime"] == NOW


def test_quiet_sweeps_do_not_rewrite_the_status() -> None:
    o = obj()
    enforcement = Enforcement({"support-1": live("support-1")})
    first = conclude_policy(o, desired_policy(o), enforcement, NOW).status
    second = conclude_policy(obj(status=first), desired_policy(o), enforcement, LATER).status
    assert second["lastEnforcedTime"] == LATER
    assert not status_changed(first, second, 60.0, 300.0)
    assert status_changed(first, second, 301.0, 300.0)


def test_observe_only_policy_is_drift_not_change() -> None:
    o = obj({"rooms": ["support-*"], "participants": [{"identity": "*", "permission": {"canPublishData": False}}],
             "policy": {"observeOnly": True}})
    policy = desired_policy(o)
    from reconciler.observed import ObservedParticipant

    room = ObservedRoom("support-1", "RM_1", 300, 20, 0, "", 1, participants=(
        ObservedParticipant("u1", "STANDARD", {"can_publish_data": True}),))
    plans = plan_undeclared([policy], {"support-1": room}, declared=())
    assert not any(p.actions for p in plans)
    status = conclude_policy(o, policy, Enforcement({"support-1": room}, plans=plans), NOW).status
    assert status["driftLastSweep"] == 1 and status["conditions"][1]["reason"] == "ObserveOnly"


def test_invalid_policy_is_refused_at_once() -> None:
    outcome = policy_checked(obj({"rooms": []}), NOW)
    ready = outcome.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert outcome.events[0].reason == "EnforcementFailed"
    ok = policy_checked(obj(), NOW)
    assert ok.status["conditions"][0]["reason"] == "Accepted" and not ok.events
