"""RoomPolicy end to end: the real CLI against `roomctl sandbox serve`, rooms created by joins (never
declared), request counts per room from the sandbox, and the official `livekit-api` SDK as the
independent reader of the result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jwt
from livekit import api

from tests.support.cli import roomctl
from tests.support.sdk import sdk
from tests.support.server import SandboxServer
from tests.support.tokens import mint

POLICY = """\
apiVersion: roomctl.dev/v1alpha1
kind: RoomPolicy
metadata: {name: support-calls}
spec:
  rooms: ["support-*"]
  exclude: ["support-vip-*"]
  priority: 100
  participants:
    - identity: "staff-*"
      permission: {canPublish: true, canPublishData: true}
      attributes: {role: staff}
    - identity: "banned-*"
      remove: true
    - identity: "*"
      permission: {canPublishData: false}
"""

ROOMS = 50


def join(client: httpx.Client, room: str, identity: str, attributes: dict[str, str] | None = None,
         **grant: Any) -> None:
    token = mint({"sub": identity, "attributes": attributes or {}, "video": {"roomJoin": True, "room": room, **grant}})
    response = client.post("/sandbox/join", json={"token": token})
    assert response.status_code == 200, response.text


def populate(sandbox: SandboxServer) -> dict[str, int]:
    """50 support rooms made by joins: every other staff member lacks the role attribute, every 5th
    customer may publish data, every 10th room has a banned participant; plus two rooms the policy must
    never touch (excluded, outside the globs). Returns the out-of-policy participant count per room."""
    out: dict[str, int] = {}
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        for i in range(ROOMS):
            room = f"support-{i:03d}"
            join(client, room, f"staff-{i}", None if i % 2 == 0 else {"role": "staff"},
                 canPublish=True, canPublishData=True)
            join(client, room, f"customer-{i}", canPublish=True, canPublishData=i % 5 == 0)
            if i % 10 == 3:
                join(client, room, f"banned-{i}")
            out[room] = (i % 2 == 0) + (i % 5 == 0) + (i % 10 == 3)
        for room in ("support-vip-1", "sales-1"):
            join(client, room, "customer-x", canPublish=True, canPublishData=True)
            join(client, room, "banned-x")
    return out


def test_policy_fixes_exactly_the_out_of_policy_participants(sandbox: SandboxServer, tmp_path: Path) -> None:
    wrong = populate(sandbox)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    httpx.delete(f"{sandbox.url}/sandbox/requests")

    diff = roomctl(sandbox, "diff", str(policy), "-o", "json")
    assert diff.returncode == 2, diff.stderr
    planned = json.loads(diff.stdout)
    actions = [a for r in planned["rooms"] for a in r["actions"]]
    assert len(actions) == sum(wrong.values())
    assert planned["summary"]["policy_participant_changes"] == sum(wrong.values())
    assert {a["source"] for a in actions} == {"RoomPolicy support-calls, rule 1", "RoomPolicy support-calls, rule 2",
                                              "RoomPolicy support-calls, rule 3"}
    # One ListRooms (every room), then ListParticipants only for the 50 matched rooms.
    assert sandbox.counts() == {"RoomService.ListRooms": 1, "RoomService.ListParticipants": ROOMS}

    text = roomctl(sandbox, "diff", str(policy))
    assert ("(not declared; RoomPolicy support-calls; a Room manifest not passed in this run is not known)"
            in text.stdout)
    assert "(RoomPolicy support-calls, rule 3)" in text.stdout
    assert f"{sum(wrong.values())} participant change(s) from RoomPolicy rules" in text.stdout

    httpx.delete(f"{sandbox.url}/sandbox/requests")
    applied = roomctl(sandbox, "apply", str(policy))
    assert applied.returncode == 0, applied.stderr + applied.stdout
    by_room = sandbox.counts_by_room()
    assert set(by_room) == set(wrong), "no request named a room the policy does not match"
    for room, count in wrong.items():
        changes = by_room[room].get("RoomService.UpdateParticipant", 0) + by_room[room].get(
            "RoomService.RemoveParticipant", 0)
        assert changes == count, room
        assert by_room[room]["RoomService.ListParticipants"] == 1

    again = roomctl(sandbox, "diff", str(policy))
    assert again.returncode == 0, again.stdout
    assert "No changes." in again.stdout

    async def read(lk: api.LiveKitAPI) -> dict[str, list[Any]]:
        rooms = ["support-000", "support-013", "support-vip-1", "sales-1"]
        return {r: list((await lk.room.list_participants(api.ListParticipantsRequest(room=r))).participants)
                for r in rooms}

    seen = sdk(sandbox, read)
    assert {p.identity: p.permission.can_publish_data for p in seen["support-000"]} == {
        "staff-0": True, "customer-0": False}
    assert dict(next(p for p in seen["support-000"] if p.identity == "staff-0").attributes) == {"role": "staff"}
    assert "banned-13" not in {p.identity for p in seen["support-013"]}
    for untouched in ("support-vip-1", "sales-1"):
        assert {p.identity for p in seen[untouched]} == {"customer-x", "banned-x"}
        assert all(p.permission.can_publish_data for p in seen[untouched])




EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support-fleet.yaml"


def test_token_for_an_undeclared_room_carries_the_policy_from_the_first_moment(sandbox: SandboxServer) -> None:
    result = roomctl(sandbox, "token", "support-123", "customer-9", "-f", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["video"]["canPublishData"] is False and claims["video"]["canUpdateOwnMetadata"] is False
    assert claims["attributes"] == {"role": "customer"}
    assert [a["agent_name"] for a in claims["roomConfig"]["agents"]] == ["note-taker"]
    assert httpx.post(f"{sandbox.url}/sandbox/join", json={"token": token}).status_code == 200
    # The join created the room with the policy's agent and metadata, the participant in policy:
    # nothing left to do.
    diff = roomctl(sandbox, "diff", str(EXAMPLE))
    assert diff.returncode == 0, diff.stdout

    staff = roomctl(sandbox, "token", "support-123", "staff-1", "-f", str(EXAMPLE))
    assert jwt.decode(staff.stdout.strip(), options={"verify_signature": False})["attributes"] == {"role": "staff"}
    banned = roomctl(sandbox, "token", "support-123", "banned-1", "-f", str(EXAMPLE))
    assert banned.returncode == 1 and "(RoomPolicy support-calls, rule 2)" in banned.stderr
    refused = roomctl(sandbox, "token", "support-vip-1", "customer-9", "-f", str(EXAMPLE))
    assert refused.returncode == 1 and "no RoomPolicy there matches it" in refused.stderr


def test_a_folder_mixing_room_plugnmeet_room_and_room_policy(sandbox: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "rooms.yaml").write_text("""\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: support-hall}
spec:
  participants:
    - identity: "host-*"
      permission: {canPublishData: true}
