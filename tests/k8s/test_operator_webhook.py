"""The operator's webhook endpoint: the sandbox (a real socket) sends LiveKit webhooks to the real
kopf loop (kmock as the API server); with the sweep at an hour, only webhooks explain a reaction."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.k8s.cluster import ready, running_operator, server_rooms
from tests.support.server import SandboxServer, free_port
from tests.support.tokens import mint

RULES = [{"identity": "*", "permission": {"canPublish": False, "canSubscribe": True}}]


async def test_webhooks_reach_room_objects_and_are_recorded_on_them(tmp_path: Path, sandbox: SandboxServer,
                                                                    monkeypatch: Any,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    sandbox.test_api("PUT", "webhooks", {"url": f"http://127.0.0.1:{port}/webhook"})
    try:
        async with running_operator(tmp_path, sandbox.url, monkeypatch,
                                    webhook_listen=("127.0.0.1", port)) as cluster:
            await cluster.apply("town", {"name": "town-live", "participants": RULES})
            await cluster.wait_for(lambda: ready(cluster.get("town")) == "True", what="Ready=True")
            sweeps = cluster.state.sweeps
            async with httpx.AsyncClient(base_url=sandbox.url) as client:
                token = mint({"sub": "bob", "video": {"roomJoin": True, "room": "town-live", "canPublish": True}})
                assert (await client.post("/sandbox/join", json={"token": token})).status_code == 200

                async def can_publish() -> bool:
                    found = await client.post("/sandbox/participant", json={"room": "town-live", "identity": "bob"})
                    return bool(found.json()["participant"]["permission"]["can_publish"])

                await cluster.wait_for(lambda: "ParticipantUpdated" in
                                       [e["reason"] for e in cluster.events("town")], what="ParticipantUpdated event")
                assert not await can_publish()
                # Deleted out of band: room_finished brings it back, recorded on the object.
                old_sid = (await server_rooms(sandbox.url))["town-live"].sid
                sandbox_delete = await client.post("/twirp/livekit.RoomService/DeleteRoom", json={"room": "town-live"},
                                                   headers={"Authorization": "Bearer " + mint({"video": {"roomCreate": True}})})
                assert sandbox_delete.status_code == 200
                await cluster.wait_for(lambda: [e["reason"] for e in cluster.events("town")].count("RoomCreated") == 2,
                                       what="RoomCreated again")
                assert (await server_rooms(sandbox.url))["town-live"].sid != old_sid
                # A room nobody declared, governed by a RoomPolicy object: the same single-room engine
                # entry as `roomctl serve`, the change recorded as an event on the policy.
                await cluster.apply("help", {"rooms": ["help-*"], "participants": RULES}, kind="RoomPolicy")
                await cluster.wait_for(lambda: ready(cluster.get("help", kind="RoomPolicy")) == "True",
                                       what="policy accepted")
                token = mint({"sub": "cara", "video": {"roomJoin": True, "room": "help-1", "canPublish": True}})
                assert (await client.post("/sandbox/join", json={"token": token})).status_code == 200
                enforced = await cluster.wait_for(
                    lambda: [e for e in cluster.events("help") if e["reason"] == "PolicyEnforced"],
                    what="PolicyEnforced event")
                assert "help-1" in enforced[0]["message"]
                found = await client.post("/sandbox/participant", json={"room": "help-1", "identity": "cara"})
                assert found.json()["participant"]["permission"]["can_publish"] is False
                # A forgery is refused by the same receiver roomctl serve uses (the operator runs in this loop).
                with caplog.at_level(logging.WARNING, logger="roomctl.webhook"):
                    forged = await client.post(f"http://127.0.0.1:{port}/webhook", content=b"{}",
                                               headers={"Authorization": "x"})
                assert forged.status_code == 401
                # ... and logged as `roomctl serve` logs it: one WARNING with the reason, not the token.
                warned = [r.getMessage() for r in caplog.records if r.name == "roomctl.webhook"]
                assert warned == ["webhook rejected (401 bad_token): the Authorization header is not an HS256 JWT"]
            assert cluster.state.sweeps == sweeps  # no sweep ran: the webhooks did it
            from prometheus_client import generate_latest

            from reconciler.operator.metrics import REGISTRY

            exposition = generate_latest(REGISTRY).decode()
            assert 'roomctl_webhook_runs_total{result="acted"}' in exposition
            assert "roomctl_enforcement_latency_seconds_count" in exposition
    finally:
        sandbox.test_api("PUT", "webhooks", {"url": None})
