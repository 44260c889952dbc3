"""Builds the parser and dispatches to one module per command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import apply, crds, diff, export, operator, sandbox, schema, token, validate


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="more output (repeat: requests, debug)")
    common.add_argument("-q", "--quiet", action="store_true", help="only errors")
    parser = argparse.ArgumentParser(prog="roomctl", description="Make LiveKit rooms match your manifests.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (validate, diff, apply, export, token, sandbox, operator, crds, schema):
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .common import setup_logging

    setup_logging(args)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
