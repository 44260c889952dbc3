"""Flags `diff` and `apply` share (the run itself is `reconciler/engine.py`)."""

from __future__ import annotations

import argparse

from ..plan import PlanOptions


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
