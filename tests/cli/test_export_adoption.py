"""Export for adoption (issue 13 item 6): `export` writes Room and PlugNmeetRoom manifests with a
policy that keeps each room's behaviour, so adopting changes nothing: export, then diff, is clean —
also after a room that a join created closes again (OnDemand: roomctl does not bring it back)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import yaml
from livekit import api

from tests.cli.test_end_to_end import sdk
from tests.sandbox.test_plugnmeet_and_faults import pnm
from tests.support.cli import roomctl
from tests.support.server import SandboxServer
from tests.support.tokens import mint


def test_export_then_diff_is_clean_for_adopted_rooms(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def make(lk: api.LiveKitAPI) -> None:
        await lk.room.create_room(api.CreateRoomRequest(name="adopt-made", empty_timeout=900, metadata="x",
                                                        max_participants=12))
        await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(room="adopt-made", agent_name="bot"))

    sdk(sandbox, make)
    # A room created by a join (auto-create), as a LiveKit deployment's rooms usually are.
    token = mint({"sub": "walk-in", "video": {"roomJoin": True, "room": "adopt-joined"}})
    assert httpx.post(f"{sandbox.url}/sandbox/join", json={"token": token}).status_code == 200
    # A plugNmeet room somebody created with plugNmeet's own API (no roomctl spec hash).
    created = pnm(sandbox, "create", {"room_id": "adopt-class", "metadata": {
        "room_title": "Chemistry", "welcome_message": "hi",
        "room_features": {"allow_webcams": True, "chat_features": {"allow_chat": False}}}})
    assert created.json()["status"] is True

    exported = roomctl(sandbox, "export")
    assert exported.returncode == 0, exported.stderr
    documents = {d["metadata"]["name"]: d for d in yaml.safe_load_all(exported.stdout)}
    assert {n: d["kind"] for n, d in documents.items()} == {
        "adopt-made": "Room", "adopt-joined": "Room", "adopt-class": "PlugNmeetRoom"}
    for document in documents.values():
        assert document["spec"]["policy"] == {"lifecycle": "OnDemand", "recreate": "Never"}
    assert documents["adopt-class"]["spec"]["metadata"]["roomTitle"] == "Chemistry"
    manifest = tmp_path / "adopted.yaml"
    manifest.write_text(exported.stdout)

    sandbox.test_api("DELETE", "requests")
    diff = roomctl(sandbox, "diff", str(manifest), "-o", "json")
    assert diff.returncode == 0, diff.stdout
    report = json.loads(diff.stdout)
    assert report["summary"] == {**report["summary"], "create": 0, "update": 0, "recreate": 0, "delete": 0,
                                 "drift": 0}
    assert {r["status"] for r in report["rooms"]} == {"in-sync"}
    applied = roomctl(sandbox, "apply", str(manifest), "-o", "json")
    assert applied.returncode == 0 and json.loads(applied.stdout)["results"] == []  # adopting changed nothing

    # The room made by a join closes as it always did; adopted, it stays closed (not re-created).
    sandbox.test_api("POST", "leave", {"room": "adopt-joined", "identity": "walk-in"})
    sandbox.test_api("POST", "clock", {"advance": 400})
    after = json.loads(roomctl(sandbox, "diff", str(manifest), "-o", "json").stdout)
    assert {r["name"]: r["status"] for r in after["rooms"]}["adopt-joined"] == "absent"
    assert after["changes_pending"] is False


def test_export_skips_a_room_roomctl_created_from_another_manifest(sandbox: SandboxServer) -> None:
    classroom = Path(__file__).resolve().parents[2] / "examples" / "classroom.yaml"
    assert roomctl(sandbox, "apply", str(classroom)).returncode == 0
    exported = roomctl(sandbox, "export")
    assert exported.returncode == 0
    assert "created by roomctl from another manifest" in exported.stderr
    assert "PlugNmeetRoom" not in exported.stdout
