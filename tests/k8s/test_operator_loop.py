"""The real kopf loop against kmock, with the sandbox (a real socket) as LiveKit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.k8s.cluster import ready, running_operator, server_rooms
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
        assert any(e["reason"] == "RoomCreated" for e in cluster.events("town-hall"))

        await cluster.apply("town-hall", {"emptyTimeout": 600, "metadata": "v2"})
        await cluster.wait_for(lambda: (cluster.get("town-hall") or {}).get("status", {}).get("observedGeneration") == 2,
                               what="observedGeneration 2")
        assert (await server_rooms(sandbox.url))["town-hall"].metadata == "v2"

        await cluster.delete("town-hall")
        await cluster.wait_for(lambda: cluster.get("town-hall") is None, what="finalizer removed")
        assert "town-hall" not in await server_rooms(sandbox.url)
