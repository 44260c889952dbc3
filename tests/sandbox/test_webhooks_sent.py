"""The sandbox sends webhooks like livekit-server: checked by the official SDK's WebhookReceiver
(the independent verifier) and against the shape of the recorded real deliveries."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from livekit import api

from tests.support.capture import Capture, capture_server
from tests.support.server import SandboxServer, run_sandbox
from tests.support.tokens import mint

RECORDED = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "livekit-1.11.0-webhooks.jsonl"


def _events(capture: Capture, count: int) -> list[api.WebhookEvent]:
    receiver = api.WebhookReceiver(api.TokenVerifier("devkey", "secret"))
    out = []
    for delivery in capture.wait_for(count):
        assert delivery.headers["Content-Type"] == "application/webhook+json"
        assert not delivery.headers["Authorization"].startswith("Bearer")
        out.append(receiver.receive(delivery.body.decode(), delivery.headers["Authorization"]))
    return out


def _join(server: SandboxServer, room: str, identity: str, **video: object) -> None:
    token = mint({"sub": identity, "video": {"roomJoin": True, "room": room, **video}})
    assert httpx.post(f"{server.url}/sandbox/join", json={"token": token}).status_code == 200


def test_room_and_participant_events_verify_with_the_official_sdk() -> None:
    with capture_server() as capture, run_sandbox("--webhook-url", capture.url) as server:
        lk = httpx.Client(base_url=server.url)
        create = lk.post("/twirp/livekit.RoomService/CreateRoom", json={"name": "wh", "metadata": "x"},
                         headers={"Authorization": "Bearer " + mint({"video": {"roomCreate": True}})})
        assert create.status_code == 200
        _join(server, "wh", "alice")
        assert lk.post("/sandbox/publish", json={"room": "wh", "identity": "alice", "type": "AUDIO",
                                                 "source": "MICROPHONE"}).status_code == 200
        assert lk.post("/sandbox/leave", json={"room": "wh", "identity": "alice"}).status_code == 200
        delete = lk.post("/twirp/livekit.RoomService/DeleteRoom", json={"room": "wh"},
                         headers={"Authorization": "Bearer " + mint({"video": {"roomCreate": True}})})
        assert delete.status_code == 200
        events = _events(capture, 5)
    by_kind = {e.event: e for e in events}
    assert set(by_kind) == {"room_started", "participant_joined", "track_published", "participant_left",
                            "room_finished"}
    assert by_kind["room_started"].room.name == "wh" and by_kind["room_started"].room.metadata == "x"
    assert by_kind["participant_joined"].participant.identity == "alice"
    assert by_kind["track_published"].track.source == api.TrackSource.MICROPHONE
    assert len({e.id for e in events}) == 5 and all(e.id.startswith("EV_") and e.created_at for e in events)
    # Per resource, in order: the room's own events, and alice's.
    kinds = [e.event for e in events]
    assert kinds.index("room_started") < kinds.index("room_finished")
    assert kinds.index("participant_joined") < kinds.index("track_published") < kinds.index("participant_left")


def test_the_body_has_the_real_servers_shape() -> None:
    real = json.loads(json.loads(RECORDED.read_text().splitlines()[0])["request"]["body"])
    with capture_server() as capture, run_sandbox("--webhook-url", capture.url) as server:
        _join(server, "shape", "bob")  # auto-create: room_started, then participant_joined
        deliveries = capture.wait_for(2)
    # Two resources (the room, the participant), two queues: their order is not fixed.
    started = next(d for d in deliveries if json.loads(d.body)["event"] == "room_started")
    ours = json.loads(started.body)
    assert list(ours) == list(real)  # event, room, id, createdAt: lowerCamel, in field order
    assert set(ours["room"]) >= {"sid", "name", "emptyTimeout", "creationTime", "turnPassword", "enabledCodecs"}
    assert isinstance(ours["createdAt"], str) and isinstance(ours["room"]["creationTime"], str)  # int64 as strings
    assert b'", "' in started.body  # Go's protojson spacing, as recorded


def test_drop_switch_loses_webhooks_and_failures_are_retried(sandbox: SandboxServer) -> None:
    with capture_server() as capture:
        sandbox.test_api("PUT", "webhooks", {"url": capture.url, "drop": True})
        try:
            _join(sandbox, "lost", "carol")
            assert sandbox.test_api("GET", "webhooks")["dropped_by_test"] >= 2
            assert capture.deliveries == []
            sandbox.test_api("PUT", "webhooks", {"drop": False})
            capture.status = 503  # the receiver's queue is full: LiveKit retries
            _join(sandbox, "lost", "dave")
            first = capture.wait_for(1)
            capture.status = 200
            delivered = capture.wait_for(2, timeout=5)
            assert len(first) >= 1 and len(delivered) == 2
            assert delivered[0].body == delivered[1].body  # the same event (same id) again
            assert sandbox.test_api("GET", "webhooks")["retried"] >= 1
        finally:
            sandbox.test_api("PUT", "webhooks", {"url": None, "drop": False})


def test_the_embedded_sandbox_sends_webhooks_when_asked(tmp_path: Path) -> None:
    """`roomctl apply` with no LIVEKIT_URL and ROOMCTL_SANDBOX_WEBHOOK_URL: delivered before it exits."""
    import subprocess
    import sys

    from tests.support.cli import cli_env

    (tmp_path / "room.yaml").write_text("apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {name: emb}\n")
    with capture_server() as capture:
        done = subprocess.run([sys.executable, "-m", "reconciler", "apply", "room.yaml", "-q"], cwd=tmp_path,
                              env=cli_env(None, ROOMCTL_SANDBOX_WEBHOOK_URL=capture.url), capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert len(capture.deliveries) == 1  # already there: the command waited for delivery before exiting
        (event,) = _events(capture, 1)
    assert (event.event, event.room.name) == ("room_started", "emb")
