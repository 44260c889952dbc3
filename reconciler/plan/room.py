"""The plan for LiveKit rooms: desired + observed -> Plan. Pure: no I/O, no clock, no randomness (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from pydantic.alias_generators import to_camel

from ..model.room import AgentDispatchSpec, DesiredRoom, ParticipantRule, RoomSpec
from ..observed import ObservedDispatch, ObservedParticipant, ObservedRoom, ObservedState
from .core import (
    Action,
    ActionKind,
    Drift,
    DriftReason,
    FieldChange,
    Plan,
    PlanOptions,
    PlanRefused,
    PruneCandidate,
    RoomPlan,
    check_prune,
    prune_plans,
)

DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20

# ---- what to observe ----------------------------------------------------------------------------


def needs_participants(spec: RoomSpec) -> bool:
    return bool(spec.participants) and "participants" not in spec.policy.ignore


def needs_dispatches(spec: RoomSpec) -> bool:
    return (spec.agents is not None or spec.policy.agents == "Exact") and "agents" not in spec.policy.ignore


# ---- requests -----------------------------------------------------------------------------------


def _agent_request(agent: AgentDispatchSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"agent_name": agent.agent_name}
    if agent.metadata:
        out["metadata"] = agent.metadata
    if agent.deployment:
        out["deployment"] = agent.deployment
    if agent.attributes:
        out["attributes"] = dict(agent.attributes)
    return out


def room_configuration(name: str, spec: RoomSpec) -> dict[str, Any]:
    """The room as a LiveKit RoomConfiguration / CreateRoomRequest body (proto names)."""
    body: dict[str, Any] = {"name": name}
    for key in ("empty_timeout", "departure_timeout", "max_participants", "metadata",
                "min_playout_delay", "max_playout_delay", "sync_streams", "egress", "tags"):
        value = getattr(spec, key)
        if value is not None:
            body[key] = value
    if spec.agents:
        body["agents"] = [_agent_request(a) for a in spec.agents]
    return body


# ---- planning one room --------------------------------------------------------------------------

UNREADABLE = (("egress", "egress"), ("min_playout_delay", "minPlayoutDelay"),
              ("max_playout_delay", "maxPlayoutDelay"), ("sync_streams", "syncStreams"), ("tags", "tags"))
IMMUTABLE = (("empty_timeout", "emptyTimeout"), ("departure_timeout", "departureTimeout"),
             ("max_participants", "maxParticipants"))


def _first_rule(rules: Sequence[ParticipantRule], p: ObservedParticipant) -> ParticipantRule | None:
    for rule in rules:
        if p.kind in rule.kinds and fnmatchcase(p.identity, rule.identity):
            return rule
    return None


def _normal(field_name: str, value: Any) -> Any:
    return sorted(value) if field_name == "can_publish_sources" else value


def _plan_participant(room: str, rule: ParticipantRule, p: ObservedParticipant) -> tuple[list[Action], list[Drift]]:
    if rule.remove:
        return [Action(ActionKind.REMOVE_PARTICIPANT, room, (FieldChange("participant", p.identity, None),),
                       {"room": room, "identity": p.identity}, target=p.identity)], []
    changes: list[FieldChange] = []
    drifts: list[Drift] = []
    request: dict[str, Any] = {"room": room, "identity": p.identity}
    if rule.permission is not None:
        declared = rule.permission.declared()
        differing = {k: v for k, v in declared.items() if _normal(k, p.permission.get(k)) != _normal(k, v)}
        if differing:
            # UpdateParticipant replaces the whole permission: send observed overlaid with the rule.
            request["permission"] = {**p.permission, **declared}
            changes.extend(FieldChange(f"permission.{to_camel(k)}", p.permission.get(k), v)
                           for k, v in differing.items())
    if rule.attributes:
        updates: dict[str, str] = {}
        for key, value in rule.attributes.items():
            if value is None or value == "":
                if key in p.attributes:
                    updates[key] = ""  # "" deletes the key on the server
                    changes.append(FieldChange(f"attributes.{key}", p.attributes[key], None))
            elif p.attributes.get(key) != value:
                updates[key] = value
                changes.append(FieldChange(f"attributes.{key}", p.attributes.get(key), value))
        if updates:
            request["attributes"] = updates
    for key in ("metadata", "name"):
        wanted = getattr(rule, key)
        have = getattr(p, key)
        if wanted is None or wanted == have:
            continue
        if wanted == "":
            drifts.append(Drift(room, f"participants[{p.identity}].{key}", have, "", DriftReason.CANNOT_CLEAR,
                                f"participant {key} cannot be cleared through the LiveKit API"))
            continue
        request[key] = wanted
        changes.append(FieldChange(key, have, wanted))
    if not changes:
        return [], drifts
    return [Action(ActionKind.UPDATE_PARTICIPANT, room, tuple(changes), request, target=p.identity)], drifts


def _plan_dispatches(room: str, spec: RoomSpec, observed: Sequence[ObservedDispatch]) -> list[Action]:
    actions: list[Action] = []
    unmatched = list(observed)
    for agent in spec.agents or []:
        match = next((d for d in unmatched if d.key() == agent.key()), None)
        if match is not None:
            unmatched.remove(match)
            continue
        request = {"room": room, **_agent_request(agent)}
        actions.append(Action(ActionKind.CREATE_DISPATCH, room, (FieldChange("agent", None, agent.agent_name),),
                              request))
    if spec.policy.agents == "Exact":
        for extra in unmatched:
            label = extra.agent_name or '"" (implicit)'
            actions.append(Action(ActionKind.DELETE_DISPATCH, room, (FieldChange("agent", label, None),),
                                  {"room": room, "dispatch_id": extra.id}, target=extra.id))
    return actions


def _observe_only(room: str, actions: list[Action]) -> list[Drift]:
    return [
        Drift(room, change.field if not a.target else f"{a.kind}[{a.target}].{change.field}", change.old, change.new,
              DriftReason.OBSERVE_ONLY, f"{a.kind} not applied: policy.observeOnly")
        for a in actions
        for change in (a.changes or (FieldChange(str(a.kind), None, None),))
    ]


def plan_room(desired: DesiredRoom, observed: ObservedRoom | None) -> RoomPlan:
    spec = desired.spec
    name = desired.name
    policy = spec.policy
    create_request = room_configuration(name, spec)
    drop_implicit = policy.agents == "Exact" and not spec.agents
    if observed is None:
        if policy.lifecycle == "OnDemand":
            return RoomPlan(name, desired.source, "absent")
        action = Action(ActionKind.CREATE_ROOM, name,
                        tuple(FieldChange(to_camel(k), None, v) for k, v in create_request.items() if k != "name"),
                        create_request, drop_implicit_dispatch=drop_implicit)
        if policy.observe_only:
            return RoomPlan(name, desired.source, "drift", drifts=tuple(_observe_only(name, [action])))
        return RoomPlan(name, desired.source, "create", actions=(action,))

    actions: list[Action] = []
    drifts: list[Drift] = []
    immutable_changes = []
    for key, label in IMMUTABLE:
        wanted = getattr(spec, key)
        have = getattr(observed, key)
        if wanted is None or wanted == have:
            continue
        if label in policy.ignore:
            drifts.append(Drift(name, label, have, wanted, DriftReason.IGNORED, f"{label} is in policy.ignore"))
        else:
            immutable_changes.append(FieldChange(label, have, wanted))
    metadata_change = None
    if spec.metadata is not None and spec.metadata != observed.metadata:
        if "metadata" in policy.ignore:
            drifts.append(Drift(name, "metadata", observed.metadata, spec.metadata, DriftReason.IGNORED,
                                "metadata is in policy.ignore"))
        else:
            metadata_change = FieldChange("metadata", observed.metadata, spec.metadata)

    recreate = False
    if immutable_changes:
        occupied = observed.num_participants
        if needs_participants(spec) and observed.participants is not None:
            # Participants a `remove: true` rule disconnects anyway do not keep an IfEmpty room alive:
            # otherwise one apply removes them and only the next one re-creates (no convergence).
            leaving = [p for p in observed.participants if (r := _first_rule(spec.participants, p)) and r.remove]
            occupied = max(0, occupied - len(leaving))
        if policy.recreate == "Always" or (policy.recreate == "IfEmpty" and occupied == 0):
            recreate = True
        else:
            reason = DriftReason.RECREATE_NEVER if policy.recreate == "Never" else DriftReason.RECREATE_OCCUPIED
            detail = ("LiveKit cannot change this on a live room; policy.recreate is Never"
                      if policy.recreate == "Never"
                      else f"needs a re-create but the room has {occupied} participant(s) (policy.recreate IfEmpty)")
            drifts.extend(Drift(name, c.field, c.old, c.new, reason, detail) for c in immutable_changes)

    if recreate:
        changes = tuple(immutable_changes) + ((metadata_change,) if metadata_change else ())
        actions.append(Action(ActionKind.RECREATE_ROOM, name, changes, create_request, old_sid=observed.sid,
                              drop_implicit_dispatch=drop_implicit, disconnects=observed.num_participants))
    else:
        if metadata_change is not None:
            actions.append(Action(ActionKind.UPDATE_ROOM_METADATA, name, (metadata_change,),
                                  {"room": name, "metadata": spec.metadata}))
        if needs_dispatches(spec) and observed.dispatches is not None:
            actions.extend(_plan_dispatches(name, spec, observed.dispatches))
        if needs_participants(spec) and observed.participants is not None:
            for participant in sorted(observed.participants, key=lambda p: p.identity):
                rule = _first_rule(spec.participants, participant)
                if rule is not None:
                    more_actions, more_drifts = _plan_participant(name, rule, participant)
                    actions.extend(more_actions)
                    drifts.extend(more_drifts)

    not_verifiable = () if recreate else tuple(label for key, label in UNREADABLE if getattr(spec, key) is not None)
    if policy.observe_only and actions:
        drifts.extend(_observe_only(name, actions))
        actions = []
    if any(a.kind == ActionKind.RECREATE_ROOM for a in actions):
        status = "recreate"
    elif actions:
        status = "update"
    elif drifts:
        status = "drift"
    else:
        status = "in-sync"
    return RoomPlan(name, desired.source, status, observed.sid, tuple(actions), tuple(drifts), not_verifiable)


def plan(desired: Sequence[DesiredRoom], observed: ObservedState, options: PlanOptions | None = None) -> Plan:
    """Every room's actions and drift. Rooms outside every prune scope are never touched."""
    options = options or PlanOptions()
    check_prune(options, bool(desired))
    if options.prune and not observed.complete:
        raise PlanRefused("refusing to prune without a complete list of the server's rooms")
    rooms = [plan_room(d, observed.rooms.get(d.name)) for d in desired]
    undeclared = set(observed.rooms) - {d.name for d in desired} - options.declared_elsewhere
    pruned, unmanaged = prune_plans(
        [PruneCandidate(n, observed.rooms[n].sid, observed.rooms[n].num_participants) for n in undeclared], options)
    return Plan((*rooms, *pruned), unmanaged)
