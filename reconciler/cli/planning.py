"""Flags and steps `diff` and `apply` share: load, observe, plan."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from ..manifests import Inputs
from ..plan import Plan, PlanOptions, check_prune, plan
from ..plan.plugnmeet import plan_pnm
from .common import Backends


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="manifest files or folders; - reads stdin")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    prune = parser.add_argument_group("prune (off by default)")
    prune.add_argument("--prune", action="store_true", help="delete undeclared rooms inside --prune-scope")
    prune.add_argument("--prune-scope", action="append", default=[], metavar="GLOB",
                       help="room-name glob that the manifests own (repeatable; required with --prune)")
    prune.add_argument("--allow-empty", action="store_true", help="allow --prune with no room declared")
    prune.add_argument("--prune-occupied", action="store_true", help="also prune rooms with participants")


def plan_options(args: argparse.Namespace) -> PlanOptions:
    return PlanOptions(
        prune=args.prune,
        prune_scopes=tuple(args.prune_scope),
        allow_empty=args.allow_empty,
        prune_occupied=args.prune_occupied,
    )


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
