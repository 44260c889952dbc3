"""Builds the parser and dispatches to one module per command.

Exit codes stay Terraform's: 0 ok, 1 error, 2 changes pending (`diff`). So a usage error exits 1
(argparse's own 2 would read as "changes pending" in CI), Ctrl-C exits 130 and a closed stdout 141
(128 + SIGPIPE, what a Go tool killed by the pipe returns), each without a traceback."""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import apply, completion, crds, delete, diff, export, operator, sandbox, schema, serve, token, validate

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
COMMANDS = (validate, diff, apply, delete, export, token, serve, sandbox, operator, crds, schema, completion)


SECRET_FLAG = ("--api-secret is not a flag of this command, and a secret on the command line ends up in shell "
               "history and CI logs: use --api-secret-file FILE or the env LIVEKIT_API_SECRET")
_INVALID_CHOICE = re.compile(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$")


def unrecognized(extras: Sequence[str]) -> str:
    """The "unrecognized arguments" message without the values: a value given to an unknown flag may
    be a secret (`--api-secret X`, `--token X`), so only flag names are shown (`--flag=value` cut at `=`)."""
    shown: list[str] = []
    hidden = 0
    after_flag = False
    for arg in extras:
        if arg.startswith("-") and arg != "-":
            shown.append(arg.split("=", 1)[0] + ("=…" if "=" in arg else ""))
            after_flag = True
        elif after_flag:
            hidden += 1
        else:
            shown.append(arg)
    text = f"unrecognized arguments: {' '.join(shown)}"
    return text + (f" (and {hidden} value(s), not shown)" if hidden else "")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1 (2 is "changes pending" for `diff`), no abbreviations
    (`--api-secret` must never be taken for `--api-secret-file`), the usage of the subcommand that
    was given, and "did you mean" for a mistyped command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if not hasattr(parsed, "_parser"):  # the innermost (sub)command parser sets it first
            parsed._parser = self
        return parsed, extras

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            owner: argparse.ArgumentParser = getattr(parsed, "_parser", self)
            if any(a == "--api-secret" or a.startswith("--api-secret=") for a in extras):
                owner.error(SECRET_FLAG)
            owner.error(unrecognized(extras))
        return parsed

    def error(self, message: str) -> NoReturn:
        match = _INVALID_CHOICE.match(message)
        if match:
            choices = [c.strip().strip("'") for c in match.group(3).split(",")]
            close = difflib.get_close_matches(match.group(2), choices, n=1)
            if match.group(1) in ("COMMAND", "SUBCOMMAND"):
                message = f"unknown command {match.group(2)!r} (choose from {', '.join(choices)})"
            if close:
                message += f"; did you mean {close[0]!r}?"
        elif message.startswith("the following arguments are required:"):
            for action in self._actions:  # a command with subcommands and none given: name them
                if isinstance(action, argparse._SubParsersAction) and str(action.metavar) in message:
                    message += f" (choose from {', '.join(action.choices)})"
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def roomctl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # ~20 ms of imports: only when asked

    try:
        return version("roomctl")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class _VersionAction(argparse.Action):
    """--version, with the version looked up only when it is asked for (not on every run)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> NoReturn:
        print(f"roomctl {roomctl_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="more output (repeat: requests, debug)")
    common.add_argument("-q", "--quiet", action="store_true", help="only errors (no progress line)")
    common.add_argument("--no-color", action="store_true", help="no colour even on a terminal (also: env NO_COLOR)")
    parser = Parser(prog="roomctl", description="Make LiveKit rooms match your manifests.")
    parser.add_argument("--version", action=_VersionAction, help="show roomctl's version and exit")
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
