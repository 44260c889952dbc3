"""Run `roomctl` against a served sandbox: in-process by default (the same `main()` the script runs,
with the environment, working directory, stdin and stdout/stderr swapped for the call; no Python
start-up per call), or as a real process (`popen`, or `roomctl(..., process=True)`) where process
semantics are under test (exit codes of the installed script, signals, pipes)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.server import SandboxServer


def cli_env(sandbox: SandboxServer | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "PLUGNMEET_", "ROOMCTL_"))}
    if sandbox is not None:
        env.update(LIVEKIT_URL=sandbox.url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret",
                   PLUGNMEET_URL=sandbox.url, PLUGNMEET_API_KEY="plugnmeet", PLUGNMEET_API_SECRET="secret")
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


@contextlib.contextmanager
def _swapped(env: dict[str, str], cwd: Path | None, stdin: str | None) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    saved_env, saved_cwd, saved_stdin = dict(os.environ), os.getcwd(), sys.stdin
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin = io.TextIOWrapper(io.BytesIO((stdin or "").encode()))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err
    finally:
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def roomctl(sandbox: SandboxServer | None, *args: str, cwd: Path | None = None, stdin: str | None = None,
            process: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    if process:
        return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True,
                              env=cli_env(sandbox, **env), cwd=cwd, timeout=120, input=stdin)
    from reconciler.cli.main import main

    with _swapped(cli_env(sandbox, **env), cwd, stdin) as (out, err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: usage errors, --version
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(["roomctl", *args], code, out.getvalue(), err.getvalue())


def popen(sandbox: SandboxServer | None, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "reconciler", *args], env=cli_env(sandbox), **kwargs)
