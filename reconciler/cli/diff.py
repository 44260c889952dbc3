"""`roomctl diff`: the dry run. Exit 0 in sync, 2 changes pending, 1 error (Terraform's
-detailed-exitcode: a crash is never read as "changes")."""

from __future__ import annotations

import argparse
import json
import sys

from ..engine import make_combined_plan, select_inputs
from ..manifests import load_inputs
from ..render import plan_json, render_text
from .common import (
    add_server_options,
    first_pnm_source,
    note_skipped,
    open_backends,
    print_error,
    referenced_servers,
    run_command,
    skipped_json,
    wants_plugnmeet,
)
from .planning import add_plan_options, plan_options, warn_unselected


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("diff", help="show what apply would change (dry run)", parents=[common])
    add_plan_options(parser)
    parser.add_argument("--fail-on-drift", action="store_true", help="exit 2 on drift that will not be acted on")
    parser.add_argument("--out", metavar="FILE",
                        help="also save the plan with the observed state it rests on; `apply FILE` runs exactly it")
    add_server_options(parser)
    parser.set_defaults(run=run)


async def _diff(args: argparse.Namespace) -> int:
    if args.out:  # saved plans load only for --out
        from .saved import check_out_path

        check_out_path(args.out, args.paths)
    inputs = load_inputs(args.paths)
    skipped = note_skipped(inputs, args)
    options = plan_options(args)
    warn_unselected(inputs, options.selection, args.quiet)
    selected = select_inputs(inputs, options.selection)
    async with open_backends(args, plugnmeet=wants_plugnmeet(selected, options.prune),
                             servers=referenced_servers(selected),
                             pnm_source=first_pnm_source(selected)) as backends:
        combined = await make_combined_plan(backends, inputs, options)
        plan = combined.merged
        if args.out and not plan.unreadable:
            from .saved import write_saved_plan

            write_saved_plan(args.out, args, inputs, options, combined, backends)
    if args.output == "json":
        out = plan_json(plan)
        if inputs.foreign:
            out["skipped_documents"] = skipped_json(inputs)
        print(json.dumps(out, indent=2, sort_keys=False))
    elif not args.quiet:
        render_text(plan, sys.stdout, verbose=args.verbose, colour=not args.no_color)
        if skipped:
            print(skipped)
    for room in plan.unreadable:
        print_error(room.error)
    if plan.unreadable:
        return 1  # neither "in sync" nor "changes pending" can be said of a room that was not read
    if plan.has_changes or (args.fail_on_drift and plan.drifts):
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    return run_command(_diff(args))
