"""Issue 9 item 9 through the real kopf loop (kmock) and the sandbox: an outage is Ready=False with the
reason and is retried with backoff until it heals; nothing is created or deleted on an observation
that failed; a malformed object is a status, never a crash loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.k8s.cluster import Cluster, ready, running_operator, server_rooms
from tests.plugnmeet.test_plugnmeet_rooms import active
from tests.support.server import SandboxServer

PNM = "PlugNmeetRoom"
WRITES = ("RoomService.CreateRoom", "RoomService.DeleteRoom", "RoomService.UpdateRoomMetadata",
          "plugnmeet.create", "plugnmeet.endRoom")


def ready_condition(cluster: Cluster, name: str, kind: str = "Room") -> dict[str, Any]:
    conditions = ((cluster.get(name, kind=kind) or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def writes(sandbox: SandboxServer, before: dict[str, int]) -> dict[str, int]:
    now = sandbox.counts()
    return {k: now.get(k, 0) - before.get(k, 0) for k in WRITES if now.get(k, 0) != before.get(k, 0)}


def failures(cluster: Cluster, name: str) -> int:
    return sum(1 for e in cluster.events(name) if e["reason"] == "SyncFailed")


async def test_outage_is_ready_false_backs_off_heals_and_never_deletes(tmp_path: Path, sandbox: SandboxServer,
                                                                       monkeypatch: Any) -> None:
    pnm_spec = {"metadata": {"roomTitle": "Physics"}}
    # Two attempts per call: an observation of a dead server fails in well under a second, so the
    # test spends its time on kopf's backoff, not on the backends' own retries.
    async with running_operator(tmp_path, sandbox.url, monkeypatch, retry_first=0.5, server_attempts=2) as cluster:
        await cluster.apply("kept", {"metadata": "v1"})
        await cluster.apply("kept-pnm", pnm_spec, kind=PNM)
        await cluster.wait_for(lambda: ready(cluster.get("kept")) == "True"
                               and ready(cluster.get("kept-pnm", kind=PNM)) == "True", what="both Ready")

        # Both servers stop answering their observations; writes would still be accepted.
        sandbox.test_api("PUT", "faults", {"methods": {"RoomService.ListRooms": {"error_rate": 1.0},
                                                       "plugnmeet.getActiveRoomsInfo": {"error_rate": 1.0}}})
        before = sandbox.counts()
        await cluster.apply("new-room", {})
        await cluster.apply("new-pnm", pnm_spec, kind=PNM)
        await cluster.apply("kept", {"metadata": "v2"})
        for name, kind in (("new-room", "Room"), ("new-pnm", PNM), ("kept", "Room")):
            await cluster.wait_for(lambda n=name, k=kind: ready_condition(cluster, n, k).get("reason")
                                   == "ServerUnavailable", timeout=30, what=f"{name} ServerUnavailable")
            condition = ready_condition(cluster, name, kind)
            message = condition["message"]
            assert condition["status"] == "False" and ("unavailable" in message or "503" in message), condition
        await cluster.sweep()
        assert ready_condition(cluster, "kept-pnm", PNM)["reason"] == "ServerUnavailable"

        # Deleting objects whose servers cannot be read: the finalizer stays, no DeleteRoom, no endRoom.
        await cluster.delete("kept")
        await cluster.delete("kept-pnm", kind=PNM)
        await cluster.wait_for(lambda: any("deleting the room failed" in e["message"] for e in cluster.events("kept"))
                               and any("deleting the room failed" in e["message"]
                                       for e in cluster.events("kept-pnm")), timeout=30, what="deletion refused")
        await asyncio.sleep(1.0)  # kopf retries the deletion meanwhile (backoff 0.5 s, 1 s, ...)
        assert cluster.get("kept") is not None and cluster.get("kept-pnm", kind=PNM) is not None
        assert writes(sandbox, before) == {}, writes(sandbox, before)
        # One SyncFailed per new failure, not one per retry.
        assert failures(cluster, "new-room") == 1 and failures(cluster, "new-pnm") == 1

        # The servers answer again: kopf's own retries (no new event from us) finish everything.
        sandbox.test_api("DELETE", "faults")
        await cluster.wait_for(lambda: ready(cluster.get("new-room")) == "True"
                               and ready(cluster.get("new-pnm", kind=PNM)) == "True", timeout=30, what="healed")
        await cluster.wait_for(lambda: cluster.get("kept") is None and cluster.get("kept-pnm", kind=PNM) is None,
                               timeout=30, what="deletions completed")
        rooms = await server_rooms(sandbox.url)
        assert "new-room" in rooms and "kept" not in rooms
        assert "new-pnm" in active(sandbox) and "kept-pnm" not in active(sandbox)


async def test_malformed_objects_are_a_status_not_a_crash_loop(tmp_path: Path, sandbox: SandboxServer,
                                                               monkeypatch: Any) -> None:
    """kmock has no CRD schema, like a cluster with a stale or missing CRD: the operator must cope."""
    async with running_operator(tmp_path, sandbox.url, monkeypatch, sync_interval=3600.0) as cluster:
        await cluster.apply("not-a-mapping", "garbage")
        await cluster.apply("bad-type", {"emptyTimeout": "soon"})
        await cluster.apply("bad-pnm", {"metadata": {}}, kind=PNM)
        await cluster.apply("bad-pnm-id", {"roomId": "user_1", "metadata": {"roomTitle": "x"}}, kind=PNM)
        await cluster.apply("fine", {"metadata": "ok"})
        expected = {("not-a-mapping", "Room"): "spec", ("bad-type", "Room"): "spec.emptyTimeout",
                    ("bad-pnm", PNM): "spec.metadata.roomTitle", ("bad-pnm-id", PNM): "spec.roomId"}
        for (name, kind), field in expected.items():
            await cluster.wait_for(lambda n=name, k=kind: ready_condition(cluster, n, k).get("reason") == "InvalidSpec",
                                   what=f"{name} InvalidSpec")
            assert ready_condition(cluster, name, kind)["message"].startswith(field), ready_condition(cluster, name,
                                                                                                      kind)
        await cluster.wait_for(lambda: ready(cluster.get("fine")) == "True", what="the good Room is Ready")
        for _ in range(2):
            await cluster.sweep()  # the sweep meets them again: still one event each, no crash
        await asyncio.sleep(1.0)
        assert {name: failures(cluster, name) for name, _ in expected} == {name: 1 for name, _ in expected}
        assert set(await server_rooms(sandbox.url)) == {"fine"} and not active(sandbox)
        assert cluster.state.sweeps == 2 and cluster.state.swept == 5

        # Deleting a malformed object never touches the server (its deletion policy is unknown).
        before = sandbox.counts()
        await cluster.delete("not-a-mapping")
        await cluster.wait_for(lambda: cluster.get("not-a-mapping") is None, what="deleted")
        assert writes(sandbox, before) == {}
        assert cluster.events("not-a-mapping")[-1]["reason"] == "RoomOrphaned"
