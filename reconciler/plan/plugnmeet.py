"""The plan for plugNmeet rooms: pure, like plan/room.py (DESIGN §2 "kind: PlugNmeetRoom").

plugNmeet cannot change a live room, so every difference is fixed by endRoom + create, and only
under policy.recreate. The spec hash kept in extra_data tells "the manifest changed" (act, under
policy) from "the server altered a declared field" (report it; re-creating again would loop)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic.alias_generators import to_camel

from ..model.plugnmeet import SPEC_HASH_KEY, DesiredPnmRoom, create_request, spec_hash
from ..observed import ObservedPnmRoom
from .core import (
    Action,
    ActionKind,
    Drift,
    DriftReason,
    FieldChange,
    NotReturned,
    Plan,
    PlanOptions,
    PruneCandidate,
    RoomPlan,
    check_prune,
    prune_plans,
)

KIND = "PlugNmeetRoom"
# Fields of the create request plugNmeet never returns (request key, manifest name): the spec hash
# in extra_data is the only way to tell they changed.
UNREADABLE = (("empty_timeout", "emptyTimeout"), ("max_participants", "maxParticipants"))


def _leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Declared scalar fields by path; an empty mapping declares nothing (`roomFeatures: {}`)."""
    if isinstance(value, dict):
        return [leaf for key, sub in value.items() for leaf in _leaves(sub, (*path, key))]
    return [(path, value)]


def _lookup(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _label(path: Sequence[str]) -> str:
    return "metadata." + ".".join(to_camel(p) for p in path)


def _normal(value: Any) -> Any:
    # protojson writes 64-bit integers as strings ("room_duration": "0").
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, list):
        return sorted(value, key=str)
    return value


def _ignored(label: str, ignore: Sequence[str]) -> bool:
    short = label.removeprefix("metadata.")
    return any(short == rule or short.startswith(rule + ".") for rule in ignore)


def differences(desired: DesiredPnmRoom, observed: ObservedPnmRoom) -> list[tuple[str, Any, Any]]:
    """Declared metadata fields whose served value differs: (label, observed, desired)."""
    declared = desired.spec.metadata.model_dump(exclude_none=True)
    out = []
    for path, wanted in _leaves(declared):
        have = _lookup(observed.metadata, path)
        if _normal(have) != _normal(wanted):
            out.append((_label(path), have, wanted))
    return out


def plan_pnm_room(desired: DesiredPnmRoom, observed: ObservedPnmRoom | None) -> RoomPlan:
    spec, name, policy = desired.spec, desired.name, desired.spec.policy
    request = create_request(name, spec)
    if spec.suspend:
        return RoomPlan(name, desired.source, "suspended", observed.sid if observed else "", kind=KIND)
    if observed is None:
        if policy.lifecycle == "OnDemand":
            return RoomPlan(name, desired.source, "absent", kind=KIND)
        created = [FieldChange("roomTitle", None, spec.metadata.room_title)]
        created += [FieldChange(label, None, request[key]) for key, label in UNREADABLE if key in request]
        action = Action(ActionKind.CREATE_ROOM, name, tuple(created), request)
        if policy.observe_only:
            drift = Drift(name, "room", "absent", "present", DriftReason.OBSERVE_ONLY,
                          "CreateRoom not applied: policy.observeOnly")
            return RoomPlan(name, desired.source, "drift", drifts=(drift,), kind=KIND)
        return RoomPlan(name, desired.source, "create", actions=(action,), kind=KIND)

    drifts: list[Drift] = []
    changes: list[FieldChange] = []
    for label, have, wanted in differences(desired, observed):
        if _ignored(label, policy.ignore):
            drifts.append(Drift(name, label, have, wanted, DriftReason.IGNORED, f"{label} is in policy.ignore"))
        else:
            changes.append(FieldChange(label, have, wanted))
    served_hash = (observed.metadata.get("extra_data") or {}).get(SPEC_HASH_KEY)
    wanted_hash = spec_hash(name, spec)
    not_verifiable = tuple(label for key, label in UNREADABLE if key in request and served_hash is None)
    if served_hash == wanted_hash and changes:
        # Created from this very spec, yet the server serves something else: it refused the value
        # (a default-true boolean sent false on v2.3+). Another re-create would change nothing.
        drifts.extend(Drift(name, c.field, c.old, c.new, DriftReason.SERVER_REFUSED,
                            "the room was created with this value but the server does not honour it "
                            "(plugNmeet v2.3+ ignores false for a default-true field; use lock settings)")
                      for c in changes)
        changes = []
    elif served_hash is not None and served_hash != wanted_hash and not changes:
        # The manifest changed in a field the server never returns (emptyTimeout, maxParticipants), or
        # a field is no longer declared: say what is declared (the old value is unknowable), then the hash.
        changes.extend(FieldChange(label, NotReturned("plugNmeet"), request[key]) for key, label in UNREADABLE
                       if key in request)
        changes.append(FieldChange("spec-hash", served_hash, wanted_hash))

    actions: list[Action] = []
    if changes:
        occupied = observed.joined_participants
        if policy.observe_only:
            drifts.extend(Drift(name, c.field, c.old, c.new, DriftReason.OBSERVE_ONLY,
                                "not applied: policy.observeOnly") for c in changes)
        elif policy.recreate == "Always" or (policy.recreate == "IfEmpty" and occupied == 0):
            actions.append(Action(ActionKind.RECREATE_ROOM, name, tuple(changes), request, old_sid=observed.sid,
                                  disconnects=occupied))
        else:
            reason = DriftReason.RECREATE_NEVER if policy.recreate == "Never" else DriftReason.RECREATE_OCCUPIED
            detail = ("plugNmeet cannot change a live room; policy.recreate is Never"
                      if policy.recreate == "Never"
                      else f"needs endRoom + create but {occupied} participant(s) joined (policy.recreate IfEmpty)")
            drifts.extend(Drift(name, c.field, c.old, c.new, reason, detail) for c in changes)
    status = "recreate" if actions else "drift" if drifts else "in-sync"
    return RoomPlan(name, desired.source, status, observed.sid, tuple(actions), tuple(drifts), not_verifiable,
                    kind=KIND)


def plan_pnm(desired: Sequence[DesiredPnmRoom], observed: Sequence[ObservedPnmRoom],
             options: PlanOptions | None = None) -> Plan:
    """Every plugNmeet room's plan. Prune ends only undeclared rooms inside a --prune-scope."""
    options = options or PlanOptions()
    check_prune(options, bool(desired))
    by_id = {r.room_id: r for r in observed}
    rooms = [plan_pnm_room(d, by_id.get(d.name)) for d in desired]
    undeclared = set(by_id) - {d.name for d in desired}
    pruned, unmanaged = prune_plans([PruneCandidate(i, by_id[i].sid, by_id[i].joined_participants)
                                     for i in undeclared], options, KIND, "room_id")
    return Plan((*rooms, *pruned), unmanaged)
