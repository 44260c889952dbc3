"""`python bench/run.py --quick` still works: every benchmark runs end to end against real sandbox
processes and its contenders issue exactly the requests they must. A smoke check only: no timing
is asserted (the machine is shared; bench/RESULTS.md holds the measured figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmarks_run() -> None:
    done = subprocess.run([sys.executable, "bench/run.py", "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for number in range(1, 8):
        assert f"\n{number}. " in done.stdout, f"benchmark {number} did not run"
    assert "BROKEN" not in done.stdout
    # Request counts are facts, not timings: the steady-state diff and the sweep make one ListRooms.
    assert "1 ListRooms for 300 rooms (<= 1), no other request (none)" in done.stdout
    assert "1 ListRooms per sweep of 300 (<= 1), no other request (none)" in done.stdout
