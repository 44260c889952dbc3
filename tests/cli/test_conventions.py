"""The CLI conventions a platform engineer expects (issue 13 item 4): the exit-code table, usage
errors, --version, Ctrl-C, a closed pipe, completion, colour, -q and re-create lines."""

from __future__ import annotations

import io
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reconciler.cli.main import main
from reconciler.manifests import load_inputs
from reconciler.observed import ObservedRoom, ObservedState
from reconciler.plan import plan
from reconciler.render import Progress, render_text
from tests.support.cli import cli_env, popen, roomctl
from tests.support.server import SandboxServer
from tests.support.tokens import mint

ROOM = """\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {{name: {name}}}
spec: {{maxParticipants: {size}}}
"""


def rooms(folder: Path, count: int, prefix: str = "conv", size: int = 10) -> Path:
    folder.mkdir(exist_ok=True)
    for i in range(count):
        (folder / f"{prefix}-{i:03}.yaml").write_text(ROOM.format(name=f"{prefix}-{i:03}", size=size))
    return folder


def _main(*args: str) -> int:
    """The CLI in-process (fast); SystemExit from argparse counts like the process exit code."""
    try:
        return main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)


def test_exit_code_table(sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = rooms(tmp_path / "rooms", 2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {name: x}\nspec: {emptyTimout: 1}\n")
    plan_file = tmp_path / "plan.json"
    for key, value in cli_env(sandbox).items():
        monkeypatch.setenv(key, value)
    table = [
        (("validate", str(folder)), 0),
        (("validate", str(bad)), 1),
        (("diff", str(folder)), 2),            # changes pending
        (("diff", str(bad)), 1),               # invalid input is an error, never "changes"
        (("diff", str(folder), "--out", str(plan_file)), 2),  # a saved plan: still "changes pending"
        (("apply", str(folder)), 0),
        (("apply", str(plan_file)), 1),        # that saved plan is stale now: refused
        (("diff", str(folder)), 0),            # in sync
        (("diff", "--fail-on-drfit", str(folder)), 1),  # a usage error (typo): 1, not argparse's 2
        (("dif", str(folder)), 1),             # unknown command
        (("diff",), 1),                        # missing argument
        (("apply", "--concurrency", "many", str(folder)), 1),
        (("completion", "tcsh"), 1),           # a bad choice
        (("diff", str(folder), "--url", "http://127.0.0.1:9"), 1),  # nobody listening: an error
        (("delete", "-f", str(folder)), 0),
        (("diff", str(folder)), 2),            # deleted: pending again
    ]
    for args, code in table:
        assert _main(*args) == code, args
    # The installed script, as CI runs it: the typo is exit 1 with a usage line, no traceback.
    usage = roomctl(sandbox, "diff", "--fail-on-drfit", str(folder), process=True)
    assert usage.returncode == 1
    assert "usage: roomctl" in usage.stderr and "--fail-on-drfit" in usage.stderr
    assert "Traceback" not in usage.stderr


def test_version_flag() -> None:
    result = roomctl(None, "--version", process=True)
    assert result.returncode == 0
    assert result.stdout.strip() == "roomctl 0.1.0"


def test_ctrl_c_during_apply_exits_130_with_a_summary(sandbox: SandboxServer, tmp_path: Path) -> None:
    folder = rooms(tmp_path / "rooms", 12, prefix="sigint")
    sandbox.test_api("PUT", "faults", {"methods": {"RoomService.CreateRoom": {"latency_ms": 300}}})
    try:
        process = popen(sandbox, "apply", "--concurrency", "1", str(folder),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while sandbox.counts().get("RoomService.CreateRoom", 0) < 3:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C delivers
        _, err = process.communicate(timeout=30)
    finally:
        sandbox.test_api("DELETE", "faults")
    stderr = err.decode()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    summary = next(line for line in stderr.splitlines() if line.startswith("Interrupted:"))
    applied = int(summary.split()[1])
    assert stderr.count(": done (sid RM_") == applied  # each applied action is listed
    listed = sandbox.test_api("GET", "requests")
    assert listed["counts"]["RoomService.CreateRoom"] < 12  # it really stopped
    created = json.loads(roomctl(sandbox, "diff", "-o", "json", str(folder)).stdout)["summary"]["create"]
    # What the summary says was applied exists; at most the one in flight when Ctrl-C came may too.
    assert 12 - applied - 1 <= created <= 12 - applied


def test_closed_pipe_is_quiet(sandbox: SandboxServer, tmp_path: Path) -> None:
    folder = rooms(tmp_path / "rooms", 400, prefix="pipe")  # ~200 KB of JSON: far more than a pipe holds
    process = popen(sandbox, "diff", "-o", "json", str(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    head = process.stdout.read(100)  # `| head -c 100`
    process.stdout.close()
    err = process.stderr.read().decode()
    process.wait(timeout=60)
    assert head.startswith(b"{")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert process.returncode == 141  # 128 + SIGPIPE, as a Go tool killed by the pipe


def _bash_complete(script: str, *words: str) -> list[str]:
    program = (script + '\nCOMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _roomctl; '
               'printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "-c", program, "bash", *words], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completion_scripts(tmp_path: Path) -> None:
    bash = roomctl(None, "completion", "bash")
    assert bash.returncode == 0
    assert _bash_complete(bash.stdout, "roomctl", "ap") == ["apply"]
    assert set(_bash_complete(bash.stdout, "roomctl", "diff", "--pr")) == {"--prune", "--prune-scope",
                                                                        "--prune-occupied"}
    assert _bash_complete(bash.stdout, "roomctl", "diff", "-o", "") == ["text", "json"]
    assert "serve" in _bash_complete(bash.stdout, "roomctl", "sandbox", "")
    assert _bash_complete(bash.stdout, "roomctl", "sandbox", "serve", "--routed") == ["--routed-delay"]
    assert set(_bash_complete(bash.stdout, "roomctl", "completion", "")) >= {"bash", "zsh", "fish"}
    for shell in ("zsh", "fish"):
        script = roomctl(None, "completion", shell)
        assert script.returncode == 0 and "roomctl" in script.stdout
        assert ("--prune-scope" in script.stdout) or ("-l prune-scope" in script.stdout)
        binary = shutil.which(shell)
        if binary:  # a syntax check where the shell is installed
            path = tmp_path / f"roomctl.{shell}"
            path.write_text(script.stdout)
            check = subprocess.run([binary, "-n", str(path)], capture_output=True, text=True, timeout=30)
            assert check.returncode == 0, check.stderr


def _on_a_terminal(folder: Path, *args: str, no_color: str | None = None) -> str:
    """Run `roomctl diff` (embedded sandbox) with stdout on a pseudo-terminal and return what it drew."""
    leader, follower = pty.openpty()
    environment = cli_env(None)
    del environment["NO_COLOR"]
    if no_color is not None:
        environment["NO_COLOR"] = no_color
    process = subprocess.Popen([sys.executable, "-m", "reconciler", "diff", *args, str(folder / "rooms")],
                               stdout=follower, stderr=subprocess.DEVNULL, env=environment, cwd=folder)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_unless_no_color(tmp_path: Path) -> None:
    folder = rooms(tmp_path / "rooms", 1)
    assert folder.exists()
    assert "\x1b[32m+ room" in _on_a_terminal(tmp_path)  # + create in green
    assert "\x1b[" not in _on_a_terminal(tmp_path, "--no-color")
    assert "\x1b[" not in _on_a_terminal(tmp_path, no_color="")  # any value, even empty (no-color.org)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_draws_no_progress_line() -> None:
    shown, quiet = _Terminal(), _Terminal()
    for stream, enabled in ((shown, True), (quiet, False)):
        progress = Progress(3, stream=stream, after=0.0, enabled=enabled)
        for _ in range(3):
            progress.tick()
        progress.finish()
    assert "[3/3] applying" in shown.getvalue()
    assert quiet.getvalue() == ""


def test_quiet_apply_prints_nothing_but_errors(sandbox: SandboxServer, tmp_path: Path) -> None:
    folder = rooms(tmp_path / "rooms", 2, prefix="quiet")
    result = roomctl(sandbox, "apply", "-q", str(folder))
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


def test_recreate_line_says_how_many_participants_it_disconnects(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(ROOM.format(name="busy", size=5).replace("spec: {", "spec: {policy: {recreate: Always}, "))
    desired = load_inputs([str(path)]).livekit
    observed = ObservedState({"busy": ObservedRoom("busy", "RM_old", 300, 20, 10, "", num_participants=3)})
    result = plan(desired, observed)
    assert result.rooms[0].status == "recreate" and result.rooms[0].actions[0].disconnects == 3
    text = io.StringIO()
    render_text(result, text)
    assert 'must be re-created, disconnecting 3 participants' in text.getvalue()


def test_recreate_line_in_the_cli(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(ROOM.format(name="busy-cli", size=5).replace("spec: {", "spec: {policy: {recreate: Always}, "))
    assert roomctl(sandbox, "apply", str(path)).returncode == 0
    for who in ("a", "b"):
        token = mint({"sub": who, "video": {"roomJoin": True, "room": "busy-cli"}})
        assert httpx.post(f"{sandbox.url}/sandbox/join", json={"token": token}).status_code == 200
    path.write_text(ROOM.format(name="busy-cli", size=6).replace("spec: {", "spec: {policy: {recreate: Always}, "))
    result = roomctl(sandbox, "diff", str(path))
    assert result.returncode == 2
    assert '-/+ room "busy-cli"  must be re-created, disconnecting 2 participants' in result.stdout
    report = json.loads(roomctl(sandbox, "diff", "-o", "json", str(path)).stdout)
    assert report["rooms"][0]["actions"][0]["disconnects"] == 2