---
apiVersion: roomctl.dev/v1alpha1
kind: PlugNmeetRoom
metadata: {name: physics}
spec:
  metadata: {roomTitle: Physics}
""")
    env = {"PLUGNMEET_URL": sandbox.url, "PLUGNMEET_API_KEY": "plugnmeet", "PLUGNMEET_API_SECRET": "secret"}
    applied = roomctl(sandbox, "apply", str(tmp_path), **env)
    assert applied.returncode == 0, applied.stderr + applied.stdout
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        join(client, "support-hall", "host-1", canPublishData=False)  # the Room's own rule
        join(client, "support-hall", "guest-1", canPublishData=True)  # the policy's rule 3
        join(client, "support-9", "guest-2", canPublishData=True)  # undeclared: the policy
    plan = json.loads(roomctl(sandbox, "diff", str(tmp_path), "-o", "json", **env).stdout)
    assert sorted((a["room"], a["target"], a["source"]) for r in plan["rooms"] for a in r["actions"]) == [
        ("support-9", "guest-2", "RoomPolicy support-calls, rule 3"),
        ("support-hall", "guest-1", "RoomPolicy support-calls, rule 3"),
        ("support-hall", "host-1", "Room support-hall, rule 1")]
    assert plan["summary"]["policy_participant_changes"] == 2
    assert {r["name"]: r["policies"] for r in plan["rooms"]}["support-hall"] == ["support-calls"]
    assert roomctl(sandbox, "apply", str(tmp_path), **env).returncode == 0
    assert roomctl(sandbox, "diff", str(tmp_path), **env).returncode == 0
