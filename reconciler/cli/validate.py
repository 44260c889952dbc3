"""`roomctl validate PATH...`: 0 valid, 1 invalid. Never contacts a server."""

from __future__ import annotations

import argparse

from ..manifests import ManifestError, load_inputs
from .common import note_skipped, report_manifest_error


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("validate", help="check manifests without contacting a server", parents=[common])
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        inputs = load_inputs(args.paths)
    except ManifestError as exc:
        return report_manifest_error(exc)
    skipped = note_skipped(inputs, args)
    if not args.quiet:
        counted = [f"{len(inputs.livekit)} room(s)"]
        if inputs.plugnmeet:
            counted.append(f"{len(inputs.plugnmeet)} plugNmeet room(s)")
        if inputs.policies:
            counted.append(f"{len(inputs.policies)} room policy(ies)")
        listed = counted[0] if len(counted) == 1 else f"{', '.join(counted[:-1])} and {counted[-1]}"
        print(f"{listed} valid." + (f" {skipped}" if skipped else ""))
    return 0
