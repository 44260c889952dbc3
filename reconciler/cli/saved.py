"""Saved plans on the command line: `roomctl diff ... --out plan.json` writes one, `roomctl apply
plan.json` performs exactly it, or refuses (exit 1, before any write, naming what changed) when the
manifests or the servers moved on since (reconciler/savedplan.py has the format)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..engine import PNM_SERVER, Backends, CombinedPlan, make_combined_plan, select_inputs
from ..execute import Results
from ..manifests import Inputs, load_inputs
from ..observed import ObservedState
from ..plan import Plan, PlanOptions
from ..render import plan_json, render_text
from ..savedplan import (
    SAVED_PLAN_KIND,
    SavedPlan,
    SavedPlanError,
    ServerEntry,
    action_to_json,
    manifest_changes,
    preconditions,
    stale_reasons,
)
from .common import UsageError, first_pnm_source, open_backends, print_error, referenced_servers, wants_plugnmeet


def _url(backends: Backends, server: str) -> str:
    if server == PNM_SERVER:
        return backends.plugnmeet.url if backends.plugnmeet is not None else ""
    return backends.for_server(server).url


def _server_entries(combined: CombinedPlan, backends: Backends) -> dict[str, ServerEntry]:
    entries = {}
    for server, plan in combined.groups():
        if not plan.rooms:
            continue
        if server == PNM_SERVER:
            pre = preconditions(plan, active=combined.observed_pnm or ())
        else:
            pre = preconditions(plan, combined.observed.get(server) or ObservedState({}))
        entries[server] = ServerEntry(_url(backends, server), tuple(plan.actions), pre)
    return entries


def check_out_path(path: str, manifest_paths: list[str]) -> None:
    """`--out` may not land among the manifests being read: every later diff/apply (and a running
    serve) would then read the plan as a manifest and fail."""
    target = Path(path).resolve()
    for given in manifest_paths:
        if given == "-":
            continue
        folder = Path(given).resolve()
        if target == folder or (folder.is_dir() and target.is_relative_to(folder)):
            raise UsageError(f"--out {path}: inside the manifest path {given}, where the next run would read it "
                             "as a manifest; write the plan elsewhere (e.g. ./plan.json)")


def write_saved_plan(path: str, args: argparse.Namespace, inputs: Inputs, options: PlanOptions,
                     combined: CombinedPlan, backends: Backends) -> None:
    if "<stdin>" in inputs.digests:
        raise UsageError("--out needs manifest files: a plan read from stdin cannot be checked again at apply")
    saved = SavedPlan(tuple(args.paths), inputs.digests, options, _server_entries(combined, backends),
                      plan_json(combined.merged))
    target = Path(path)
    # Atomic: a reviewer never sees half a plan, and a failed write leaves the old file in place.
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".roomctl-plan-", dir=target.parent or Path("."))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(saved.to_json(), handle, indent=2)
            handle.write("\n")
        os.replace(tmp, target)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        reason = "no such folder" if isinstance(exc, FileNotFoundError) and not target.parent.is_dir() else exc.strerror
        raise UsageError(f"cannot write the plan to {path}: {reason}") from None
    if not args.quiet:
        print(f"Saved the plan to {path}. `roomctl apply {path}` performs exactly this plan "
              "(and refuses if the manifests or the servers changed since).", file=sys.stderr)


def _looks_like_plan(head: bytes, name: str) -> bool:
    head = head.lstrip()
    return head.startswith(b"{") and (SAVED_PLAN_KIND.encode() in head or name.endswith(".json"))


def _stdin_is_plan() -> bool:
    """Peek at a piped stdin (nothing is consumed): `cat plan.json | roomctl apply -`."""
    buffer = getattr(sys.stdin, "buffer", None)
    peek = getattr(buffer, "peek", None)
    if peek is None:
        return False
    try:
        head: bytes = peek(1024)
    except (OSError, ValueError):
        return False
    return head.lstrip().startswith(b"{") and SAVED_PLAN_KIND.encode() in head


def load_saved_plan(paths: list[str]) -> SavedPlan | None:
    """The saved plan when `apply` was given one plan file (any name: a JSON object of kind
    roomctl-saved-plan), else None (manifests). A plan next to other paths, or on stdin, is refused."""
    if "-" in paths and _stdin_is_plan():
        raise UsageError("a saved plan cannot be read from stdin: run `roomctl apply PLANFILE` with the file")
    if len(paths) != 1:
        for other in paths:
            if other != "-" and os.path.isfile(other) and _read_plan(other) is not None:
                raise UsageError(f"{other} is a saved plan: it cannot be combined with other paths; "
                                 f"run `roomctl apply {other}` alone")
        return None
    return _read_plan(paths[0])


def _read_plan(path: str) -> SavedPlan | None:
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except OSError:
        return None  # the manifest loader reports it, with its position
    if not _looks_like_plan(head, path):
        return None
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        if not path.endswith(".json"):
            return None  # YAML in flow style, say: a manifest
        raise UsageError(f"{path}: not a readable plan file: {exc}") from None
    try:
        return SavedPlan.from_json(data)
    except SavedPlanError as exc:
        if isinstance(data, dict) and data.get("kind") != SAVED_PLAN_KIND and not path.endswith(".json"):
            return None
        raise UsageError(f"{path}: {exc}") from None


def _actions_text(entry: ServerEntry | None) -> str:
    """Actions as the plan file holds them (JSON: tuples and lists alike), to compare saved and fresh."""
    return json.dumps([action_to_json(a) for a in (entry.actions if entry else ())], sort_keys=True)


def _own_options_given(args: argparse.Namespace) -> list[str]:
    given = []
    for flag, value in (("--prune", args.prune), ("--prune-scope", args.prune_scope),
                        ("--allow-empty", args.allow_empty), ("--prune-occupied", args.prune_occupied),
                        ("--target", args.target), ("--selector", args.selector)):
        if value:
            given.append(flag)
    return given


async def apply_saved(args: argparse.Namespace, saved: SavedPlan,
                      run_actions: Callable[[CombinedPlan, Backends, argparse.Namespace], Awaitable[Results]],
                      report_results: Callable[[argparse.Namespace, Plan, Results], int]) -> int:
    """Check the saved plan still holds, then run exactly its actions (as planned again now: the
    same actions, with the credentials the plan file holds only redacted)."""
    extra = _own_options_given(args)
    if extra:
        raise UsageError(f"a saved plan carries its own options; drop {', '.join(extra)}")
    missing = [p for p in saved.paths if p != "-" and not os.path.exists(p)]
    if missing:
        raise UsageError(f"{args.paths[0]}: the manifest path(s) it was made from, {', '.join(missing)}, do not exist "
                         f"here: the paths in a plan are relative to the folder `roomctl diff --out` ran in "
                         f"(run apply from there)")
    inputs = load_inputs(saved.paths)
    reasons = manifest_changes(saved.files, inputs.digests)
    selected = select_inputs(inputs, saved.options.selection)
    async with open_backends(args, concurrency=args.concurrency,
                             plugnmeet=wants_plugnmeet(selected, saved.options.prune) or PNM_SERVER in saved.servers,
                             servers=referenced_servers(selected),
                             pnm_source=first_pnm_source(selected)) as backends:
        for server, entry in saved.servers.items():
            now = _url(backends, server) if server == PNM_SERVER or server == "" or server in backends.named else ""
            if now != entry.url:
                label = server or "default"
                reasons.append(f"server {label}: the plan was made against {entry.url or '(none)'}, "
                               f"now {now or '(none)'}")
        if not reasons:
            combined = await make_combined_plan(backends, inputs, saved.options)
            # A room that could not be read now cannot be shown unchanged: the plan does not hold.
            reasons.extend(f"{room.name!r} could not be read: {room.error}" for room in combined.merged.unreadable)
            fresh = _server_entries(combined, backends)
            for server in sorted(set(saved.servers) | set(fresh)):
                before = saved.servers.get(server)
                after = fresh.get(server)
                reasons.extend(stale_reasons(before.preconditions if before else {},
                                             after.preconditions if after else {}, server))
                if not reasons and _actions_text(before) != _actions_text(after):
                    reasons.append(f"server {server or 'default'}: the plan computed now differs from the saved one")
        if reasons:
            print_error(f"{args.paths[0]} is stale; nothing was changed. Since the plan was made:")
            for reason in reasons:
                print(f"  - {reason}", file=sys.stderr)
            print("Run `roomctl diff ... --out` again and review the new plan.", file=sys.stderr)
            return 1
        # The fresh actions are the saved ones (compared above, redacted alike) and carry the real
        # credentials, which the plan file never holds.
        redone = SavedPlan(saved.paths, saved.files, saved.options, fresh, saved.display)
        named = {server: redone.plan(server) for server in redone.servers if server not in ("", PNM_SERVER)}
        exact = CombinedPlan(redone.plan(""), redone.plan(PNM_SERVER), named)
        if args.output == "text" and not args.quiet:
            render_text(combined.merged, sys.stdout, verbose=args.verbose, colour=not args.no_color)
        results = await run_actions(exact, backends, args)
    return report_results(args, combined.merged, results)
