"""The embedded sandbox's state file (issue 9 item 7): damage is one line naming the file and how to
reset it (never a traceback, the file left as it is), writes are atomic, leftovers are removed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.sandbox import Sandbox, SandboxConfig, SandboxStateError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "town-hall.yaml"
STATE = Path(".roomctl") / "sandbox.json"
RESET = "delete it to start from an empty sandbox: rm .roomctl/sandbox.json"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "PLUGNMEET_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def apply_example(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["apply", "-q", str(EXAMPLE)])
    return code, capsys.readouterr().err


def test_apply_writes_state_atomically_and_leaves_no_temp(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = apply_example(capsys)
    assert code == 0, err
    assert json.loads(STATE.read_text())["livekit"]["town-hall"]["room"]["name"] == "town-hall"
    assert sorted(p.name for p in STATE.parent.iterdir()) == ["sandbox.json", "sandbox.lock"]  # no temp file


def valid_state(workdir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert apply_example(capsys)[0] == 0
    return STATE.read_text()


DAMAGE = {
    "truncated": lambda good: good[: len(good) // 2],
    "empty": lambda good: "",
    "garbage": lambda good: "\x00\x01 not json at all",
    "a list": lambda good: "[]",
    "rooms not an object": lambda good: '{"version": 1, "livekit": []}',
    "room not an object": lambda good: '{"livekit": {"a": {"room": 5}}}',
    "unknown room field": lambda good: '{"livekit": {"a": {"room": {"nmae": "a"}}}}',
    "plugnmeet room wrong shape": lambda good: '{"plugnmeet": {"rooms": [{"bogus": 1}]}}',
    "clock NaN": lambda good: '{"clock_offset": NaN}',
    "newer version": lambda good: '{"version": 7}',
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_state_is_one_line_naming_the_file_and_the_reset(
    damage: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = valid_state(workdir, capsys)
    STATE.write_text(DAMAGE[damage](good))
    before = STATE.read_bytes()
    code, err = apply_example(capsys)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: damaged sandbox state .roomctl/sandbox.json (")
    assert lines[0].endswith(RESET)
    assert STATE.read_bytes() == before, "a damaged state file is left as it is (no overwrite)"


def test_unreadable_and_unwritable_state(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path(".roomctl").write_text("a file where the folder should be")
    code, err = apply_example(capsys)
    assert code == 1
    assert err.splitlines() == ["error: cannot use the embedded sandbox: .roomctl is not a folder"]


def test_sandbox_serve_refuses_a_damaged_state(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("state.json").write_text("{")
    assert main(["sandbox", "serve", "--port", "0", "--state", "state.json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: damaged sandbox state state.json (JSONDecodeError")
    assert "rm state.json" in err


def test_stale_temp_files_are_removed_fresh_ones_kept(workdir: Path) -> None:
    folder = workdir / "state"
    folder.mkdir()
    stale = folder / ".sandbox-killed.json"
    stale.write_text("{half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = folder / ".sandbox-inflight.json"  # another process may be writing it right now
    fresh.write_text("{")
    sandbox = Sandbox(SandboxConfig(state_file=folder / "sandbox.json"))
    sandbox.save()
    assert sorted(p.name for p in folder.iterdir()) == [".sandbox-inflight.json", "sandbox.json"]


def test_failed_write_keeps_the_previous_state_and_no_temp(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = workdir / "sandbox.json"
    sandbox = Sandbox(SandboxConfig(state_file=target))
    sandbox.save()
    before = target.read_bytes()

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(SandboxStateError, match=r"cannot write sandbox state .*No space left on device"):
        sandbox.save()
    assert target.read_bytes() == before
    assert sorted(p.name for p in workdir.iterdir()) == ["sandbox.json"]
