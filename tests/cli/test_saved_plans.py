"""Saved plans (issue 13 item 1): `diff --out plan.json` records the plan and the observed state it
rests on; `apply plan.json` performs exactly it, or refuses before any write (exit 1, naming what
changed) when the server or the manifests moved on. Out-of-band changes come from the official SDK."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from livekit import api

from tests.cli.test_end_to_end import sdk
from tests.support.cli import roomctl
from tests.support.server import SandboxServer
from tests.support.tokens import mint

HALL = """\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {{name: sp-hall}}
spec:
  metadata: {meta}
  participants:
    - identity: "guest-*"
      permission: {{canPublish: false}}
---
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {{name: sp-side}}
spec: {{maxParticipants: 4}}
"""
READS = {"RoomService.ListRooms", "RoomService.ListParticipants", "AgentDispatchService.ListDispatch"}


def manifest(tmp_path: Path, meta: str = "v1") -> Path:
    path = tmp_path / "rooms.yaml"
    path.write_text(HALL.format(meta=meta))
    return path


def join(sandbox: SandboxServer, identity: str) -> None:
    token = mint({"sub": identity, "video": {"roomJoin": True, "room": "sp-hall", "canPublish": True,
                                             "canSubscribe": True}})
    assert httpx.post(f"{sandbox.url}/sandbox/join", json={"token": token}).status_code == 200


def writes(sandbox: SandboxServer) -> dict[str, int]:
    return {k: v for k, v in sandbox.counts().items() if k not in READS}


def test_saved_plan_applies_exactly_the_reviewed_plan(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = manifest(tmp_path)
    plan_file = tmp_path / "plan.json"
    diff = roomctl(sandbox, "diff", str(path), "--out", str(plan_file))
    assert diff.returncode == 2, diff.stderr
    saved = json.loads(plan_file.read_text())
    assert saved["kind"] == "roomctl-saved-plan" and saved["servers"][""]["preconditions"] == {
        "sp-hall": None, "sp-side": None}
    assert [a["type"] for a in saved["servers"][""]["actions"]] == ["CreateRoom", "CreateRoom"]
    applied = roomctl(sandbox, "apply", str(plan_file), "-o", "json")
    assert applied.returncode == 0, applied.stderr
    assert [(r["type"], r["room"], r["ok"]) for r in json.loads(applied.stdout)["results"]] == [
        ("CreateRoom", "sp-hall", True), ("CreateRoom", "sp-side", True)]
    assert roomctl(sandbox, "diff", str(path)).returncode == 0
    renamed = tmp_path / "reviewed.tfplan"  # a plan file is recognised by its content, whatever its name
    renamed.write_text(plan_file.read_text())
    again = roomctl(sandbox, "apply", str(renamed))  # Terraform's "saved plan is stale" after it ran
    assert again.returncode == 1 and "room 'sp-hall' exists now" in again.stderr


def test_saved_plan_is_refused_when_the_server_moved_on(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = manifest(tmp_path)
    assert roomctl(sandbox, "apply", str(path)).returncode == 0
    join(sandbox, "guest-1")
    path = manifest(tmp_path, "v2")
    plan_file = tmp_path / "plan.json"
    assert roomctl(sandbox, "diff", str(path), "--out", str(plan_file)).returncode == 2
    pre = json.loads(plan_file.read_text())["servers"][""]["preconditions"]["sp-hall"]
    assert pre["numParticipants"] == 1 and set(pre["participants"]) == {"guest-1"}

    async def meddle(lk: api.LiveKitAPI) -> None:  # between review and apply, someone acts on the room
        await lk.room.update_participant(api.UpdateParticipantRequest(room="sp-hall", identity="guest-1",
                                                                      metadata="moved"))
        await lk.room.delete_room(api.DeleteRoomRequest(room="sp-side"))

    sdk(sandbox, meddle)
    sandbox.test_api("DELETE", "requests")
    refused = roomctl(sandbox, "apply", str(plan_file))
    assert refused.returncode == 1
    assert "is stale; nothing was changed" in refused.stderr
    assert "participant 'guest-1' changed (version" in refused.stderr
    assert "room 'sp-side' no longer exists" in refused.stderr
    assert writes(sandbox) == {}  # refused before any write

    join(sandbox, "guest-2")  # a fresh review sees the new state; then a join makes it stale again
    assert roomctl(sandbox, "diff", str(path), "--out", str(plan_file)).returncode == 2
    join(sandbox, "guest-3")
    sandbox.test_api("DELETE", "requests")
    joined = roomctl(sandbox, "apply", str(plan_file))
    assert joined.returncode == 1 and "participant 'guest-3' joined" in joined.stderr
    assert writes(sandbox) == {}


def test_saved_plan_is_refused_when_the_manifests_or_server_changed(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = manifest(tmp_path)
    plan_file = tmp_path / "plan.json"
    assert roomctl(sandbox, "diff", str(path), "--out", str(plan_file)).returncode == 2
    manifest(tmp_path, "edited")
    sandbox.test_api("DELETE", "requests")
    edited = roomctl(sandbox, "apply", str(plan_file))
    assert edited.returncode == 1 and "manifest " in edited.stderr and "rooms.yaml changed (sha256" in edited.stderr
    assert sandbox.counts() == {}  # the manifests are checked before the server is even asked
    manifest(tmp_path)
    elsewhere = roomctl(sandbox, "apply", str(plan_file), LIVEKIT_URL=sandbox.url.replace("127.0.0.1", "localhost"))
    assert elsewhere.returncode == 1 and "the plan was made against http://127.0.0.1" in elsewhere.stderr
    flags = roomctl(sandbox, "apply", str(plan_file), "--prune")
    assert flags.returncode == 1 and "a saved plan carries its own options" in flags.stderr
    stdin = roomctl(sandbox, "diff", "-", "--out", str(tmp_path / "x.json"), stdin=HALL.format(meta="v1"))
    assert stdin.returncode == 1 and "--out needs manifest files" in stdin.stderr
    assert writes(sandbox) == {}


def test_saved_plan_with_participant_and_metadata_actions_runs_when_nothing_moved(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    path = manifest(tmp_path)
    assert roomctl(sandbox, "apply", str(path)).returncode == 0
    join(sandbox, "guest-1")
    path = manifest(tmp_path, "v2")
    plan_file = tmp_path / "plan.json"
    assert roomctl(sandbox, "diff", str(path), "--out", str(plan_file)).returncode == 2
    kinds = sorted(a["type"] for a in json.loads(plan_file.read_text())["servers"][""]["actions"])
    assert kinds == ["UpdateParticipant", "UpdateRoomMetadata"]
    applied = roomctl(sandbox, "apply", str(plan_file), "-o", "json")
    assert applied.returncode == 0, applied.stderr
    assert sorted(r["type"] for r in json.loads(applied.stdout)["results"]) == kinds
    assert roomctl(sandbox, "diff", str(path)).returncode == 0
