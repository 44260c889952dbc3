"""One run of the engine, whatever triggered it (CLI, `roomctl serve`, a webhook): observe what the
declared inputs need from each backend, then plan purely. Execution is `execute.py`'s."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .backends.livekit import LiveKitBackend
from .backends.plugnmeet import PlugNmeetBackend
from .manifests import Inputs
from .plan import Plan, PlanOptions, RoomPlan, check_prune, plan, plan_live_room
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


async def make_combined_plan(backends: Backends, inputs: Inputs, options: PlanOptions) -> CombinedPlan:
    """Each document routed to its backend: one ListRooms, one getActiveRoomsInfo (DESIGN §3).

    Prune is per backend and only where that backend has declared rooms (or --allow-empty): a folder
    of PlugNmeetRooms must not empty the LiveKit server. LiveKit never prunes a room that a
    PlugNmeetRoom declares: plugNmeet names its LiveKit room after the room id. RoomPolicies make
    the LiveKit side list every room and plan each live room they match (plan/policy.py)."""
    check_prune(options, bool(inputs.livekit or inputs.plugnmeet))

    def scoped(declared: bool) -> PlanOptions:
        return options if declared or options.allow_empty else replace(options, prune=False)

    livekit_options = replace(scoped(bool(inputs.livekit)),
                              declared_elsewhere=frozenset(r.name for r in inputs.plugnmeet))
    livekit = Plan(())
    if inputs.livekit or inputs.policies or livekit_options.prune:
        observed = await backends.livekit.observe(inputs.livekit, list_all=livekit_options.prune,
                                                  policies=inputs.policies)
        livekit = plan(inputs.livekit, observed, livekit_options, inputs.policies)
    pnm = Plan(())
    if backends.plugnmeet is not None:
        active = await backends.plugnmeet.active_rooms()
        pnm = plan_pnm(inputs.plugnmeet, active, scoped(bool(inputs.plugnmeet)))
    return CombinedPlan(livekit, pnm)


async def plan_one_room(backend: LiveKitBackend, inputs: Inputs, room: str) -> RoomPlan | None:
    """One LiveKit room, observed on its own (ListRooms for that name, then only the per-room lists
    its Room and matching RoomPolicies need) and planned by `plan_live_room` — the same decision the
    batch run makes for that room. None: nothing governs it, or it is not live and not declared.
    For a reaction to one room (a webhook); never prunes."""
    desired = next((d for d in inputs.livekit if d.name == room), None)
    observed = await backend.observe([desired] if desired else [], policies=inputs.policies, only=[room])
    return plan_live_room(desired, inputs.policies, observed.rooms.get(room))
