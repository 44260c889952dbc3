"""The CLI against `roomctl sandbox serve` on a loopback socket, with out-of-band changes made by
the official `livekit-api` SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
from livekit import api

from tests.support.cli import roomctl
from tests.support.sdk import sdk
from tests.support.server import SandboxServer
from tests.support.tokens import mint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"




def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


ROOMS = """\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: e2e-hall}
spec:
  emptyTimeout: 3600
  metadata: {title: Hall}
  agents: [{agentName: helper}]
  participants:
    - identity: "host-*"
      permission: {canPublish: true}
      attributes: {role: host}
    - identity: "*"
      permission: {canPublish: false}
---
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: e2e-side}
spec:
  maxParticipants: 10
"""


def test_diff_apply_diff_and_heal_out_of_band_changes(sandbox: SandboxServer, tmp_path: Path) -> None:
    manifest = write(tmp_path / "rooms.yaml", ROOMS)
    first = roomctl(sandbox, "diff", str(manifest))
    assert first.returncode == 2, first.stderr
    assert 'room "e2e-hall"' in first.stdout and "Plan: 2 to create" in first.stdout
    applied = roomctl(sandbox, "apply", str(manifest))
    assert applied.returncode == 0, applied.stderr + applied.stdout
    clean = roomctl(sandbox, "diff", str(manifest))
    assert clean.returncode == 0, clean.stdout
    assert "No changes." in clean.stdout

    # Out of band: metadata edited, a room deleted, an unmanaged room added.
    async def meddle(lk: api.LiveKitAPI) -> None:
        await lk.room.update_room_metadata(api.UpdateRoomMetadataRequest(room="e2e-hall", metadata="hacked"))
        await lk.room.delete_room(api.DeleteRoomRequest(room="e2e-side"))
        await lk.room.create_room(api.CreateRoomRequest(name="unmanaged"))

    sdk(sandbox, meddle)
    drifted = roomctl(sandbox, "diff", str(manifest), "-o", "json")
    assert drifted.returncode == 2
    report = json.loads(drifted.stdout)
    by_name = {r["name"]: r for r in report["rooms"]}
    assert by_name["e2e-side"]["status"] == "create"
    assert [a["type"] for a in by_name["e2e-hall"]["actions"]] == ["UpdateRoomMetadata"]
    assert report["summary"]["unmanaged"] == 0  # not listed without --prune: only declared names are read
    assert roomctl(sandbox, "apply", str(manifest)).returncode == 0
    assert roomctl(sandbox, "diff", str(manifest)).returncode == 0

    async def names(lk: api.LiveKitAPI) -> list[str]:
        return sorted(r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms)

    assert sdk(sandbox, names) == ["e2e-hall", "e2e-side", "unmanaged"]  # the unmanaged room survives

    # Agents are dispatched once, however often apply runs.
    assert roomctl(sandbox, "apply", str(manifest)).returncode == 0

    async def dispatches(lk: api.LiveKitAPI) -> list[str]:
        return sorted(d.agent_name for d in await lk.agent_dispatch.list_dispatch("e2e-hall"))

    assert sdk(sandbox, dispatches) == ["helper"]


def test_participants_joined_get_their_permissions_enforced(sandbox: SandboxServer, tmp_path: Path) -> None:
    manifest = write(tmp_path / "rooms.yaml", ROOMS)
    assert roomctl(sandbox, "apply", str(manifest)).returncode == 0
    for identity in ("host-1", "guest-1"):
        token = mint({"sub": identity, "video": {"roomJoin": True, "room": "e2e-hall", "canPublish": True,
                                                 "canSubscribe": True}})
        assert httpx.post(f"{sandbox.url}/sandbox/join", json={"token": token}).status_code == 200
    pending = roomctl(sandbox, "diff", str(manifest))
    assert pending.returncode == 2
    assert 'participant "guest-1"' in pending.stdout and "permission.canPublish: true -> false" in pending.stdout
    assert roomctl(sandbox, "apply", str(manifest)).returncode == 0
    assert roomctl(sandbox, "diff", str(manifest)).returncode == 0

    async def participants(lk: api.LiveKitAPI) -> dict[str, Any]:
        listed = await lk.room.list_participants(api.ListParticipantsRequest(room="e2e-hall"))
        return {p.identity: p for p in listed.participants}

    seen = sdk(sandbox, participants)
    assert seen["host-1"].permission.can_publish and dict(seen["host-1"].attributes) == {"role": "host"}
    assert not seen["guest-1"].permission.can_publish
    assert seen["guest-1"].permission.can_subscribe  # the rule's partial permission kept the rest


def test_export_then_diff_is_clean(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def make(lk: api.LiveKitAPI) -> None:
        await lk.room.create_room(api.CreateRoomRequest(name="adopt-me", empty_timeout=900, metadata="x"))
        await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(room="adopt-me", agent_name="bot"))

    sdk(sandbox, make)
    exported = roomctl(sandbox, "export", "adopt-me")
    assert exported.returncode == 0, exported.stderr
    manifest = write(tmp_path / "adopted.yaml", exported.stdout)
    result = roomctl(sandbox, "diff", str(manifest))
    assert result.returncode == 0, result.stdout


def test_token_joins_and_creates_room_with_declared_config(sandbox: SandboxServer) -> None:
    result = roomctl(sandbox, "token", "interview-42", "candidate-1", "-f", str(EXAMPLES / "interview.yaml"))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["video"]["canPublishData"] is False and claims["attributes"] == {"role": "candidate"}
    joined = httpx.post(f"{sandbox.url}/sandbox/join", json={"token": token})
    assert joined.status_code == 200

    async def look(lk: api.LiveKitAPI) -> tuple[Any, list[str]]:
        rooms = (await lk.room.list_rooms(api.ListRoomsRequest(names=["interview-42"]))).rooms
        agents = [d.agent_name for d in await lk.agent_dispatch.list_dispatch("interview-42")]
        return rooms, agents

    rooms, agents = sdk(sandbox, look)
    assert [(r.empty_timeout, r.departure_timeout, r.max_participants) for r in rooms] == [(600, 30, 4)]
    assert agents == ["note-taker"]
    assert roomctl(sandbox, "diff", str(EXAMPLES / "interview.yaml")).returncode == 0


def test_prune_never_touches_rooms_outside_scope(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def make(lk: api.LiveKitAPI) -> None:
        for name in ("team-alpha-old", "team-beta-x", "lobby-x"):
            await lk.room.create_room(api.CreateRoomRequest(name=name))

    sdk(sandbox, make)
    folder = EXAMPLES / "team-alpha"
    refused = roomctl(sandbox, "apply", str(folder), "--prune")
    assert refused.returncode == 1 and "--prune-scope" in refused.stderr
    result = roomctl(sandbox, "apply", str(folder), "--prune", "--prune-scope", "team-alpha-*")
    assert result.returncode == 0, result.stderr + result.stdout

    async def names(lk: api.LiveKitAPI) -> list[str]:
        return sorted(r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms)

    assert sdk(sandbox, names) == ["lobby-x", "team-alpha-retro", "team-alpha-standup", "team-beta-x"]


def test_wrong_secret_is_one_clear_error_without_secrets(sandbox: SandboxServer, tmp_path: Path) -> None:
    manifest = write(tmp_path / "rooms.yaml", ROOMS)
    env = dict(os.environ, LIVEKIT_URL=sandbox.url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="wrong-secret-value")
    result = subprocess.run([sys.executable, "-m", "reconciler", "diff", "-vv", str(manifest)], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "authentication failed (HTTP 401)" in result.stderr
    output = result.stdout + result.stderr
    assert "wrong-secret-value" not in output and "eyJ" not in output


def test_embedded_sandbox_is_the_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    run = subprocess.run([sys.executable, "-m", "reconciler", "apply", str(EXAMPLES)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "embedded sandbox" in run.stderr
    assert (tmp_path / ".roomctl" / "sandbox.json").exists()
    again = subprocess.run([sys.executable, "-m", "reconciler", "diff", str(EXAMPLES)], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=120)
    assert again.returncode == 0, again.stdout
