"""Run `roomctl` as a process that file permissions apply to.

The tests run as root in CI containers, and root reads a mode-000 folder anyway (CAP_DAC_OVERRIDE,
CAP_DAC_READ_SEARCH). The child drops those two capabilities from its bounding set before exec, so
it is refused exactly as an ordinary user would be."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Sequence

from tests.support.cli import cli_env

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2


def _drop_read_override() -> None:
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_roomctl(args: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None,
                stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    full_env = cli_env(None, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args], env=full_env, cwd=cwd, capture_output=True, text=True,
        input=stdin.decode() if stdin is not None else None, timeout=120, preexec_fn=_drop_read_override,
        check=False,
    )
