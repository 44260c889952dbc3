"""The plan for LiveKit rooms: desired + observed -> Plan. Pure: no I/O, no clock, no randomness (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from typing import Any

from pydantic.alias_generators import to_camel

from ..model.proto import redact_room_egress
from ..model.room import AgentDispatchSpec, DesiredRoom, ParticipantRule, RoomSpec
from ..observed import ObservedDispatch, ObservedParticipant, ObservedRoom
from .core import Action, ActionKind, Drift, DriftReason, FieldChange, RoomPlan

DEFAULT_EMPTY_TIMEOUT = 300
# A proto field's camelCase name as manifests spell it (pydantic's to_camel runs regexes): the same
# few field names, asked for on every change of every room.
_camel = cache(to_camel)
DEFAULT_DEPARTURE_TIMEOUT = 20

# ---- rules with their provenance ----------------------------------------------------------------


@dataclass(frozen=True)
class SourcedRule:
    """A participant rule and what declared it, e.g. "Room town-hall, rule 1"."""

    rule: ParticipantRule
    source: str
    observe_only: bool = False


@dataclass(frozen=True)
class SourcedAgent:
    agent: AgentDispatchSpec
    source: str
    observe_only: bool = False


@dataclass(frozen=True)
class SourcedMetadata:
    value: str
    source: str
    observe_only: bool = False
    ignored: bool = False


@dataclass(frozen=True)
class Governance:
    """What RoomPolicies add to one live room, already in the order they apply (plan/policy.py
    builds it). Empty for a room no policy matches."""

    rules: tuple[SourcedRule, ...] = ()
    agents: tuple[SourcedAgent, ...] = ()
    metadata: SourcedMetadata | None = None
    policies: tuple[str, ...] = ()  # names of the matching policies


NO_GOVERNANCE = Governance()


@cache
def empty_spec() -> RoomSpec:
    """The spec of a room no Room declares (a RoomPolicy governs it). Built on first use: building a
    RoomSpec builds its validator, ~9 ms of every run's start-up, and a Room-only run never needs one."""
    return RoomSpec()


def room_label(desired: DesiredRoom) -> str:
    return f"Room {desired.manifest.metadata.name}"


def room_rules(desired: DesiredRoom) -> list[SourcedRule]:
    """The Room's own participant rules (none when it ignores participants), numbered from 1."""
    spec = desired.spec
    if not spec.participants or "participants" in spec.policy.ignore:
        return []
    label = room_label(desired)
    return [SourcedRule(rule, f"{label}, rule {i}") for i, rule in enumerate(spec.participants, 1)]


def room_agents(desired: DesiredRoom | None, governance: Governance) -> list[SourcedAgent]:
    """The Room's agents, then each policy agent whose name no earlier source declared."""
    out: list[SourcedAgent] = []
    if desired is not None:
        out = [SourcedAgent(a, f"{room_label(desired)}, agents") for a in desired.spec.agents or []]
    names = {a.agent.agent_name for a in out}
    for extra in governance.agents:
        if extra.agent.agent_name not in names:
            names.add(extra.agent.agent_name)
            out.append(extra)
    return out


# ---- what to observe ----------------------------------------------------------------------------


def needs_participants(spec: RoomSpec, governance: Governance = NO_GOVERNANCE) -> bool:
    return ((bool(spec.participants) or bool(governance.rules)) and "participants" not in spec.policy.ignore
            and not spec.suspend)


def needs_dispatches(spec: RoomSpec, governance: Governance = NO_GOVERNANCE) -> bool:
    declared = spec.agents is not None or spec.policy.agents == "Exact" or bool(governance.agents)
    return declared and "agents" not in spec.policy.ignore and not spec.suspend


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


def rule_chain(desired: DesiredRoom | None, governance: Governance) -> list[SourcedRule]:
    """Every participant rule for one room, in the order they are tried: the Room's own, then the
    matching policies'. Empty when the Room ignores participants (policies do not override it)."""
    if desired is not None and "participants" in desired.spec.policy.ignore:
        return []
    return (room_rules(desired) if desired is not None else []) + list(governance.rules)


def first_rule_for(rules: Sequence[SourcedRule], identity: str, kind: str) -> SourcedRule | None:
    """First match wins: the rule whose kinds include the participant's and whose glob matches."""
    for entry in rules:
        if kind in entry.rule.kinds and fnmatchcase(identity, entry.rule.identity):
            return entry
    return None


