"""The plugNmeet plan, pure: declared fields, ignore, the spec hash, policies."""

from __future__ import annotations

from typing import Any

from reconciler.model.plugnmeet import SPEC_HASH_KEY, DesiredPnmRoom, PlugNmeetRoomManifest, create_request
from reconciler.observed import ObservedPnmRoom
from reconciler.plan import ActionKind, DriftReason
from reconciler.plan.plugnmeet import plan_pnm_room


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
    assert result.actions[0].changes[0].field == "spec-hash"
    assert result.actions[0].request["empty_timeout"] == 3600
    assert result.actions[0].request["metadata"]["extra_data"][SPEC_HASH_KEY] != \
        served(before).metadata["extra_data"][SPEC_HASH_KEY]
    occupied = plan_pnm_room(after, served(before, joined=2))
    assert occupied.actions == () and occupied.drifts[0].reason == DriftReason.RECREATE_OCCUPIED


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
