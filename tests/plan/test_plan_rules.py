"""One table-driven case per rule of DESIGN §3. The planner is pure: no server here."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.model import DesiredRoom, RoomManifest
from reconciler.observed import ObservedDispatch, ObservedParticipant, ObservedRoom, ObservedState
from reconciler.plan import ActionKind, DriftReason, PlanOptions, PlanRefused, plan


def desired(name: str, **spec: Any) -> DesiredRoom:
    manifest = RoomManifest.model_validate(
        {"apiVersion": "roomctl.dev/v1alpha1", "kind": "Room", "metadata": {"name": name}, "spec": spec}
    )
    return DesiredRoom(manifest, "rooms.yaml", 1)


def observed(name: str, **fields: Any) -> ObservedRoom:
    base: dict[str, Any] = dict(sid="RM_old", empty_timeout=300, departure_timeout=20, max_participants=0,
                                metadata="", num_participants=0)
    base.update(fields)
    return ObservedRoom(name=name, **base)


def participant(identity: str, kind: str = "STANDARD", **permission: Any) -> ObservedParticipant:
    perm = {"can_subscribe": True, "can_publish": True, "can_publish_data": True, "can_publish_sources": [],
            "hidden": False, "recorder": False, "can_update_metadata": False, "agent": False,
            "can_subscribe_metrics": False, "can_manage_agent_session": False}
    perm.update(permission)
    return ObservedParticipant(identity, kind, perm, attributes={"keep": "1"})


def state(*rooms: ObservedRoom, complete: bool = False) -> ObservedState:
    return ObservedState({r.name: r for r in rooms}, complete)


def kinds(p: Any) -> list[str]:
    return [str(a.kind) for a in p.actions]


CASES: list[tuple[str, list[DesiredRoom], ObservedState, list[str], list[str]]] = [
    # (rule, desired, observed, expected action kinds in execution order, expected drift reasons)
    ("persistent absent room is created", [desired("a", emptyTimeout=600)], state(), ["CreateRoom"], []),
    ("ondemand absent room is not drift", [desired("a", policy={"lifecycle": "OnDemand"})], state(), [], []),
    ("metadata differs -> UpdateRoomMetadata only",
     [desired("a", metadata="new")], state(observed("a", metadata="old")), ["UpdateRoomMetadata"], []),
    ("empty metadata is a real value that clears",
     [desired("a", metadata="")], state(observed("a", metadata="old")), ["UpdateRoomMetadata"], []),
    ("undeclared fields are not enforced", [desired("a")], state(observed("a", empty_timeout=999)), [], []),
    ("immutable change under recreate Never is drift",
     [desired("a", maxParticipants=5)], state(observed("a")), [], ["recreate_never"]),
    ("immutable change under IfEmpty on an empty room re-creates",
     [desired("a", maxParticipants=5, policy={"recreate": "IfEmpty"})], state(observed("a")), ["RecreateRoom"], []),
    ("immutable change under IfEmpty on an occupied room is drift",
     [desired("a", maxParticipants=5, policy={"recreate": "IfEmpty"})],
     state(observed("a", num_participants=2)), [], ["recreate_occupied"]),
    ("immutable change under Always re-creates even when occupied",
     [desired("a", emptyTimeout=900, policy={"recreate": "Always"})],
     state(observed("a", num_participants=2)), ["RecreateRoom"], []),
    ("observeOnly turns every action into drift",
     [desired("a", metadata="x", policy={"observeOnly": True})], state(observed("a")), [], ["observe_only"]),
    ("observeOnly on an absent room creates nothing",
     [desired("a", policy={"observeOnly": True})], state(), [], ["observe_only"]),
    ("ignored field is drift, not an action",
     [desired("a", metadata="x", policy={"ignore": ["metadata"]})], state(observed("a", metadata="y")),
     [], ["ignored"]),
    ("missing agent is dispatched",
     [desired("a", agents=[{"agentName": "bot"}])], state(observed("a", dispatches=(ObservedDispatch("AD_1", ""),))),
     ["CreateDispatch"], []),
    ("existing agent is never dispatched twice",
     [desired("a", agents=[{"agentName": "bot", "metadata": "m"}])],
     state(observed("a", dispatches=(ObservedDispatch("AD_1", "bot", "m"),))), [], []),
    ("Additive replaces an agent whose metadata changed (issue 13)",
     [desired("a", agents=[{"agentName": "bot", "metadata": "m2"}])],
     state(observed("a", dispatches=(ObservedDispatch("AD_1", "bot", "m"),))), ["CreateDispatch", "DeleteDispatch"],
     []),
    ("Additive leaves undeclared dispatches and the implicit one",
     [desired("a", agents=[])], state(observed("a", dispatches=(ObservedDispatch("AD_1", ""),
                                                                ObservedDispatch("AD_2", "x")))), [], []),
    ("Exact deletes undeclared dispatches, the implicit one too",
     [desired("a", policy={"agents": "Exact"})],
     state(observed("a", dispatches=(ObservedDispatch("AD_1", ""), ObservedDispatch("AD_2", "x")))),
     ["DeleteDispatch", "DeleteDispatch"], []),
    ("partial permission rule updates only a differing participant",
     [desired("a", participants=[{"identity": "*", "permission": {"canPublish": False}}])],
     state(observed("a", participants=(participant("p1"), participant("p2", can_publish=False)))),
     ["UpdateParticipant"], []),
    ("first matching rule wins",
     [desired("a", participants=[{"identity": "host-*", "permission": {"canPublish": True}},
                                 {"identity": "*", "permission": {"canPublish": False}}])],
     state(observed("a", participants=(participant("host-1"),))), [], []),
    ("rules skip agents unless kinds names them",
     [desired("a", participants=[{"identity": "*", "permission": {"canPublish": False}}])],
     state(observed("a", participants=(participant("bot", "AGENT"),))), [], []),
    ("remove rule disconnects",
     [desired("a", participants=[{"identity": "banned-*", "remove": True}])],
     state(observed("a", participants=(participant("banned-1"), participant("ok")))), ["RemoveParticipant"], []),
    ("participant metadata cannot be cleared",
     [desired("a", participants=[{"identity": "*", "metadata": ""}])],
     state(observed("a", participants=(ObservedParticipant("p", "STANDARD", {}, metadata="m"),))),
     [], ["cannot_clear"]),
    ("attribute null deletes the key",
     [desired("a", participants=[{"identity": "*", "attributes": {"keep": None}}])],
     state(observed("a", participants=(participant("p"),))), ["UpdateParticipant"], []),
    ("order: creates, metadata, dispatches, participants",
     [desired("b", metadata="m", agents=[{"agentName": "x"}],
              participants=[{"identity": "*", "permission": {"canPublish": False}}]),
      desired("a")],
     state(observed("b", dispatches=(), participants=(participant("p"),))),
     ["CreateRoom", "UpdateRoomMetadata", "CreateDispatch", "UpdateParticipant"], []),
]


@pytest.mark.parametrize(("rule", "rooms", "seen", "want_actions", "want_drift"), CASES, ids=[c[0] for c in CASES])
def test_plan_rule(rule: str, rooms: list[DesiredRoom], seen: ObservedState, want_actions: list[str],
                   want_drift: list[str]) -> None:
    result = plan(rooms, seen)
    assert kinds(result) == want_actions
    assert sorted({str(d.reason) for d in result.drifts}) == sorted(set(want_drift))
    assert all(d.detail for d in result.drifts), "every drift carries its reason"


def test_permission_update_sends_observed_overlaid_with_rule() -> None:
    rooms = [desired("a", participants=[{"identity": "*", "permission": {"canPublish": False}}])]
    result = plan(rooms, state(observed("a", participants=(participant("p", can_subscribe=True, hidden=True),))))
    (action,) = result.actions
    assert action.request["permission"]["can_publish"] is False
    # Fields the rule does not name keep the participant's values: the server replaces the set whole.
    assert action.request["permission"]["can_subscribe"] is True
    assert action.request["permission"]["hidden"] is True


def test_recreate_carries_new_sid_request_and_old_sid() -> None:
    rooms = [desired("a", maxParticipants=5, metadata="m", policy={"recreate": "IfEmpty"})]
    (action,) = plan(rooms, state(observed("a", metadata="old"))).actions
    assert action.kind == ActionKind.RECREATE_ROOM and action.old_sid == "RM_old"
    assert action.request["max_participants"] == 5 and action.request["metadata"] == "m"


def test_exact_agents_on_create_drops_implicit_dispatch() -> None:
    (action,) = plan([desired("a", policy={"agents": "Exact"})], state()).actions
    assert action.drop_implicit_dispatch


def test_unreadable_fields_are_reported_not_verifiable() -> None:
    result = plan([desired("a", tags={"t": "1"}, syncStreams=True)], state(observed("a")))
    assert result.rooms[0].not_verifiable == ("syncStreams", "tags")
    assert not result.has_changes


def test_prune_deletes_only_inside_scope() -> None:
    seen = state(observed("team-old"), observed("other"), observed("team-busy", num_participants=3), complete=True)
    result = plan([desired("team-keep")], seen, PlanOptions(prune=True, prune_scopes=("team-*",)))
    deleted = [a.room for a in result.actions if a.kind == ActionKind.DELETE_ROOM]
    assert deleted == ["team-old"]
    assert result.unmanaged == 1
    assert [d.reason for d in result.drifts] == [DriftReason.PRUNE_OCCUPIED]
    # the kept room names the same --prune-scope GLOB a delete would (not a bare "--prune")
    assert [d.source for d in result.drifts] == ["--prune-scope team-*"]
    assert [a.source for a in result.actions if a.kind == ActionKind.DELETE_ROOM] == ["--prune-scope team-*"]


def test_prune_occupied_when_told() -> None:
    seen = state(observed("team-busy", num_participants=3), complete=True)
    result = plan([desired("team-keep")], seen, PlanOptions(prune=True, prune_scopes=("team-*",), prune_occupied=True))
    assert [a.room for a in result.actions] == ["team-keep", "team-busy"]


def test_prune_refuses_empty_desired_set_and_missing_scope() -> None:
    seen = state(observed("x"), complete=True)
    with pytest.raises(PlanRefused):
        plan([], seen, PlanOptions(prune=True, prune_scopes=("*",)))
    with pytest.raises(PlanRefused):
        plan([desired("a")], seen, PlanOptions(prune=True))
    assert kinds(plan([], seen, PlanOptions(prune=True, prune_scopes=("*",), allow_empty=True))) == ["DeleteRoom"]


def test_without_prune_undeclared_rooms_are_only_counted() -> None:
    result = plan([desired("a")], state(observed("a"), observed("b")))
    assert not result.has_changes and result.unmanaged == 1
