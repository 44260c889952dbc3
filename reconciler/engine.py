"""One run of the engine, whatever triggered it (CLI, `roomctl serve`, a webhook): observe what the
declared inputs need from each backend, then plan purely. Execution is `execute.py`'s."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .backends.livekit import LiveKitBackend
from .backends.plugnmeet import PlugNmeetBackend
from .manifests import Inputs
from .model import DesiredRoom
from .model.plugnmeet import DesiredPnmRoom
from .observed import ObservedPnmRoom, ObservedRoom
from .plan import (
    DeletionFacts,
    Plan,
    PlanOptions,
    RoomPlan,
    Selection,
    check_prune,
    plan,
    plan_deletion,
    plan_live_room,
)
from .plan.plugnmeet import KIND as KIND_PNM
from .plan.plugnmeet import plan_pnm


@dataclass
class Backends:
    """The servers one run talks to; plugnmeet is None when no PlugNmeetRoom is involved."""

    livekit: LiveKitBackend
    plugnmeet: PlugNmeetBackend | None = None


@dataclass(frozen=True)
class CombinedPlan:
    """One plan per backend, shown and counted as one."""

    livekit: Plan
    plugnmeet: Plan

    @property
    def merged(self) -> Plan:
        return Plan(self.livekit.rooms + self.plugnmeet.rooms, self.livekit.unmanaged + self.plugnmeet.unmanaged)


def select_inputs(inputs: Inputs, selection: Selection) -> Inputs:
    """The declared rooms a run covers: --target globs over room names, -l over metadata.labels."""
    if selection.everything:
        return inputs
    return Inputs([r for r in inputs.livekit if selection.covers(r.name, r.manifest.metadata.labels)],
                  [r for r in inputs.plugnmeet if selection.covers(r.name, r.manifest.metadata.labels)])


async def make_combined_plan(backends: Backends, inputs: Inputs, options: PlanOptions) -> CombinedPlan:
    """Each document routed to its backend: one ListRooms, one getActiveRoomsInfo (DESIGN §3).

    Prune is per backend and only where that backend has declared rooms (or --allow-empty): a folder
    of PlugNmeetRooms must not empty the LiveKit server. LiveKit never prunes a room that a
    PlugNmeetRoom declares: plugNmeet names its LiveKit room after the room id. RoomPolicies make
    the LiveKit side list every room and plan each live room they match (plan/policy.py).

    `options.selection` restricts the run (--target/-l, or one room for a webhook): rooms outside it
    are neither observed nor planned nor pruned (nor governed by a RoomPolicy)."""
    # Never pruned by LiveKit: a PlugNmeetRoom's room, and declared rooms outside the selection.
    elsewhere = frozenset(r.name for r in inputs.plugnmeet) | {r.name for r in inputs.livekit}
    inputs = select_inputs(inputs, options.selection)
    check_prune(options, bool(inputs.livekit or inputs.plugnmeet))

    def scoped(declared: bool) -> PlanOptions:
        return options if declared or options.allow_empty else replace(options, prune=False)

    livekit_options = replace(scoped(bool(inputs.livekit)),
                              declared_elsewhere=elsewhere - {r.name for r in inputs.livekit})
    livekit = Plan(())
    if inputs.livekit or inputs.policies or livekit_options.prune:
        observed = await backends.livekit.observe(inputs.livekit, list_all=livekit_options.prune,
                                                  policies=inputs.policies, selection=options.selection)
        livekit = plan(inputs.livekit, observed, livekit_options, inputs.policies)
    pnm = Plan(())
    pnm_options = scoped(bool(inputs.plugnmeet))
    if backends.plugnmeet is not None and (inputs.plugnmeet or pnm_options.prune):
        active = await backends.plugnmeet.active_rooms()
        pnm = plan_pnm(inputs.plugnmeet, active, pnm_options)
    return CombinedPlan(livekit, pnm)


def _room_deletion(d: DesiredRoom, room: ObservedRoom | None) -> DeletionFacts:
    policy = d.spec.policy
    return DeletionFacts(d.name, d.source, "Room", "room", policy.deletion, policy.observe_only, d.spec.suspend,
                         room.sid if room else "", room.num_participants if room else 0)


def _pnm_deletion(d: DesiredPnmRoom, room: ObservedPnmRoom | None) -> DeletionFacts:
    policy = d.spec.policy
    return DeletionFacts(d.name, d.source, KIND_PNM, "room_id", policy.deletion, policy.observe_only,
                         d.spec.suspend, room.sid if room else "", room.joined_participants if room else 0)


async def make_deletion_plan(backends: Backends, inputs: Inputs, selection: Selection,
                             delete_occupied: bool = False) -> CombinedPlan:
    """`roomctl delete`: the declared (and selected) rooms, each deleted unless policy.deletion is
    Orphan, observeOnly or suspend holds it, or it is occupied (unless delete_occupied). One
    ListRooms and one getActiveRoomsInfo; nothing undeclared is ever touched."""
    inputs = select_inputs(inputs, selection)
    livekit = Plan(())
    if inputs.livekit:
        listed = {r.name: r for r in await backends.livekit.list_rooms([d.name for d in inputs.livekit])}
        livekit = Plan(tuple(plan_deletion(_room_deletion(d, listed.get(d.name)), delete_occupied)
                             for d in inputs.livekit))
    pnm = Plan(())
    if inputs.plugnmeet and backends.plugnmeet is not None:
        active = {r.room_id: r for r in await backends.plugnmeet.active_rooms()}
        pnm = Plan(tuple(plan_deletion(_pnm_deletion(d, active.get(d.name)), delete_occupied)
                         for d in inputs.plugnmeet))
    return CombinedPlan(livekit, pnm)


async def plan_one_room(backend: LiveKitBackend, inputs: Inputs, room: str) -> RoomPlan | None:
    """One LiveKit room, observed on its own (ListRooms for that name, then only the per-room lists
    its Room and matching RoomPolicies need) and planned by `plan_live_room` — the same decision the
    batch run makes for that room. None: nothing governs it, or it is not live and not declared.
    For a reaction to one room (a webhook); never prunes."""
    desired = next((d for d in inputs.livekit if d.name == room), None)
    observed = await backend.observe([desired] if desired else [], policies=inputs.policies, only=[room])
    return plan_live_room(desired, inputs.policies, observed.rooms.get(room))
