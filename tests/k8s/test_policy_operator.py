"""RoomPolicy through the real kopf loop (kmock) and the batched sweep, with the sandbox (a real
socket) as LiveKit and the official SDK reading the result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from livekit import api

from tests.k8s.cluster import ready, running_operator
from tests.support.server import SandboxServer
from tests.support.tokens import mint

POLICY = {
    "rooms": ["support-*"],
    "exclude": ["support-vip-*"],
    "participants": [
        {"identity": "staff-*", "permission": {"canPublishData": True}},
        {"identity": "banned-*", "remove": True},
        {"identity": "*", "permission": {"canPublishData": False}},
    ],
    "agents": [{"agentName": "note-taker"}],
}


def join(sandbox: SandboxServer, room: str, identity: str, **grant: Any) -> None:
    token = mint({"sub": identity, "video": {"roomJoin": True, "room": room, **grant}})
    assert httpx.post(f"{sandbox.url}/sandbox/join", json={"token": token}).status_code == 200


def synced(obj: dict[str, Any] | None) -> dict[str, Any]:
    return next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == "Synced"), {})


async def participants(url: str, room: str) -> dict[str, Any]:
    client = api.LiveKitAPI(url, "devkey", "secret", failover=False)
    try:
        listed = await client.room.list_participants(api.ListParticipantsRequest(room=room))
        return {p.identity: p for p in listed.participants}
    finally:
        await client.aclose()


async def test_room_policy_is_enforced_by_the_sweep(tmp_path: Path, sandbox: SandboxServer, monkeypatch: Any) -> None:
    async with running_operator(tmp_path, sandbox.url, monkeypatch) as cluster:
        # A declared Room among the matched ones: its own rule first, the policy for the rest.
        await cluster.apply("support-desk", {"participants": [{"identity": "lead-*",
                                                               "permission": {"canPublishData": True}}]})
        await cluster.wait_for(lambda: ready(cluster.get("support-desk")) == "True", what="Room Ready")
        await cluster.apply("support-calls", POLICY, kind="RoomPolicy")
        await cluster.apply("broken", {"rooms": ["support-*"], "exclude": ["*"]}, kind="RoomPolicy")
        accepted = await cluster.wait_for(
            lambda: ready(cluster.get("support-calls", kind="RoomPolicy")) == "True"
            and cluster.get("support-calls", kind="RoomPolicy"), what="policy accepted")
        assert accepted["status"]["conditions"][0]["reason"] == "Accepted"
        assert "finalizers" not in accepted["metadata"] or not accepted["metadata"]["finalizers"]
        broken = await cluster.wait_for(lambda: ready(cluster.get("broken", kind="RoomPolicy")) == "False"
                                        and cluster.get("broken", kind="RoomPolicy"), what="broken refused")
        assert broken["status"]["conditions"][0]["reason"] == "InvalidSpec"
        assert "exclude covers every name" in broken["status"]["conditions"][0]["message"]

        # Rooms the app made by joins, none declared except support-desk.
        join(sandbox, "support-1", "customer-1", canPublishData=True)
        join(sandbox, "support-1", "banned-1")
        join(sandbox, "support-desk", "lead-1", canPublishData=False)
        join(sandbox, "support-desk", "customer-2", canPublishData=True)
        join(sandbox, "support-vip-1", "customer-3", canPublishData=True)
        join(sandbox, "sales-1", "customer-4", canPublishData=True)
        await cluster.wait_for(lambda: cluster.state.policy_index is not None
                               and len(cluster.state.policy_objects()) == 2, what="policies indexed")

        sandbox.test_api("DELETE", "requests")
        await cluster.sweep()
        counts = sandbox.counts()
        assert counts["RoomService.ListRooms"] == 1, counts  # one for the Room and the policy together
        touched = set(sandbox.counts_by_room())
        assert touched == {"support-1", "support-desk"}, touched  # never the excluded or unmatched rooms

        policy = await cluster.wait_for(
            lambda: (cluster.get("support-calls", kind="RoomPolicy") or {}).get("status", {}).get("lastEnforcedTime")
            and cluster.get("support-calls", kind="RoomPolicy"), what="policy status")
        status = policy["status"]
        # support-1: customer-1 data off, banned-1 removed, note-taker dispatched;
        # support-desk: customer-2 data off, note-taker dispatched (lead-1 is the Room's own rule).
        assert (status["matchedRooms"], status["changesLastSweep"], status["failuresLastSweep"]) == (2, 5, 0)
        assert ready(policy) == "True" and synced(policy)["status"] == "True"
        assert [e["reason"] for e in cluster.events("support-calls")] == ["PolicyEnforced"]
        room = cluster.get("support-desk")
        assert room is not None and synced(room)["status"] == "True"

        one = await participants(sandbox.url, "support-1")
        assert set(one) == {"customer-1"} and not one["customer-1"].permission.can_publish_data
        desk = await participants(sandbox.url, "support-desk")
        assert desk["lead-1"].permission.can_publish_data and not desk["customer-2"].permission.can_publish_data
        for untouched in ("support-vip-1", "sales-1"):
            assert all(p.permission.can_publish_data for p in (await participants(sandbox.url, untouched)).values())

        # The next sweep finds nothing to do, and says so.
        await cluster.sweep()
        again = await cluster.wait_for(
            lambda: (cluster.get("support-calls", kind="RoomPolicy") or {}).get("status", {}).get(
                "changesLastSweep") == 0 and cluster.get("support-calls", kind="RoomPolicy"), what="quiet sweep")
        assert again["status"]["matchedRooms"] == 2
        assert [e["reason"] for e in cluster.events("support-calls")] == ["PolicyEnforced"]
        assert len([e for e in cluster.events("broken") if e["type"] == "Warning"]) == 1  # not one per sweep

        # A Room created now is reconciled by its handler with the policies of its server: the
        # policy's agent goes into its CreateRoom (no second pass, no sweep needed).
        await cluster.apply("support-late", {"emptyTimeout": 600})
        await cluster.wait_for(lambda: ready(cluster.get("support-late")) == "True", what="late Room Ready")
        client = api.LiveKitAPI(sandbox.url, "devkey", "secret", failover=False)
        try:
            dispatches = await client.agent_dispatch.list_dispatch("support-late")
        finally:
            await client.aclose()
        assert [d.agent_name for d in dispatches] == ["note-taker"]
