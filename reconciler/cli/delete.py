"""`roomctl delete -f PATH`: delete the rooms the manifests declare (both kinds), honouring
policy.deletion (Orphan keeps the room), observeOnly, spec.suspend and the occupied guard. Rooms the
manifests do not declare are never touched. Exit 0 done (or nothing to do), 1 on any error."""

from __future__ import annotations

import argparse
import json
import sys

from ..engine import make_deletion_plan, select_inputs
from ..manifests import load_inputs
from ..render import plan_json, render_text
from .apply import add_concurrency_option, report_results, run_actions
from .common import (
    UsageError,
    add_server_options,
    first_pnm_source,
    open_backends,
    referenced_servers,
    run_command,
)
from .planning import add_selection_options, selection, warn_unselected

NOTHING = "Nothing to delete."


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("delete", help="delete the rooms the manifests declare", parents=[common])
    parser.add_argument("-f", "--filename", dest="paths", action="append", required=True, metavar="PATH",
                        help="manifest file or folder (repeatable; - reads stdin)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    add_selection_options(parser)
    parser.add_argument("--occupied", action="store_true", help="also delete rooms that have participants")
    parser.add_argument("--dry-run", action="store_true", help="show what would be deleted; change nothing")
    add_concurrency_option(parser)
    add_server_options(parser)
    parser.set_defaults(run=run)


async def _delete(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    inputs = load_inputs(args.paths)
    chosen = selection(args)
    warn_unselected(inputs, chosen, args.quiet)
    selected = select_inputs(inputs, chosen)
    async with open_backends(args, concurrency=args.concurrency, plugnmeet=bool(selected.plugnmeet),
                             servers=referenced_servers(selected),
                             pnm_source=first_pnm_source(selected)) as backends:
        combined = await make_deletion_plan(backends, inputs, chosen, delete_occupied=args.occupied)
        plan = combined.merged
        if args.dry_run:
            if args.output == "json":
                print(json.dumps(plan_json(plan), indent=2))
            elif not args.quiet:
                render_text(plan, sys.stdout, verbose=args.verbose, colour=not args.no_color, nothing=NOTHING)
                print("Dry run (--dry-run): nothing was deleted.")
            return 0
        if args.output == "text" and not args.quiet:
            render_text(plan, sys.stdout, verbose=args.verbose, colour=not args.no_color, nothing=NOTHING)
        results = await run_actions(combined, backends, args)
    return report_results(args, plan, results, verb="Delete")


def run(args: argparse.Namespace) -> int:
    return run_command(_delete(args), bulk=True)
