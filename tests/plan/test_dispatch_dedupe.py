"""Issue 9.2 and 13: one dispatch per declared agent, whatever the mode. Pure plan, no server."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.model import DesiredRoom, RoomManifest
from reconciler.observed import ObservedDispatch, ObservedRoom, ObservedState
from reconciler.plan import plan


def room(agents: list[dict[str, Any]], mode: str = "Additive") -> DesiredRoom:
    manifest = RoomManifest.model_validate({"apiVersion": "roomctl.dev/v1alpha1", "kind": "Room",
                                            "metadata": {"name": "a"},
                                            "spec": {"agents": agents, "policy": {"agents": mode}}})
    return DesiredRoom(manifest, "rooms.yaml", 1)


def seen(*dispatches: ObservedDispatch, unreadable: str = "") -> ObservedState:
    observed = ObservedRoom("a", "RM_1", 300, 20, 0, "", 0, dispatches=dispatches, unreadable=unreadable)
    return ObservedState({"a": observed})


def changes(state: ObservedState, desired: DesiredRoom) -> list[tuple[str, str]]:
    return [(str(a.kind), a.target or str(a.request.get("metadata", ""))) for a in plan([desired], state).actions]


@pytest.mark.parametrize("mode", ["Additive", "Exact"])
def test_duplicates_of_a_declared_dispatch_are_deleted_keeping_the_oldest(mode: str) -> None:
    state = seen(ObservedDispatch("AD_new", "bot", "m", created_at=30), ObservedDispatch("AD_old", "bot", "m", created_at=10),
                 ObservedDispatch("AD_mid", "bot", "m", created_at=20))
    assert changes(state, room([{"agentName": "bot", "metadata": "m"}], mode)) == [
        ("DeleteDispatch", "AD_mid"), ("DeleteDispatch", "AD_new")]


def test_same_timestamp_duplicates_keep_the_smallest_id_so_two_writers_agree() -> None:
    state = seen(ObservedDispatch("AD_b", "bot", created_at=5), ObservedDispatch("AD_a", "bot", created_at=5))
    assert changes(state, room([{"agentName": "bot"}])) == [("DeleteDispatch", "AD_b")]


def test_additive_replaces_a_dispatch_whose_metadata_changed() -> None:
    state = seen(ObservedDispatch("AD_1", "bot", "old", created_at=1))
    result = plan([room([{"agentName": "bot", "metadata": "new"}])], state)
    assert [(str(a.kind), a.target or a.request.get("metadata")) for a in result.actions] == [
        ("CreateDispatch", "new"), ("DeleteDispatch", "AD_1")]
    assert result.rooms[0].actions[1].changes[0].old == "bot (replaced: its settings changed)"


def test_additive_leaves_undeclared_agents_and_their_duplicates_alone() -> None:
    state = seen(ObservedDispatch("AD_1", "other", created_at=1), ObservedDispatch("AD_2", "other", created_at=2),
                 ObservedDispatch("AD_3", "", created_at=0), ObservedDispatch("AD_4", "bot", created_at=3))
    assert changes(state, room([{"agentName": "bot"}])) == []


def test_exact_removes_undeclared_and_duplicates() -> None:
    state = seen(ObservedDispatch("AD_1", "other", created_at=1), ObservedDispatch("AD_4", "bot", created_at=3),
                 ObservedDispatch("AD_5", "bot", created_at=4))
    assert changes(state, room([{"agentName": "bot"}], "Exact")) == [
        ("DeleteDispatch", "AD_5"), ("DeleteDispatch", "AD_1")]


def test_a_room_that_could_not_be_read_gets_no_action_and_says_why() -> None:
    state = seen(unreadable='ListDispatch "a": unavailable: injected fault')
    result = plan([room([{"agentName": "bot"}])], state)
    (only,) = result.rooms
    assert (only.status, only.actions, only.error) == ("unreadable", (), 'ListDispatch "a": unavailable: injected fault')
    assert result.counts()["unreadable"] == 1 and not result.has_changes


def test_created_at_is_read_from_the_wire() -> None:
    wire = {"id": "AD_x", "agent_name": "bot", "state": {"created_at": "1732000000123456789"}}
    assert ObservedDispatch.from_json(wire).created_at == 1732000000123456789

