"""The LiveKit plan with RoomPolicies: Rooms and policies + what the server showed -> Plan.
Pure: no I/O, no clock, no randomness (README "RoomPolicy").

Precedence, for every live room: the room's own `Room` rules first; then RoomPolicies that match
its name, in (priority, name) order; the first matching participant rule wins across all of them.
Room metadata: the Room's if declared, else the first matching policy's. Agents: the Room's, then
each policy agent whose name no earlier source declared (policy agents are Additive). Policies never
create or delete rooms, and prune ignores them (a policy neither protects a room nor declares it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model.policy import DesiredPolicy
from ..model.room import DesiredRoom
from ..observed import ObservedRoom, ObservedState
from .core import (
    EVERYTHING,
    POLICY_KIND,
    Plan,
    PlanOptions,
    PlanRefused,
    PruneCandidate,
    RoomPlan,
    Selection,
    check_prune,
    in_prune_scope,
)
from .core import prune_plans as _prune_plans
from .room import (
    NO_GOVERNANCE,
    Governance,
    SourcedAgent,
    SourcedMetadata,
    SourcedRule,
    create_request,
    empty_spec,
    first_rule_for,
    needs_dispatches,
    needs_participants,
    plan_room,
    rule_chain,
)

# ---- which policies govern a room ---------------------------------------------------------------


def ordered(policies: Iterable[DesiredPolicy]) -> list[DesiredPolicy]:
    """Policies in the order they apply: lower priority first, ties broken by name."""
    return sorted(policies, key=lambda p: p.order)


def matching(policies: Sequence[DesiredPolicy], room: str) -> list[DesiredPolicy]:
    """The policies whose rooms/exclude globs select `room`, in the order they apply."""
    return [p for p in ordered(policies) if p.matches(room)]


def governance(policies: Sequence[DesiredPolicy], room: str) -> Governance:
    """What the policies matching `room` enforce on it, each piece labelled with its source."""
    rules: list[SourcedRule] = []
    agents: list[SourcedAgent] = []
    metadata: SourcedMetadata | None = None
    names: list[str] = []
    for policy in matching(policies, room):
        spec = policy.spec
        label = f"{POLICY_KIND} {policy.name}"
        observe_only = spec.policy.observe_only
        ignore = spec.policy.ignore
        names.append(policy.name)
        if "participants" not in ignore:
            rules.extend(SourcedRule(rule, f"{label}, rule {i}", observe_only)
                         for i, rule in enumerate(spec.participants, 1))
        if "agents" not in ignore:
            agents.extend(SourcedAgent(agent, f"{label}, agents", observe_only) for agent in spec.agents)
        if metadata is None and spec.room_metadata is not None:
            metadata = SourcedMetadata(spec.room_metadata, f"{label}, roomMetadata", observe_only,
                                       ignored="metadata" in ignore)
    return Governance(tuple(rules), tuple(agents), metadata, tuple(names))


# ---- what to observe ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Needs:
    """What the planner must see of one live room beyond ListRooms."""

    participants: bool = False
    dispatches: bool = False


NOTHING_MORE = Needs()
# One instance per answer: asked for every room a ListRooms returned, and frozen.
_NEEDS = {(p, d): Needs(p, d) for p in (False, True) for d in (False, True)}


@dataclass
class WhatToObserve:
    """What a backend has to fetch so the plan can decide (the backend never reads rules itself).

    `names` is None when every room must be listed (prune, or any RoomPolicy loaded); otherwise the
    declared names. `needs(room)` says which per-room lists to fetch for a room ListRooms returned."""

    desired: Sequence[DesiredRoom]
    policies: Sequence[DesiredPolicy] = ()
    list_all: bool = False
    only: Sequence[str] | None = None  # restrict to these rooms (a webhook reacting to one room)
    selection: Selection = EVERYTHING  # --target/-l: an undeclared room outside it is not looked into
    _by_name: dict[str, DesiredRoom] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {d.name: d for d in self.desired}

    @property
    def names(self) -> list[str] | None:
        if self.only is not None:
            return list(self.only)
        if self.list_all or self.policies:
            return None
        return list(self._by_name)

    def needs(self, room: str) -> Needs:
        desired = self._by_name.get(room)
        gov = governance(self.policies, room) if self.policies else NO_GOVERNANCE
        if desired is None and (not gov.policies or not self.selection.covers(room, None)):
            return NOTHING_MORE
        spec = desired.spec if desired is not None else empty_spec()
        return _NEEDS[needs_participants(spec, gov), needs_dispatches(spec, gov)]


def what_to_observe(desired: Sequence[DesiredRoom], policies: Sequence[DesiredPolicy] = (),
                    list_all: bool = False, only: Sequence[str] | None = None,
                    selection: Selection = EVERYTHING) -> WhatToObserve:
    return WhatToObserve(desired, policies, list_all, only, selection)


# ---- planning -----------------------------------------------------------------------------------


def plan_live_room(desired: DesiredRoom | None, policies: Sequence[DesiredPolicy],
                   observed: ObservedRoom | None) -> RoomPlan | None:
    """Plan ONE LiveKit room: the single decision shared by `diff`/`apply`, the operator's sweep and
    webhook reactions, so they all decide identically.

    - `desired`: the room's `Room` manifest, or None when no Room declares it.
    - `policies`: every loaded RoomPolicy (any order; matching and (priority, name) order are done here).
    - `observed`: the room as ListRooms showed it, with `participants`/`dispatches` filled in where
      `what_to_observe(...).needs(name)` asked for them; None when the server has no such room.

    Returns the room's RoomPlan, or None when there is nothing to decide: an undeclared room that is
    not live (policies never create rooms), or one no policy matches (unmanaged; prune is a
    whole-run decision, see `plan`). Room rules come first, then policies; first matching rule wins.
    Every Action/Drift carries its `source` ("Room town-hall, rule 1", "RoomPolicy support, rule 2")."""
    if desired is None and observed is None:
        return None
    name = desired.name if desired is not None else observed.name  # type: ignore[union-attr]
    gov = governance(policies, name) if policies else NO_GOVERNANCE
    if desired is None and not gov.policies:
        return None
    return plan_room(desired, observed, gov)


@dataclass(frozen=True)
class Join:
    """What a join token for one identity should carry, decided like the plan decides the live room."""

    rule: SourcedRule | None  # the first matching rule (Room rules, then policies), if any
    room_config: dict[str, Any]  # RoomConfiguration for a join that creates the room


def plan_join(desired: DesiredRoom | None, policies: Sequence[DesiredPolicy], room: str, identity: str,
              kind: str = "STANDARD") -> Join | None:
    """The rule and room configuration for a participant about to join `room` (`roomctl token`).
    None when no Room declares the room and no RoomPolicy matches it."""
    gov = governance(policies, room) if policies else NO_GOVERNANCE
    if desired is None and not gov.policies:
        return None
    return Join(first_rule_for(rule_chain(desired, gov), identity, kind), create_request(room, desired, gov))


def plan(desired: Sequence[DesiredRoom], observed: ObservedState, options: PlanOptions | None = None,
         policies: Sequence[DesiredPolicy] = ()) -> Plan:
    """Every room's actions and drift: each declared room, each live room a policy matches, and prune
    for undeclared rooms inside a --prune-scope. Rooms outside every scope and every policy are never
    touched. Policies do not count as declarations for prune's safety checks."""
    options = options or PlanOptions()
    check_prune(options, bool(desired))
    if options.prune and not observed.complete:
        raise PlanRefused("refusing to prune without a complete list of the server's rooms")
    rooms: list[RoomPlan] = []
    for d in desired:
        planned = plan_live_room(d, policies, observed.rooms.get(d.name))
        assert planned is not None
        rooms.append(planned)
    declared = {d.name for d in desired}
    undeclared = sorted(set(observed.rooms) - declared - options.declared_elsewhere)
    governed: dict[str, RoomPlan] = {}
    for name in undeclared:
        covered = options.selection.covers(name, None)  # --target/-l: policies govern only what is selected
        planned = plan_live_room(None, policies, observed.rooms[name]) if policies and covered else None
        if planned is not None:
            governed[name] = planned
    scoped = options.prune and bool(options.prune_scopes)
    candidates = [PruneCandidate(n, observed.rooms[n].sid, observed.rooms[n].num_participants) for n in undeclared
                  if n not in governed or (scoped and in_prune_scope(n, options.prune_scopes))]
    pruned, unmanaged = _prune_plans(candidates, options)
    for prune_plan in pruned:
        kept = governed.pop(prune_plan.name, None)
        if prune_plan.status == "delete" or kept is None:
            rooms.append(prune_plan)  # a room being deleted needs no participant changes
        else:
            status = kept.status if kept.actions else "drift"
            rooms.append(RoomPlan(kept.name, kept.source, status, kept.sid, kept.actions,
                                  prune_plan.drifts + kept.drifts, kept.not_verifiable, policies=kept.policies))
    rooms.extend(governed[n] for n in sorted(governed))
    return Plan(tuple(rooms), unmanaged)
