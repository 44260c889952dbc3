"""One run of the engine, whatever triggered it (CLI, `roomctl serve`, a webhook): observe what the
declared inputs need from each backend, then plan purely. Execution is `execute.py`'s."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .backends.livekit import LiveKitBackend
from .backends.plugnmeet import PlugNmeetBackend
from .manifests import Inputs
from .plan import Plan, PlanOptions, check_prune, plan
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
    PlugNmeetRoom declares: plugNmeet names its LiveKit room after the room id."""
    check_prune(options, bool(inputs.livekit or inputs.plugnmeet))

    def scoped(declared: bool) -> PlanOptions:
        return options if declared or options.allow_empty else replace(options, prune=False)

    livekit_options = replace(scoped(bool(inputs.livekit)),
                              declared_elsewhere=frozenset(r.name for r in inputs.plugnmeet))
    livekit = Plan(())
    if inputs.livekit or livekit_options.prune:
        observed = await backends.livekit.observe(inputs.livekit, list_all=livekit_options.prune)
        livekit = plan(inputs.livekit, observed, livekit_options)
    pnm = Plan(())
    if backends.plugnmeet is not None:
        active = await backends.plugnmeet.active_rooms()
        pnm = plan_pnm(inputs.plugnmeet, active, scoped(bool(inputs.plugnmeet)))
    return CombinedPlan(livekit, pnm)