def first_rule(rules: Sequence[SourcedRule], p: ObservedParticipant) -> SourcedRule | None:
    return first_rule_for(rules, p.identity, p.kind)


def _normal(field_name: str, value: Any) -> Any:
    return sorted(value) if field_name == "can_publish_sources" else value


def _plan_participant(room: str, rule: ParticipantRule, p: ObservedParticipant,
                      source: str = "") -> tuple[list[Action], list[Drift]]:
    if rule.remove:
        return [Action(ActionKind.REMOVE_PARTICIPANT, room, (FieldChange("participant", p.identity, None),),
                       {"room": room, "identity": p.identity}, target=p.identity, source=source)], []
    changes: list[FieldChange] = []
    drifts: list[Drift] = []
    request: dict[str, Any] = {"room": room, "identity": p.identity}
    if rule.permission is not None:
        declared = rule.permission.declared()
        differing = {k: v for k, v in declared.items() if _normal(k, p.permission.get(k)) != _normal(k, v)}
        if differing:
            # UpdateParticipant replaces the whole permission: send observed overlaid with the rule.
            request["permission"] = {**p.permission, **declared}
            changes.extend(FieldChange(f"permission.{_camel(k)}", p.permission.get(k), v)
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
                                f"participant {key} cannot be cleared through the LiveKit API", source))
            continue
        request[key] = wanted
        changes.append(FieldChange(key, have, wanted))
    if not changes:
        return [], drifts
    return [Action(ActionKind.UPDATE_PARTICIPANT, room, tuple(changes), request, target=p.identity,
                   source=source)], drifts


def plan_participants(room: str, rules: Sequence[SourcedRule],
                      participants: Sequence[ObservedParticipant]) -> tuple[list[Action], list[Drift]]:
    """Each participant against the ordered rules (first match wins), in identity order. A rule
    from an observe-only source reports what it would change as drift."""
    actions: list[Action] = []
    drifts: list[Drift] = []
    for participant in sorted(participants, key=lambda p: p.identity):
        entry = first_rule(rules, participant)
        if entry is None:
            continue
        more_actions, more_drifts = _plan_participant(room, entry.rule, participant, entry.source)
        drifts.extend(more_drifts)
        if entry.observe_only:
            drifts.extend(_observe_only(room, more_actions))
        else:
            actions.extend(more_actions)
    return actions, drifts


def _delete_dispatch(room: str, dispatch: ObservedDispatch, why: str, source: str) -> Action:
    label = (dispatch.agent_name or '"" (implicit)') + (f" ({why})" if why else "")
    return Action(ActionKind.DELETE_DISPATCH, room, (FieldChange("agent", label, None),),
                  {"room": room, "dispatch_id": dispatch.id}, target=dispatch.id, source=source)


def plan_dispatches(room: str, agents: Sequence[SourcedAgent], observed: Sequence[ObservedDispatch],
                    exact_source: str | None = None) -> tuple[list[Action], list[Drift]]:
    """One dispatch per declared agent, whatever the mode. Create each one the room lacks; delete
    duplicates of a declared dispatch (two writers, a lost answer), keeping the oldest (created_at,
    then id, so two writers agree); replace a dispatch of a declared agent whose metadata,
    deployment or attributes changed (delete old, create new), so Additive never leaves two of one
    agent. With `exact_source` (agents: Exact) also delete every dispatch nothing declares."""
    actions: list[Action] = []
    drifts: list[Drift] = []

    def add(entry: SourcedAgent, planned: list[Action]) -> None:
        if entry.observe_only:
            drifts.extend(_observe_only(room, planned))
        else:
            actions.extend(planned)

    oldest_first = sorted(observed, key=lambda d: (d.created_at, d.id))
    claimed: set[str] = set()
    for entry in agents:
        agent = entry.agent
        same = [d for d in oldest_first if d.key() == agent.key()]
        if same:
            claimed.update(d.id for d in same)
            add(entry, [_delete_dispatch(room, d, f"duplicate of {same[0].id}", entry.source) for d in same[1:]])
            continue
        request = {"room": room, **_agent_request(agent)}
        add(entry, [Action(ActionKind.CREATE_DISPATCH, room, (FieldChange("agent", None, agent.agent_name),),
                           request, source=entry.source)])
    by_name = {entry.agent.agent_name: entry for entry in agents}
    for extra in oldest_first:
        if extra.id in claimed:
            continue
        owner = by_name.get(extra.agent_name)
        if owner is not None:
            add(owner, [_delete_dispatch(room, extra, "replaced: its settings changed", owner.source)])
        elif exact_source is not None:
            actions.append(_delete_dispatch(room, extra, "", exact_source))
    return actions, drifts


