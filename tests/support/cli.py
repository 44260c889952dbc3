"""Run the real `roomctl` (this worktree's, via `python -m reconciler`) against a served sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.server import SandboxServer


def cli_env(sandbox: SandboxServer | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "PLUGNMEET_"))}
    if sandbox is not None:
        env.update(LIVEKIT_URL=sandbox.url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret",
                   PLUGNMEET_URL=sandbox.url, PLUGNMEET_API_KEY="plugnmeet", PLUGNMEET_API_SECRET="secret")
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def roomctl(sandbox: SandboxServer | None, *args: str, cwd: Path | None = None, stdin: str | None = None,
            **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True,
                          env=cli_env(sandbox, **env), cwd=cwd, timeout=120, input=stdin)


def popen(sandbox: SandboxServer | None, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "reconciler", *args], env=cli_env(sandbox), **kwargs)
