"""PlugNmeetRoom objects through the real kopf loop against kmock, with the sandbox's plugNmeet API
(a real socket, HMAC-signed requests) as the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.k8s.cluster import PNM_KEY, PNM_SECRET, Cluster, ready, running_operator, server_rooms
from tests.plugnmeet.test_plugnmeet_rooms import active, signed
from tests.support.server import SandboxServer

FINALIZER = "roomctl.dev/finalizer"
PNM = "PlugNmeetRoom"


def classroom(welcome: str = "hello", recreate: str = "IfEmpty", features: dict[str, Any] | None = None,
              **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"roomTitle": "Physics", "welcomeMessage": welcome,
                                "defaultLockSettings": {"lockMicrophone": True}}
    if features:
        metadata["roomFeatures"] = features
    return {"emptyTimeout": 1800, "metadata": metadata, "policy": {"recreate": recreate}, **extra}


def status(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict((cluster.get(name, kind=PNM) or {}).get("status") or {})


def condition(cluster: Cluster, name: str, type_: str) -> dict[str, Any]:
    return next((c for c in status(cluster, name).get("conditions", []) if c["type"] == type_), {})


def pnm_calls(sandbox: SandboxServer, since: dict[str, int]) -> dict[str, int]:
    now = sandbox.counts()
    return {k: now[k] - since.get(k, 0) for k in now if k.startswith("plugnmeet.") and now[k] != since.get(k, 0)}


def drift_series(name: str) -> list[str]:
    """This object's series (the registry is the process's: other tests' objects may be in it)."""
    from prometheus_client import generate_latest

    from reconciler.operator.metrics import REGISTRY

    return [line for line in generate_latest(REGISTRY).decode().splitlines()
            if line.startswith("roomctl_drift{") and f'name="{name}",namespace="default"' in line]


async def test_plugnmeet_room_lifecycle_through_kopf(tmp_path: Path, sandbox: SandboxServer, monkeypatch: Any) -> None:
    async with running_operator(tmp_path, sandbox.url, monkeypatch) as cluster:
        # Create: Ready, finalizer, the session id of the room the server really has.
        await cluster.apply("physics", classroom(), kind=PNM)
        obj = await cluster.wait_for(lambda: ready(cluster.get("physics", kind=PNM)) == "True"
                                     and cluster.get("physics", kind=PNM), what="Ready=True")
        assert FINALIZER in obj["metadata"]["finalizers"]
        served = active(sandbox)["physics"]
        assert obj["status"]["roomSid"] == served["sid"] and obj["status"]["roomName"] == "physics"
        assert json.loads(served["metadata"])["welcome_message"] == "hello"
        assert [e["reason"] for e in cluster.events("physics")] == ["RoomCreated"]
        assert condition(cluster, "physics", "Synced")["reason"] == "InSync"
        assert drift_series("physics") == [
            'roomctl_drift{kind="PlugNmeetRoom",name="physics",namespace="default"} 0.0']

        # A changed spec re-creates the room under policy.recreate IfEmpty (endRoom + create).
        await cluster.apply("physics", classroom(welcome="bonjour"), kind=PNM)
        await cluster.wait_for(lambda: status(cluster, "physics").get("observedGeneration") == 2
                               and status(cluster, "physics")["roomSid"] != served["sid"], what="re-created")
        assert json.loads(active(sandbox)["physics"]["metadata"])["welcome_message"] == "bonjour"
        assert [e["reason"] for e in cluster.events("physics")] == ["RoomCreated", "RoomRecreated"]

        # allowWebcams: false is refused by plugNmeet v2.3+ (the sandbox emulates it): one re-create,
        # then server_refused drift, and the sweeps that follow never end the room again.
        before = sandbox.counts()
        await cluster.apply("physics", classroom(welcome="bonjour", features={"allowWebcams": False}), kind=PNM)
        await cluster.wait_for(lambda: status(cluster, "physics").get("observedGeneration") == 3,
                               what="generation 3 handled")
        sid = status(cluster, "physics")["roomSid"]
        for _ in range(3):
            await cluster.sweep()
        assert status(cluster, "physics")["roomSid"] == sid == active(sandbox)["physics"]["sid"]
        calls = pnm_calls(sandbox, before)
        assert calls.get("plugnmeet.create") == 1 and calls.get("plugnmeet.endRoom") == 1, calls
        drift = status(cluster, "physics")["drift"]
        assert [(d["field"], d["reason"]) for d in drift] == [("metadata.roomFeatures.allowWebcams",
                                                               "server_refused")]
        assert condition(cluster, "physics", "Synced")["reason"] == "Drift"
        assert condition(cluster, "physics", "Ready")["status"] == "True"
        reasons = [e["reason"] for e in cluster.events("physics")]
        assert reasons.count("DriftDetected") == 1 and reasons.count("RoomRecreated") == 2, reasons
        assert drift_series("physics") == [
            'roomctl_drift{kind="PlugNmeetRoom",name="physics",namespace="default"} 1.0']

        # Delete (policy.deletion Delete): the room is ended, the finalizer released, the series dropped.
        await cluster.delete("physics", kind=PNM)
        await cluster.wait_for(lambda: cluster.get("physics", kind=PNM) is None, what="finalizer removed")
        assert "physics" not in active(sandbox)
        assert cluster.events("physics")[-1]["reason"] == "RoomDeleted"
        assert drift_series("physics") == []


