"""`roomctl apply`: plan, then make it so. Exit 0 converged, 1 on any error or failed action."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from ..backends.limiter import DEFAULT_CONCURRENCY
from ..engine import Backends, CombinedPlan, make_combined_plan, select_inputs
from ..manifests import load_inputs
from ..plan import Plan
from ..render import Progress, render_text, result_line, results_json
from .common import (
    UsageError,
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

if TYPE_CHECKING:
    from ..execute import ActionResult, Results


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("apply", help="make the server match the manifests", parents=[common])
    add_plan_options(parser)
    add_concurrency_option(parser)
    add_server_options(parser)
    parser.set_defaults(run=run)


def add_concurrency_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help="the most requests in flight at once; fewer while the server's latency rises or it "
                             f"refuses (default {DEFAULT_CONCURRENCY})")


async def run_actions(combined: CombinedPlan, backends: Backends, args: argparse.Namespace) -> Results:
    """Execute a plan with a progress line (not with -q), errors on stderr as they happen, and on
    Ctrl-C a summary of what was already done."""
    from ..execute import execute_combined  # the executor loads with the commands that execute

    plan = combined.merged
    for room in plan.unreadable:  # each room whose observation failed, by method and room
        print_error(room.error)
    progress = Progress(len(plan.actions), enabled=not args.quiet)
    finished: list[ActionResult] = []

    def report(result: ActionResult) -> None:
        finished.append(result)
        progress.tick()
        if not result.ok:
            progress.finish()
            print_error(result_line(result))

    try:
        results = await execute_combined(combined, backends, concurrency=args.concurrency, on_result=report)
    except asyncio.CancelledError:  # Ctrl-C: asyncio cancels the run; say what was already done
        progress.finish()
        interrupted_summary(finished, len(plan.actions))
        raise
    progress.finish()
    return results


def report_results(args: argparse.Namespace, plan: Plan, results: Results, verb: str = "Apply",
                   skipped: str = "", skipped_docs: list[dict[str, object]] | None = None) -> int:
    if args.output == "json":
        out = results_json(plan, results)
        if skipped_docs:
            out["skipped_documents"] = skipped_docs
        print(json.dumps(out, indent=2))
    elif not args.quiet:
        if args.verbose:
            for result in results.results:
                print(result_line(result))
        done = len(results.results) - len(results.failed)
        unread = f"; {len(plan.unreadable)} room(s) could not be read" if plan.unreadable else ""
        print(f"\n{verb} complete: {done} action(s) succeeded, {len(results.failed)} failed{unread}.")
        if skipped:
            print(skipped)
    return 0 if results.ok and not plan.unreadable else 1


async def _apply(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    from .saved import apply_saved, load_saved_plan  # saved plans load with the command that reads them

    saved = load_saved_plan(args.paths)
    if saved is not None:  # `roomctl apply plan.json`: exactly that plan, or nothing
        return await apply_saved(args, saved, run_actions, report_results)
    inputs = load_inputs(args.paths)
    skipped = note_skipped(inputs, args)
    options = plan_options(args)
    warn_unselected(inputs, options.selection, args.quiet)
    selected = select_inputs(inputs, options.selection)
    async with open_backends(args, concurrency=args.concurrency, plugnmeet=wants_plugnmeet(selected, options.prune),
                             servers=referenced_servers(selected),
                             pnm_source=first_pnm_source(selected)) as backends:
        combined = await make_combined_plan(backends, inputs, options)
        if args.output == "text" and not args.quiet:
            render_text(combined.merged, sys.stdout, verbose=args.verbose, colour=not args.no_color)
        results = await run_actions(combined, backends, args)
    return report_results(args, combined.merged, results, skipped=skipped, skipped_docs=skipped_json(inputs))


def interrupted_summary(finished: list[ActionResult], planned: int) -> None:
    """What an interrupted apply did, on stderr: every finished action, then the counts."""
    for result in finished:
        print(f"  {result_line(result)}", file=sys.stderr)
    done = sum(1 for r in finished if r.ok)
    print(f"Interrupted: {done} action(s) applied, {len(finished) - done} failed, "
          f"{planned - len(finished)} not run (in flight or not started). Run diff to see what remains.",
          file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    return run_command(_apply(args), bulk=True)