def _observe_only(room: str, actions: list[Action]) -> list[Drift]:
    return [
        Drift(room, change.field if not a.target else f"{a.kind}[{a.target}].{change.field}", change.old, change.new,
              DriftReason.OBSERVE_ONLY, f"{a.kind} not applied: policy.observeOnly", a.source)
        for a in actions
        for change in (a.changes or (FieldChange(str(a.kind), None, None),))
    ]


def _metadata(name: str, observed: ObservedRoom, desired: DesiredRoom | None,
              governance: Governance) -> tuple[Action | None, list[Drift]]:
    """The room metadata: the Room's if it declares one, else the first matching policy's."""
    spec = desired.spec if desired is not None else empty_spec()
    if desired is not None and spec.metadata is not None:
        if spec.metadata == observed.metadata:  # in sync: nothing to say (the common case)
            return None, []
        wanted = SourcedMetadata(spec.metadata, room_label(desired), ignored="metadata" in spec.policy.ignore)
    elif governance.metadata is not None and "metadata" not in spec.policy.ignore:
        wanted = governance.metadata
    else:
        return None, []
    if wanted.value == observed.metadata:
        return None, []
    if wanted.ignored:
        return None, [Drift(name, "metadata", observed.metadata, wanted.value, DriftReason.IGNORED,
                            "metadata is in policy.ignore", wanted.source)]
    action = Action(ActionKind.UPDATE_ROOM_METADATA, name, (FieldChange("metadata", observed.metadata, wanted.value),),
                    {"room": name, "metadata": wanted.value}, source=wanted.source)
    if wanted.observe_only:
        return None, _observe_only(name, [action])
    return action, []


def create_request(name: str, desired: DesiredRoom | None, governance: Governance) -> dict[str, Any]:
    """The room as created (CreateRoom, or a join token's roomConfig): the Room's configuration plus
    what matching policies enforce anyway (their agents, their metadata when the Room has none), so
    a room born this way needs no second pass."""
    spec = desired.spec if desired is not None else empty_spec()
    request = room_configuration(name, spec)
    ignore = spec.policy.ignore
    if "agents" not in ignore:
        agents = [a.agent for a in room_agents(desired, governance) if not a.observe_only]
        if agents:
            request["agents"] = [_agent_request(a) for a in agents]
    wanted = governance.metadata
    if ("metadata" not in request and "metadata" not in ignore and wanted is not None
            and not (wanted.ignored or wanted.observe_only)):
        request["metadata"] = wanted.value
    return request


def _creation(name: str, desired: DesiredRoom | None, governance: Governance) -> tuple[dict[str, Any], bool]:
    """The room's CreateRoom body and whether to drop the implicit dispatch (agents: Exact) after
    creating it. Only a create or a re-create needs them: a room that exists is not asked for them."""
    if desired is None:
        return {}, False
    request = create_request(name, desired, governance)
    return request, desired.spec.policy.agents == "Exact" and not request.get("agents")


