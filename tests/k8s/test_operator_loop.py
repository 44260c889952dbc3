"""The real kopf loop against kmock, with the sandbox (a real socket) as LiveKit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.k8s.cluster import handled_rooms, ready, running_operator, server_rooms
from tests.support.server import SandboxServer

FINALIZER = "roomctl.dev/finalizer"


async def test_room_lifecycle_through_kopf(tmp_path: Path, sandbox: SandboxServer, monkeypatch: Any) -> None:
    async with running_operator(tmp_path, sandbox.url, monkeypatch) as cluster:
        await cluster.apply("town-hall", {"emptyTimeout": 600, "metadata": "v1"})
        obj = await cluster.wait_for(lambda: ready(cluster.get("town-hall")) == "True" and cluster.get("town-hall"),
                                     what="Ready=True")
        assert FINALIZER in obj["metadata"]["finalizers"]
        status = obj["status"]
        assert status["observedGeneration"] == 1 and status["roomSid"].startswith("RM_")
        rooms = await server_rooms(sandbox.url)
        assert rooms["town-hall"].metadata == "v1" and rooms["town-hall"].sid == status["roomSid"]
        annotations = obj["metadata"].get("annotations", {})
        assert any(k.startswith("roomctl.dev/") for k in annotations), annotations
        assert "kopf" not in status  # progress lives in roomctl.dev annotations, not in our status
        assert [e["reason"] for e in cluster.events("town-hall")] == ["RoomCreated"]

        await cluster.apply("town-hall", {"emptyTimeout": 600, "metadata": "v2"})
        await cluster.wait_for(lambda: (cluster.get("town-hall") or {}).get("status", {}).get("observedGeneration") == 2,
                               what="observedGeneration 2")
        assert (await server_rooms(sandbox.url))["town-hall"].metadata == "v2"

        from prometheus_client import generate_latest

        from reconciler.operator.metrics import REGISTRY

        exposition = generate_latest(REGISTRY).decode()
        assert 'roomctl_reconciles_total{result="ok",trigger="create"}' in exposition
        assert 'roomctl_livekit_call_seconds_count{method="CreateRoom",outcome="ok"}' in exposition

        await cluster.delete("town-hall")
        await cluster.wait_for(lambda: cluster.get("town-hall") is None, what="finalizer removed")
        assert "town-hall" not in await server_rooms(sandbox.url)


async def test_sweep_costs_one_list_rooms_for_a_thousand_rooms(tmp_path: Path, sandbox: SandboxServer,
                                                               monkeypatch: Any) -> None:
    """1,000 Rooms handled before an operator restart: the restart and every sweep cost one ListRooms.
    (The objects are preloaded: kmock is far too slow to take 1,000 objects through creation.)"""
    count = 1000
    names = [f"room-{i:04d}" for i in range(count)]
    bodies = await handled_rooms(sandbox.url, names)
    start = sandbox.counts()
    async with running_operator(tmp_path, sandbox.url, monkeypatch, sync_interval=1.0, preload=bodies) as cluster:
        await cluster.wait_for(lambda: cluster.state.swept == count, timeout=60, what="all rooms indexed")
        # The restart itself: no resume handler called LiveKit (the sweep covers handled objects).
        calls_at_start = sum(sandbox.counts().values()) - sum(start.values())
        assert calls_at_start <= cluster.state.sweeps + 1, calls_at_start
        before, sweeps_before = sandbox.counts(), cluster.state.sweeps
        await cluster.wait_for(lambda: cluster.state.sweeps >= sweeps_before + 3, timeout=60, what="three sweeps")
        after, sweeps = sandbox.counts(), cluster.state.sweeps - sweeps_before
        list_rooms = after.get("RoomService.ListRooms", 0) - before.get("RoomService.ListRooms", 0)
        # One per sweep for all 1,000 (a sweep may be in flight while the counts are read).
        assert sweeps - 1 <= list_rooms <= sweeps + 1, (sweeps, list_rooms)
        others = {k: after.get(k, 0) - before.get(k, 0) for k in after if k != "RoomService.ListRooms"}
        assert not any(others.values()), others  # all in sync: no per-room call at all
        assert len(cluster.state.outcomes) == count
        assert all(not outcome.events for _, outcome in cluster.state.outcomes)

        # A Persistent room deleted out of band comes back with the next sweep.
        from livekit import api

        old_sid = bodies[7]["status"]["roomSid"]
        client = api.LiveKitAPI(sandbox.url, "devkey", "secret", failover=False)
        try:
            await client.room.delete_room(api.DeleteRoomRequest(room="room-0007"))
        finally:
            await client.aclose()
        await cluster.wait_for(lambda: cluster.get("room-0007")["status"]["roomSid"] not in ("", old_sid),
                               timeout=20, what="re-created by the sweep")
        assert "room-0007" in await server_rooms(sandbox.url)
        assert [e["reason"] for e in cluster.events("room-0007")] == ["RoomCreated"]


async def test_bad_secret_gives_ready_false_with_a_reason_and_no_crash_loop(tmp_path: Path, sandbox: SandboxServer,
                                                                             monkeypatch: Any) -> None:
    async with running_operator(tmp_path, sandbox.url, monkeypatch) as cluster:
        cluster.add_secret("lk-partial", {"url": sandbox.url, "apiKey": "devkey"})  # apiSecret missing
        await cluster.apply("missing", {"serverRef": {"secretName": "lk-nope"}})
        await cluster.apply("partial", {"serverRef": {"secretName": "lk-partial"}})
        for name, reason, text in (("missing", "CredentialsUnavailable", "does not exist"),
                                   ("partial", "CredentialsUnavailable", "lacks key(s) apiSecret")):
            obj = await cluster.wait_for(lambda n=name: ready(cluster.get(n)) == "False" and cluster.get(n),
                                         what=f"{name} Ready=False")
            condition = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
            assert condition["reason"] == reason and text in condition["message"]
            assert "secret" not in json.dumps(obj["status"]).lower().replace("secret ", "").replace("apisecret", "")
        failures = [e for e in cluster.events("missing") if e["reason"] == "SyncFailed"]
        await asyncio.sleep(2)
        # A permanent error: kopf does not retry in a loop (the sweep re-checks every interval instead).
        assert len([e for e in cluster.events("missing") if e["reason"] == "SyncFailed"]) == len(failures) == 1
        assert not await server_rooms(sandbox.url)

        # Fixing the Secret heals the Room on the next reconcile.
        cluster.add_secret("lk-partial", {"url": sandbox.url, "apiKey": "devkey", "apiSecret": "secret"})
        cluster.state.connected_reconciler().pool.secret_ttl = 0  # type: ignore[union-attr]
        await cluster.apply("partial", {"serverRef": {"secretName": "lk-partial"}, "metadata": "fixed"})
        await cluster.wait_for(lambda: ready(cluster.get("partial")) == "True", what="partial Ready=True")
        assert (await server_rooms(sandbox.url))["partial"].metadata == "fixed"


async def test_watched_namespaces_and_liveness(tmp_path: Path, sandbox: SandboxServer, monkeypatch: Any) -> None:
    import httpx

    from tests.support.server import free_port

    port = free_port()
    async with running_operator(tmp_path, sandbox.url, monkeypatch, sync_interval=1.0, namespaces=("events",),
                                liveness=f"http://127.0.0.1:{port}/healthz") as cluster:
        await cluster.apply("watched", {}, namespace="events")
        await cluster.apply("elsewhere", {}, namespace="support")
        await cluster.wait_for(lambda: ready(cluster.get("watched", "events")) == "True", what="watched Ready")
        await cluster.wait_for(lambda: cluster.state.sweeps >= 1, what="a sweep")
        assert "status" not in cluster.get("elsewhere", "support")  # type: ignore[operator]
        assert set(await server_rooms(sandbox.url)) == {"watched"}
        async with httpx.AsyncClient() as client:
            health = await client.get(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 200 and health.json()["lastSweep"]
