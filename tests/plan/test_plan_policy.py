"""RoomPolicy planning, table-driven: precedence Room > policy > policy, exclude, kinds, observeOnly,
ignore, agents, metadata, prune and provenance. The planner is pure: no server here."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.model import DesiredPolicy, RoomPolicyManifest
from reconciler.observed import ObservedDispatch
from reconciler.plan import ActionKind, DriftReason, PlanOptions, PlanRefused, plan, plan_live_room, what_to_observe

from .test_plan_rules import desired, observed, participant, state


def policy(name: str, rooms: list[str] | None = None, **spec: Any) -> DesiredPolicy:
    manifest = RoomPolicyManifest.model_validate({
        "apiVersion": "roomctl.dev/v1alpha1", "kind": "RoomPolicy", "metadata": {"name": name},
        "spec": {"rooms": rooms if rooms is not None else ["support-*"], **spec},
    })
    return DesiredPolicy(manifest, "policies.yaml", 1)


MUTE = {"identity": "*", "permission": {"canPublish": False}}
UNMUTE = {"identity": "*", "permission": {"canPublish": True}}
BAN = {"identity": "banned-*", "remove": True}


def sources(result: Any) -> list[tuple[str, str, str]]:
    return [(str(a.kind), a.target or a.room, a.source) for a in result.actions]


CASES: list[tuple[str, list[Any], list[DesiredPolicy], Any, list[tuple[str, str, str]]]] = [
    # (rule, Rooms, policies, observed, expected (action, target, source) in execution order)
    ("an undeclared live room gets the policy's rule",
     [], [policy("support", participants=[MUTE])],
     state(observed("support-1", participants=(participant("u1"),))),
     [("UpdateParticipant", "u1", "RoomPolicy support, rule 1")]),
    ("rooms outside the globs are untouched",
     [], [policy("support", participants=[MUTE])],
     state(observed("sales-1", participants=(participant("u1"),))), []),
    ("exclude wins over rooms",
     [], [policy("support", exclude=["support-vip-*"], participants=[MUTE])],
     state(observed("support-vip-1", participants=(participant("u1"),)),
           observed("support-2", participants=(participant("u2"),))),
     [("UpdateParticipant", "u2", "RoomPolicy support, rule 1")]),
    ("the Room's own rule comes before any policy",
     [desired("support-1", participants=[{"identity": "host-*", "permission": {"canPublish": True}}])],
     [policy("support", participants=[MUTE])],
     state(observed("support-1", participants=(participant("host-1", can_publish=False), participant("u1")))),
     [("UpdateParticipant", "host-1", "Room support-1, rule 1"),
      ("UpdateParticipant", "u1", "RoomPolicy support, rule 1")]),
    ("lower priority runs first; first matching rule wins across policies",
     [], [policy("b-loud", priority=10, participants=[UNMUTE]), policy("a-quiet", priority=20, participants=[MUTE])],
     state(observed("support-1", participants=(participant("u1", can_publish=False),))),
     [("UpdateParticipant", "u1", "RoomPolicy b-loud, rule 1")]),
    ("equal priority: ties broken by name",
     [], [policy("b", participants=[UNMUTE]), policy("a", participants=[MUTE])],
     state(observed("support-1", participants=(participant("u1"),))),
     [("UpdateParticipant", "u1", "RoomPolicy a, rule 1")]),
    ("a later policy's rule applies when earlier ones do not match the participant",
     [], [policy("a", participants=[BAN]), policy("b", participants=[{"identity": "guest-*", "remove": True}])],
     state(observed("support-1", participants=(participant("guest-1"), participant("banned-2")))),
     [("RemoveParticipant", "banned-2", "RoomPolicy a, rule 1"),
      ("RemoveParticipant", "guest-1", "RoomPolicy b, rule 1")]),
    ("rule numbers count from 1 within the policy",
     [], [policy("s", participants=[{"identity": "host-*", "permission": {"canPublish": True}}, MUTE])],
     state(observed("support-1", participants=(participant("u1"),))),
     [("UpdateParticipant", "u1", "RoomPolicy s, rule 2")]),
    ("rules skip agents unless kinds names them",
     [], [policy("s", participants=[MUTE])],
     state(observed("support-1", participants=(participant("bot", "AGENT"),))), []),
    ("kinds: [AGENT] reaches agents",
     [], [policy("s", participants=[{**MUTE, "kinds": ["AGENT"]}])],
     state(observed("support-1", participants=(participant("bot", "AGENT"), participant("u1")))),
     [("UpdateParticipant", "bot", "RoomPolicy s, rule 1")]),
    ("policy agents are dispatched where missing, never twice",
     [], [policy("s", agents=[{"agentName": "note-taker"}])],
     state(observed("support-1", dispatches=()), observed("support-2", dispatches=(ObservedDispatch("AD_1", "note-taker"),))),
     [("CreateDispatch", "support-1", "RoomPolicy s, agents")]),
    ("a Room's agent shadows a policy agent of the same name",
     [desired("support-1", agents=[{"agentName": "note-taker", "metadata": "room"}])],
     [policy("s", agents=[{"agentName": "note-taker", "metadata": "policy"}])],
     state(observed("support-1", dispatches=())),
     [("CreateDispatch", "support-1", "Room support-1, agents")]),
    ("agents: Exact on the Room keeps policy agents",
     [desired("support-1", policy={"agents": "Exact"})], [policy("s", agents=[{"agentName": "note-taker"}])],
     state(observed("support-1", dispatches=(ObservedDispatch("AD_1", "note-taker"), ObservedDispatch("AD_2", "x")))),
     [("DeleteDispatch", "AD_2", "Room support-1, policy.agents Exact")]),
    ("roomMetadata: first matching policy wins",
     [], [policy("a", roomMetadata={"tier": "a"}), policy("b", roomMetadata="b")],
     state(observed("support-1")),
     [("UpdateRoomMetadata", "support-1", "RoomPolicy a, roomMetadata")]),
    ("the Room's metadata wins over a policy's",
     [desired("support-1", metadata="room")], [policy("a", roomMetadata="policy")],
     state(observed("support-1", metadata="room")), []),
    ("a declared room's create carries policy agents and metadata; nothing else is planned for it",
     [desired("support-1")], [policy("a", roomMetadata="m", agents=[{"agentName": "n"}], participants=[MUTE])],
     state(), [("CreateRoom", "support-1", "Room support-1")]),
    ("a Room ignoring participants is not enforced by policies either",
     [desired("support-1", policy={"ignore": ["participants"]})], [policy("s", participants=[MUTE])],
     state(observed("support-1", participants=(participant("u1"),))), []),
    ("policy ignore drops its rules",
     [], [policy("s", participants=[MUTE], policy={"ignore": ["participants"]})],
     state(observed("support-1", participants=(participant("u1"),))), []),
]


@pytest.mark.parametrize(("rule", "rooms", "policies", "seen", "want"), CASES, ids=[c[0] for c in CASES])
def test_policy_rule(rule: str, rooms: list[Any], policies: list[DesiredPolicy], seen: Any,
                     want: list[tuple[str, str, str]]) -> None:
    result = plan(rooms, seen, policies=policies)
    assert sources(result) == want
    assert all(d.source for d in result.drifts), "every drift names its source"


def test_create_request_includes_policy_agents_and_metadata() -> None:
    result = plan([desired("support-1")], state(), policies=[policy("a", roomMetadata="m", agents=[{"agentName": "n"}])])
    (action,) = result.actions
    assert action.request["agents"] == [{"agent_name": "n"}] and action.request["metadata"] == "m"


def test_observe_only_policy_reports_drift_with_source() -> None:
    p = policy("watch", participants=[MUTE], policy={"observeOnly": True}, roomMetadata="m")
    result = plan([], state(observed("support-1", participants=(participant("u1"),))), policies=[p])
    assert not result.actions
    assert {(d.reason, d.source) for d in result.drifts} == {
        (DriftReason.OBSERVE_ONLY, "RoomPolicy watch, rule 1"),
        (DriftReason.OBSERVE_ONLY, "RoomPolicy watch, roomMetadata")}
    assert result.rooms[0].status == "drift" and result.rooms[0].policies == ("watch",)


def test_observe_only_policy_does_not_shadow_a_later_policy_for_other_participants() -> None:
    watch = policy("a", participants=[{"identity": "x-*", "permission": {"canPublish": False}}],
                   policy={"observeOnly": True})
    enforce = policy("b", participants=[MUTE])
    result = plan([], state(observed("support-1", participants=(participant("x-1"), participant("u1")))),
                  policies=[watch, enforce])
    # x-1 matched policy a first (observe only: drift); u1 falls through to b.
    assert sources(result) == [("UpdateParticipant", "u1", "RoomPolicy b, rule 1")]
    assert [d.source for d in result.drifts] == ["RoomPolicy a, rule 1"]


def test_ignored_policy_metadata_is_drift() -> None:
    p = policy("a", roomMetadata="m", policy={"ignore": ["metadata"]})
    result = plan([], state(observed("support-1", metadata="x")), policies=[p])
    assert [(d.reason, d.source) for d in result.drifts] == [(DriftReason.IGNORED, "RoomPolicy a, roomMetadata")]


def test_policies_never_create_and_closed_rooms_are_gone() -> None:
    p = policy("a", participants=[MUTE], agents=[{"agentName": "n"}])
    result = plan([], state(), policies=[p])
    assert result.rooms == () and not result.has_changes
    assert plan_live_room(None, [p], None) is None


def test_matched_rooms_are_not_unmanaged_but_others_are() -> None:
    result = plan([], state(observed("support-1"), observed("sales-1")), policies=[policy("a", participants=[MUTE])])
    assert result.unmanaged == 1
    assert [(r.name, r.status) for r in result.rooms] == [("support-1", "in-sync")]


def test_prune_ignores_policies() -> None:
    seen = state(observed("support-1"), observed("support-2", num_participants=1,
                                                  participants=(participant("u1"),)), complete=True)
    p = policy("a", participants=[MUTE])
    with pytest.raises(PlanRefused):  # a policy is not a declaration
        plan([], seen, PlanOptions(prune=True, prune_scopes=("support-*",)), policies=[p])
    result = plan([desired("keep")], seen, PlanOptions(prune=True, prune_scopes=("support-*",)), policies=[p])
    # The empty matched room is pruned; the occupied one is kept (drift) and still governed.
    assert sources(result) == [("CreateRoom", "keep", "Room keep"),
                               ("UpdateParticipant", "u1", "RoomPolicy a, rule 1"),
                               ("DeleteRoom", "support-1", "--prune-scope support-*")]
    assert [d.reason for d in result.drifts] == [DriftReason.PRUNE_OCCUPIED]


def test_plan_live_room_decides_like_the_batch() -> None:
    rooms = [desired("support-1", participants=[{"identity": "host-*", "permission": {"canPublish": True}}])]
    policies = [policy("b", participants=[BAN]), policy("a", priority=-1, participants=[MUTE])]
    seen = state(observed("support-1", participants=(participant("host-1", can_publish=False), participant("u"))),
                 observed("support-2", participants=(participant("banned-1"),)), observed("other"))
    batch = {r.name: r for r in plan(rooms, seen, policies=policies).rooms}
    for name, live in seen.rooms.items():
        single = plan_live_room(next((d for d in rooms if d.name == name), None), policies, live)
        assert single == batch.get(name)


def test_what_to_observe() -> None:
    rooms = [desired("plain"), desired("ruled", participants=[MUTE])]
    want = what_to_observe(rooms, [policy("a", participants=[MUTE]), policy("b", rooms=["bot-*"],
                                                                               agents=[{"agentName": "n"}])])
    assert want.names is None  # a policy needs every room listed
    assert (want.needs("plain").participants, want.needs("plain").dispatches) == (False, False)
    assert want.needs("ruled").participants
    assert want.needs("support-9").participants and not want.needs("support-9").dispatches
    assert want.needs("bot-1").dispatches and not want.needs("bot-1").participants
    assert want.needs("elsewhere") == want.needs("plain")
    assert what_to_observe(rooms).names == ["plain", "ruled"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"rooms": []}, "at least 1 item"),
    ({"rooms": ["support-*"], "exclude": ["*"]}, "exclude covers every name it matches"),
    ({"rooms": ["support-*"], "exclude": ["support-?*", "support-"]}, "exclude covers"),
    ({"rooms": ["a[z-a]"]}, "no name matches it"),
    ({"rooms": ["?" * 257]}, "no room name is that long"),
    ({"rooms": [""]}, "at least 1 character"),
    ({"rooms": ["x"], "agents": [{"agentName": "n"}, {"agentName": "n"}]}, "agent names must be unique"),
    ({"rooms": ["x"], "priority": "1"}, "valid integer"),
    ({"rooms": ["x"], "participants": [{"identity": "*", "remove": True, "name": "n"}]}, "remove: true"),
])
def test_policy_validation(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RoomPolicyManifest.model_validate({"apiVersion": "roomctl.dev/v1alpha1", "kind": "RoomPolicy",
                                           "metadata": {"name": "p"}, "spec": spec})


def test_glob_subtleties_still_match() -> None:
    assert policy("a", rooms=["call-??-*"], exclude=["call-[!x]?-*"]).matches("call-x1-9")
    assert not policy("a", rooms=["call-??-*"], exclude=["call-[!x]?-*"]).matches("call-a1-9")
    with pytest.raises(ValidationError):
        policy("a", rooms=["call-??-*"], exclude=["call-[!x]?-*", "call-x?-*"])


def test_remove_rule_from_policy_counts_for_ifempty_recreate() -> None:
    room = desired("support-1", maxParticipants=5, policy={"recreate": "IfEmpty"})
    seen = state(observed("support-1", num_participants=1, participants=(participant("banned-1"),)))
    result = plan([room], seen, policies=[policy("a", participants=[BAN])])
    assert [a.kind for a in result.actions] == [ActionKind.RECREATE_ROOM]
