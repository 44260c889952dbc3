"""The in-sync path stays cheap without deciding differently: a room that exists is not asked for
its CreateRoom body, and a declared room's name is worked out once. The decisions themselves are
the rules table's (test_plan_rules.py) and the properties' (test_plan_properties.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import reconciler.plan.room as plan_room_module
from reconciler.model import DesiredRoom, RoomManifest
from reconciler.observed import ObservedRoom
from reconciler.plan import ActionKind, plan_room
from tests.plan.test_plan_rules import desired, observed


def live(name: str, **fields: Any) -> ObservedRoom:
    return observed(name, **{"empty_timeout": 60, "max_participants": 5, "metadata": '{"a":1}', **fields})


SPEC: dict[str, Any] = {"emptyTimeout": 60, "maxParticipants": 5, "metadata": {"a": 1}}


def test_a_room_in_sync_builds_no_create_request(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> dict[str, Any]:
        raise AssertionError("create_request built for a room that exists")

    monkeypatch.setattr(plan_room_module, "create_request", refuse)
    planned = plan_room(desired("lobby", **SPEC), live("lobby"))
    assert (planned.status, planned.actions, planned.drifts) == ("in-sync", (), ())


@pytest.mark.parametrize(("spec", "room", "kind"), [
    ({**SPEC, "policy": {"agents": "Exact"}}, None, ActionKind.CREATE_ROOM),
    ({**SPEC, "emptyTimeout": 90, "policy": {"recreate": "Always", "agents": "Exact"}}, live("lobby"),
     ActionKind.RECREATE_ROOM),
])
def test_a_create_or_recreate_still_carries_the_whole_request(spec: dict[str, Any], room: ObservedRoom | None,
                                                             kind: ActionKind) -> None:
    planned = plan_room(desired("lobby", **spec), room)
    (action,) = planned.actions
    assert action.kind == kind
    assert action.request == {"name": "lobby", "empty_timeout": spec["emptyTimeout"], "max_participants": 5,
                              "metadata": '{"a":1}'}
    assert action.drop_implicit_dispatch  # agents: Exact and no agent declared


def test_metadata_in_sync_and_out_of_sync() -> None:
    assert plan_room(desired("lobby", metadata="x"), live("lobby", metadata="x")).status == "in-sync"
    planned = plan_room(desired("lobby", metadata="x"), live("lobby", metadata="y"))
    (action,) = planned.actions
    assert (action.kind, action.request, action.source) == (ActionKind.UPDATE_ROOM_METADATA,
                                                            {"room": "lobby", "metadata": "x"}, "Room lobby")
    ignored = plan_room(desired("lobby", metadata="x", policy={"ignore": ["metadata"]}), live("lobby", metadata="y"))
    assert (ignored.status, [d.field for d in ignored.drifts]) == ("drift", ["metadata"])


def test_the_desired_room_name_is_kept_not_compared() -> None:
    manifest = RoomManifest.model_validate({"apiVersion": "roomctl.dev/v1alpha1", "kind": "Room",
                                            "metadata": {"name": "lobby"}, "spec": {"name": "real-name"}})
    room = DesiredRoom(manifest, "rooms.yaml", 1)
    assert room.name == "real-name"
    assert room == DesiredRoom(manifest, "rooms.yaml", 1)
    other = dataclasses.replace(room, manifest=desired("hall").manifest)
    assert other.name == "hall"  # worked out again from the new manifest
