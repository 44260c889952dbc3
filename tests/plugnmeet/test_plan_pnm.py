"""The plugNmeet plan, pure: declared fields, ignore, the spec hash, policies."""

from __future__ import annotations

import io
import json
from typing import Any

from reconciler.model.plugnmeet import SPEC_HASH_KEY, DesiredPnmRoom, PlugNmeetRoomManifest, create_request
from reconciler.observed import ObservedPnmRoom
from reconciler.plan import ActionKind, DriftReason, Plan
from reconciler.plan.plugnmeet import plan_pnm_room
from reconciler.render import plan_json, render_text


def desired(**spec: Any) -> DesiredPnmRoom:
    spec.setdefault("metadata", {"roomTitle": "Physics", "defaultLockSettings": {"lockMicrophone": True}})
    manifest = PlugNmeetRoomManifest.model_validate({"apiVersion": "roomctl.dev/v1alpha1", "kind": "PlugNmeetRoom",
                                                     "metadata": {"name": "physics"}, "spec": spec})
    return DesiredPnmRoom(manifest, "f.yaml", 1)


def served(room: DesiredPnmRoom, joined: int = 0, **overrides: Any) -> ObservedPnmRoom:
    """What the server returns for a room created from `room`'s spec, with overrides applied."""
    metadata = create_request(room.name, room.spec)["metadata"]
    metadata = {**metadata, "room_features": {"allow_webcams": True, "room_duration": "0"}, "started_at": "17",
                "default_lock_settings": {"lock_microphone": True, "lock_webcam": False}}
    for key, value in overrides.items():
        metadata[key] = value
    return ObservedPnmRoom("physics", "sid-1", joined, metadata)


def test_locks_changed_by_a_moderator_are_ignored_by_policy() -> None:
    room = desired(policy={"ignore": ["defaultLockSettings"], "recreate": "Always"})
    result = plan_pnm_room(room, served(room, default_lock_settings={"lock_microphone": False}))
    assert result.actions == ()
    assert [(d.field, d.reason) for d in result.drifts] == [("metadata.defaultLockSettings.lockMicrophone",
                                                             DriftReason.IGNORED)]
    # Without ignore, the same difference is a change (here: policy Never, so reported, not acted on).
    strict = desired()
    plain = plan_pnm_room(strict, served(strict, default_lock_settings={"lock_microphone": False}))
    assert plain.actions == () and plain.drifts[0].reason == DriftReason.SERVER_REFUSED


def test_changed_empty_timeout_is_seen_through_the_hash() -> None:
    before = desired(emptyTimeout=1800, policy={"recreate": "IfEmpty"})
    after = desired(emptyTimeout=3600, policy={"recreate": "IfEmpty"})
    assert plan_pnm_room(before, served(before)).status == "in-sync"
    result = plan_pnm_room(after, served(before))
    assert [a.kind for a in result.actions] == [ActionKind.RECREATE_ROOM]
    # The declared values of the fields the server never returns, then the hash (the old values are unknown).
    old_hash, new_hash = (served(r).metadata["extra_data"][SPEC_HASH_KEY] for r in (before, after))
    assert [(c.field, c.old, c.new) for c in result.actions[0].changes] == [
        ("emptyTimeout", "(not returned by plugNmeet)", 3600), ("spec-hash", old_hash, new_hash)]
    assert result.actions[0].request["empty_timeout"] == 3600
    assert result.actions[0].request["metadata"]["extra_data"][SPEC_HASH_KEY] != \
        served(before).metadata["extra_data"][SPEC_HASH_KEY]
    occupied = plan_pnm_room(after, served(before, joined=2))
    assert occupied.actions == () and occupied.drifts[0].reason == DriftReason.RECREATE_OCCUPIED
    assert next((d.field, d.observed, d.desired) for d in occupied.drifts) == \
        ("emptyTimeout", "(not returned by plugNmeet)", 3600)


def test_a_hash_only_change_renders_the_declared_unreadable_fields_in_text_and_json() -> None:
    before = desired(emptyTimeout=3600, maxParticipants=40, policy={"recreate": "IfEmpty"})
    after = desired(emptyTimeout=3600, maxParticipants=45, policy={"recreate": "IfEmpty"})
    plan = Plan((plan_pnm_room(after, served(before)),))
    out = io.StringIO()
    render_text(plan, out, colour=False)
    lines = [ln.strip() for ln in out.getvalue().splitlines()]
    assert "~ emptyTimeout: (not returned by plugNmeet) -> 3600  # forces re-create" in lines
    assert "~ maxParticipants: (not returned by plugNmeet) -> 45  # forces re-create" in lines
    assert any(ln.startswith('~ spec-hash: "') and ln.endswith("# forces re-create") for ln in lines)
    changes = plan_json(plan)["rooms"][0]["actions"][0]["changes"]
    assert [(c["field"], c["old"], c["new"]) for c in changes[:2]] == [
        ("emptyTimeout", "(not returned by plugNmeet)", 3600), ("maxParticipants", "(not returned by plugNmeet)", 45)]
    assert changes[2]["field"] == "spec-hash"
    assert json.loads(json.dumps(plan_json(plan))) == plan_json(plan)
    # Nothing declared that the server cannot return (a metadata field was dropped): the hash line alone.
    plain = desired(policy={"recreate": "IfEmpty"}, metadata={"roomTitle": "Physics"})
    fields = [c.field for c in plan_pnm_room(plain, served(desired(policy={"recreate": "IfEmpty"}))).actions[0].changes]
    assert fields == ["spec-hash"]


def test_room_not_created_by_roomctl_counts_as_changed() -> None:
    room = desired(policy={"recreate": "Always"})
    foreign = served(room, extra_data={}, welcome_message="old")
    result = plan_pnm_room(desired(metadata={"roomTitle": "Physics", "welcomeMessage": "new"},
                                   policy={"recreate": "Always"}), foreign)
    assert [a.kind for a in result.actions] == [ActionKind.RECREATE_ROOM]


def test_absent_rooms_by_lifecycle_and_observe_only() -> None:
    assert [a.kind for a in plan_pnm_room(desired(), None).actions] == [ActionKind.CREATE_ROOM]
    assert plan_pnm_room(desired(policy={"lifecycle": "OnDemand"}), None).status == "absent"
    watched = plan_pnm_room(desired(policy={"observeOnly": True}), None)
    assert watched.actions == () and watched.drifts[0].reason == DriftReason.OBSERVE_ONLY
