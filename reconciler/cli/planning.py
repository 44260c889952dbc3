"""Flags `diff`, `apply` and `delete` share (the run itself is `reconciler/engine.py`)."""

from __future__ import annotations

import argparse
import re
import sys

from ..engine import select_inputs
from ..manifests import Inputs
from ..plan import PlanOptions, Selection
from .common import UsageError

LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("targeting (default: every declared room)")
    group.add_argument("--target", action="append", default=[], metavar="ROOM",
                       help="only rooms whose name matches this glob (repeatable: any may match)")
    group.add_argument("-l", "--selector", action="append", default=[], metavar="KEY=VALUE",
                       help="only rooms whose metadata.labels have KEY=VALUE (repeatable or comma-separated: "
                            "all must match)")


def selection(args: argparse.Namespace) -> Selection:
    labels: list[tuple[str, str]] = []
    for text in args.selector:
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not LABEL_KEY.match(key):
                raise UsageError(f"--selector {part!r}: use KEY=VALUE (e.g. team=events)")
            labels.append((key, value.strip()))
    if any(not t for t in args.target):
        raise UsageError("--target needs a room name or glob")
    return Selection(tuple(args.target), tuple(labels))


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="manifest files or folders; - reads stdin")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    add_selection_options(parser)
    prune = parser.add_argument_group("prune (off by default)")
    prune.add_argument("--prune", action="store_true", help="delete undeclared rooms inside --prune-scope")
    prune.add_argument("--prune-scope", action="append", default=[], metavar="GLOB",
                       help="room-name glob that the manifests own (repeatable; required with --prune)")
    prune.add_argument("--allow-empty", action="store_true", help="allow --prune with no room declared")
    prune.add_argument("--prune-occupied", action="store_true", help="also prune rooms with participants")


def plan_options(args: argparse.Namespace) -> PlanOptions:
    if not args.prune:
        alone = [flag for flag, value in (("--prune-scope", args.prune_scope), ("--allow-empty", args.allow_empty),
                                          ("--prune-occupied", args.prune_occupied)) if value]
        if alone:
            raise UsageError(f"{', '.join(alone)} only apply with --prune (nothing is pruned without it)")
    return PlanOptions(
        prune=args.prune,
        prune_scopes=tuple(args.prune_scope),
        allow_empty=args.allow_empty,
        prune_occupied=args.prune_occupied,
        selection=selection(args),
    )


def warn_unselected(inputs: Inputs, chosen: Selection, quiet: bool) -> None:
    """A --target/-l that matches no declared room is most likely a typo: say so (the run goes on)."""
    if chosen.everything or quiet:
        return
    picked = select_inputs(inputs, chosen)
    if not picked.livekit and not picked.plugnmeet:
        also = (f"; only live rooms that a RoomPolicy governs ({', '.join(p.name for p in inputs.policies)}) "
                "can be planned" if inputs.policies else "")
        print(f"roomctl: warning: no declared room matches {chosen.describe()}{also}", file=sys.stderr)
