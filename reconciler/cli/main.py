"""Builds the parser and dispatches to one module per command.

Exit codes stay Terraform's: 0 ok, 1 error, 2 changes pending (`diff`). So a usage error exits 1
(argparse's own 2 would read as "changes pending" in CI), Ctrl-C exits 130 and a closed stdout 141
(128 + SIGPIPE, what a Go tool killed by the pipe returns), each without a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from . import apply, completion, crds, delete, diff, export, operator, sandbox, schema, serve, token, validate

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
COMMANDS = (validate, diff, apply, delete, export, token, serve, sandbox, operator, crds, schema, completion)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1: 2 is "changes pending" for `diff`."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def roomctl_version() -> str:
    try:
        return version("roomctl")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="more output (repeat: requests, debug)")
    common.add_argument("-q", "--quiet", action="store_true", help="only errors (no progress line)")
    common.add_argument("--no-color", action="store_true", help="no colour even on a terminal (also: env NO_COLOR)")
    parser = Parser(prog="roomctl", description="Make LiveKit rooms match your manifests.")
    parser.add_argument("--version", action="version", version=f"roomctl {roomctl_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub, common)
    return parser


def _silence_stdout() -> None:
    """The reader went away (`roomctl diff | head`): drop what is still buffered, quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        from .common import setup_logging

        setup_logging(args)
        code: int = args.run(args)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at interpreter exit
        return code
    except KeyboardInterrupt:
        print("\nroomctl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