async def test_orphan_policy_and_server_ref_secret(tmp_path: Path, sandbox: SandboxServer, monkeypatch: Any) -> None:
    # The same sandbox under another host name is another server to the operator (its own backend).
    other = sandbox.url.replace("127.0.0.1", "localhost")
    async with running_operator(tmp_path, sandbox.url, monkeypatch) as cluster:
        cluster.add_secret("pnm-eu", {"url": other, "apiKey": PNM_KEY, "apiSecret": PNM_SECRET})
        cluster.add_secret("pnm-wrong", {"url": other, "apiKey": PNM_KEY, "apiSecret": "not-the-secret"})
        spec = classroom(serverRef={"secretName": "pnm-eu"})
        spec["policy"]["deletion"] = "Orphan"
        await cluster.apply("kept", spec, kind=PNM)
        await cluster.apply("missing", classroom(serverRef={"secretName": "nope"}), kind=PNM)
        await cluster.apply("refused", classroom(serverRef={"secretName": "pnm-wrong"}), kind=PNM)
        await cluster.wait_for(lambda: ready(cluster.get("kept", kind=PNM)) == "True", what="kept Ready")
        assert "kept" in active(sandbox)
        for name, reason, text in (("missing", "CredentialsUnavailable", "default/nope: it does not exist"),
                                   ("refused", "AuthFailed", "PLUGNMEET_API_SECRET")):
            await cluster.wait_for(lambda n=name: condition(cluster, n, "Ready").get("status") == "False",
                                   what=f"{name} Ready=False")
            found = condition(cluster, name, "Ready")
            assert found["reason"] == reason and text in found["message"], found
            assert "not-the-secret" not in json.dumps(cluster.get(name, kind=PNM))
            assert name not in active(sandbox)

        await cluster.delete("kept", kind=PNM)
        await cluster.wait_for(lambda: cluster.get("kept", kind=PNM) is None, what="finalizer removed")
        assert "kept" in active(sandbox)  # Orphan: the room stays on the server
        assert cluster.events("kept")[-1]["reason"] == "RoomOrphaned"


async def test_sweep_costs_one_get_active_rooms_info_per_server(tmp_path: Path, sandbox: SandboxServer,
                                                               monkeypatch: Any) -> None:
    """Six PlugNmeetRooms on the default server, three on a second one (serverRef), and two Rooms
    on LiveKit: each sweep is one getActiveRoomsInfo per plugNmeet server and one ListRooms."""
    other = sandbox.url.replace("127.0.0.1", "localhost")
    async with running_operator(tmp_path, sandbox.url, monkeypatch) as cluster:
        cluster.add_secret("pnm-2", {"url": other, "apiKey": PNM_KEY, "apiSecret": PNM_SECRET})
        names = [f"class-{i}" for i in range(9)]
        for i, name in enumerate(names):
            ref = {"serverRef": {"secretName": "pnm-2"}} if i >= 6 else {}
            await cluster.apply(name, classroom(**ref), kind=PNM)
        for name in ("lk-a", "lk-b"):
            await cluster.apply(name, {"metadata": name})
        await cluster.wait_for(lambda: all(ready(cluster.get(n, kind=PNM)) == "True" for n in names)
                               and all(ready(cluster.get(n)) == "True" for n in ("lk-a", "lk-b")),
                               timeout=30, what="all Ready")
        before = sandbox.counts()
        for _ in range(3):
            await cluster.sweep()
        after = sandbox.counts()
        delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        assert delta == {"plugnmeet.getActiveRoomsInfo": 6, "RoomService.ListRooms": 3}, delta
        assert cluster.state.swept == 11

        # A room ended out of band (a Persistent room) is created again by the next sweep.
        old = status(cluster, "class-3")["roomSid"]
        assert signed(sandbox, "endRoom", {"room_id": "class-3"})["status"]
        await cluster.sweep()
        assert status(cluster, "class-3")["roomSid"] not in ("", old)
        assert active(sandbox)["class-3"]["sid"] == status(cluster, "class-3")["roomSid"]
        assert [e["reason"] for e in cluster.events("class-3")] == ["RoomCreated", "RoomCreated"]
        assert set(await server_rooms(sandbox.url)) >= {"lk-a", "lk-b"}
