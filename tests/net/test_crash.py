"""Issue 9 "held up, keep them pinned": `roomctl apply` killed with SIGKILL at random points converges
on the next run with no duplicate dispatch, and the embedded sandbox's state file is never torn.
Real processes; the kill points come from fixed seeds, so a failure replays."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

from tests.net.test_dispatch_writers import bot_dispatches, run, start, write
from tests.support.server import run_sandbox

ROOM = ("apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {{name: {name}}}\n"
        "spec: {{metadata: '{{\"v\":1}}', agents: [{{agentName: bot, metadata: m}}]}}\n")
BARE = "apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {{name: {name}}}\nspec: {{}}\n"
ROOMS = [f"crash-{i:02d}" for i in range(40)]
SEEDS = (1, 2, 3, 4, 5, 6)


def kill_after(process_args: tuple[str, ...], url: str | None, delay: float, cwd: Path | None = None) -> None:
    process = start(*process_args, url=url, cwd=cwd)
    try:
        process.wait(timeout=delay)
    except Exception:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


def test_sigkill_at_random_points_converges_without_duplicates(tmp_path: Path) -> None:
    manifest = write(tmp_path / "rooms.yaml", ROOM, ROOMS)
    bare = write(tmp_path / "bare.yaml", BARE, ROOMS)
    # The rooms exist first without agents, so the killed runs send CreateDispatch and
    # UpdateRoomMetadata (not agents inside CreateRoom). At 40 ms a request such a run takes ~0.9 s with
    # start-up here; the kill points (0.35-0.8 s) land before, during and after its writes.
    with run_sandbox("--latency-ms", "40") as box:
        for seed in SEEDS:
            box.test_api("POST", "reset")
            assert run("apply", "-q", str(bare), url=box.url).returncode == 0
            rng = random.Random(seed)
            # Two kills in a row: the second run starts from what the first left half done.
            for _ in range(2):
                kill_after(("apply", "-q", str(manifest)), box.url, rng.uniform(0.35, 0.8))
            done = run("apply", "-q", str(manifest), url=box.url)
            assert done.returncode == 0, f"seed {seed}: {done.stderr}"
            diff = run("diff", "-q", str(manifest), url=box.url)
            assert diff.returncode == 0, f"seed {seed}: not converged after one full apply: {diff.stdout}"
            counts = bot_dispatches(box.url, ROOMS)
            assert set(counts.values()) == {1}, f"seed {seed}: dispatches per room {counts}"


def test_sigkill_never_tears_the_embedded_state_file(tmp_path: Path) -> None:
    manifest = write(tmp_path / "rooms.yaml", ROOM, ROOMS)
    work = tmp_path / "work"
    work.mkdir()
    state = work / ".roomctl" / "sandbox.json"
    rng = random.Random(7)
    for _ in range(6):
        kill_after(("apply", "-q", str(manifest)), None, rng.uniform(0.1, 1.2), cwd=work)
        if state.exists():
            json.loads(state.read_text())  # whole: the write is temp file + fsync + rename
    time.sleep(0.1)
    done = run("apply", "-q", str(manifest), url=None, cwd=work)
    assert done.returncode == 0, done.stderr
    assert run("diff", "-q", str(manifest), url=None, cwd=work).returncode == 0
    rooms = json.loads(state.read_text())["livekit"]
    assert sorted(rooms) == ROOMS