def plan_room(desired: DesiredRoom | None, observed: ObservedRoom | None,
              governance: Governance = NO_GOVERNANCE) -> RoomPlan:
    """One room: its Room manifest (None for an undeclared live room) and what matching RoomPolicies
    add. The Room's rules come first, then the governance's; first matching rule wins."""
    if desired is None:
        assert observed is not None, "an undeclared room is planned only while it is live"
        name, spec, source, label = observed.name, empty_spec(), "", ""
    else:
        name, spec, source, label = desired.name, desired.spec, desired.source, room_label(desired)
    policy = spec.policy
    if spec.suspend:  # Flux's suspend: reported, nothing done (RoomPolicies included)
        return RoomPlan(name, source, "suspended", observed.sid if observed else "", policies=governance.policies)
    if observed is not None and observed.unreadable:
        # Part of the room could not be read: nothing is decided on half a picture; the room fails alone.
        return RoomPlan(name, source, "unreadable", observed.sid, policies=governance.policies,
                        error=observed.unreadable)
    if observed is None:
        assert desired is not None
        if policy.lifecycle == "OnDemand":
            return RoomPlan(name, source, "absent", policies=governance.policies)
        request, drop_implicit = _creation(name, desired, governance)
        action = Action(ActionKind.CREATE_ROOM, name,
                        tuple(FieldChange(_camel(k), None, redact_room_egress(v) if k == "egress" else v)
                              for k, v in request.items() if k != "name"),
                        request, drop_implicit_dispatch=drop_implicit, source=label)
        if policy.observe_only:
            return RoomPlan(name, source, "drift", drifts=tuple(_observe_only(name, [action])),
                            policies=governance.policies)
        return RoomPlan(name, source, "create", actions=(action,), policies=governance.policies)

    actions: list[Action] = []
    drifts: list[Drift] = []
    immutable_changes = []
    for key, label_ in IMMUTABLE:
        wanted = getattr(spec, key)
        have = getattr(observed, key)
        if wanted is None or wanted == have:
            continue
        if label_ in policy.ignore:
            drifts.append(Drift(name, label_, have, wanted, DriftReason.IGNORED, f"{label_} is in policy.ignore",
                                label))
        else:
            immutable_changes.append(FieldChange(label_, have, wanted))
    metadata_action, metadata_drifts = _metadata(name, observed, desired, governance)
    drifts.extend(metadata_drifts)
    rules = rule_chain(desired, governance)

    recreate = False
    if immutable_changes:
        occupied = observed.num_participants
        if rules and observed.participants is not None:
            # Participants a `remove: true` rule disconnects anyway do not keep an IfEmpty room alive:
            # otherwise one apply removes them and only the next one re-creates (no convergence).
            leaving = [p for p in observed.participants
                       if (r := first_rule(rules, p)) and r.rule.remove and not r.observe_only]
            occupied = max(0, occupied - len(leaving))
        if policy.recreate == "Always" or (policy.recreate == "IfEmpty" and occupied == 0):
            recreate = True
        else:
            reason = DriftReason.RECREATE_NEVER if policy.recreate == "Never" else DriftReason.RECREATE_OCCUPIED
            detail = ("LiveKit cannot change this on a live room; policy.recreate is Never"
                      if policy.recreate == "Never"
                      else f"needs a re-create but the room has {occupied} participant(s) (policy.recreate IfEmpty)")
            drifts.extend(Drift(name, c.field, c.old, c.new, reason, detail, label) for c in immutable_changes)

    if recreate:
        changes = tuple(immutable_changes) + (metadata_action.changes if metadata_action else ())
        request, drop_implicit = _creation(name, desired, governance)
        actions.append(Action(ActionKind.RECREATE_ROOM, name, changes, request, old_sid=observed.sid,
                              drop_implicit_dispatch=drop_implicit, disconnects=observed.num_participants,
                              source=label))
    else:
        if metadata_action is not None:
            actions.append(metadata_action)
        if needs_dispatches(spec, governance) and observed.dispatches is not None:
            exact = f"{label}, policy.agents Exact" if policy.agents == "Exact" else None
            more_actions, more_drifts = plan_dispatches(name, room_agents(desired, governance), observed.dispatches,
                                                        exact)
            actions.extend(more_actions)
            drifts.extend(more_drifts)
        if rules and observed.participants is not None:
            more_actions, more_drifts = plan_participants(name, rules, observed.participants)
            actions.extend(more_actions)
            drifts.extend(more_drifts)

    not_verifiable = () if recreate else tuple([label_ for key, label_ in UNREADABLE if getattr(spec, key) is not None])
    if policy.observe_only and actions:
        drifts.extend(_observe_only(name, actions))
        actions = []
    if actions and any(a.kind == ActionKind.RECREATE_ROOM for a in actions):
        status = "recreate"
    elif actions:
        status = "update"
    elif drifts:
        status = "drift"
    else:
        status = "in-sync"
    return RoomPlan(name, source, status, observed.sid, tuple(actions), tuple(drifts), not_verifiable,
                    policies=governance.policies)
