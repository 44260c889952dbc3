"""The receiver both fronts share: what it accepts, what it refuses (status, no action), dedupe,
coalescing and the bounded queue. Real deliveries recorded from livekit-server 1.11.0 are the
reference for the wire; the official SDK's WebhookReceiver agrees with every verdict here."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from livekit import api
from prometheus_client import CollectorRegistry

from reconciler.webhook import CONTENT_TYPE, EventQueue, Receiver, RoomWork, body_hash, encode_event, sign, verify
from reconciler.webhook.app import WebhookApp
from reconciler.webhook.metrics import WebhookMetrics
from reconciler.webhook.receiver import REJECTION_TEXT, RejectionLog

RECORDINGS = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "livekit-1.11.0-webhooks.jsonl"
KEYS = {"devkey": "secret"}


def recorded() -> list[dict[str, Any]]:
    return [json.loads(line) for line in RECORDINGS.read_text().splitlines() if line.strip()]


def joined(room: str = "r1", identity: str = "alice", event_id: str = "EV_1", event: str = "participant_joined") -> bytes:
    return encode_event({"event": event, "room": {"sid": "RM_x", "name": room},
                         "participant": {"sid": "PA_x", "identity": identity, "state": "ACTIVE"},
                         "id": event_id, "createdAt": str(int(time.time()))})


class Harness:
    def __init__(self, capacity: int = 100, clock: float | None = None) -> None:
        self.registry = CollectorRegistry()
        self.metrics = WebhookMetrics(self.registry)
        self.handled: list[RoomWork] = []

        async def handle(work: RoomWork) -> None:
            self.handled.append(work)

        self.queue = EventQueue(handle, capacity=capacity, metrics=self.metrics)
        now = (lambda: clock) if clock is not None else time.time
        self.receiver = Receiver(KEYS, self.queue, self.metrics, clock=now, max_body=64 * 1024)
        self.app = WebhookApp(self.receiver, registry=self.registry)

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://t") as client:
                return await client.post("/webhook", content=body, headers=headers)

        return asyncio.run(go())

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def signed(body: bytes, key: str = "devkey", secret: str = "secret", now: float | None = None) -> dict[str, str]:
    return {"Authorization": sign(body, key, secret, time.time() if now is None else now),
            "Content-Type": CONTENT_TYPE}


def sdk_accepts(body: bytes, token: str, key: str = "devkey", secret: str = "secret") -> bool:
    try:
        api.WebhookReceiver(api.TokenVerifier(key, secret)).receive(body.decode(), token)
    except Exception:
        return False
    return True


def test_recorded_real_deliveries_verify_at_their_time_and_not_now() -> None:
    for record in recorded():
        request = record["request"]
        body = request["body"].encode()
        token = request["headers"]["Authorization"]
        created = int(json.loads(body)["createdAt"])
        then = Harness(clock=created)
        response = then.post(body, request["headers"])
        assert response.status_code == 200, record["id"]
        assert then.value("roomctl_webhook_events_total", event=json.loads(body)["event"], result="accepted") == 1
        assert then.queue.depth == 1 and "turnPassword" not in repr(then.queue._pending)
        now = Harness()
        assert now.post(body, request["headers"]).status_code == 401
        assert now.queue.depth == 0 and now.value("roomctl_webhook_rejected_total", reason="expired") == 1
        assert not sdk_accepts(body, token)  # the SDK agrees: expired today


def test_our_signature_is_what_the_sdk_and_the_recordings_expect() -> None:
    body = joined()
    token = sign(body, "devkey", "secret", time.time())
    assert sdk_accepts(body, token)
    claims = jwt.decode(token, "secret", algorithms=["HS256"])
    assert set(claims) == {"exp", "iss", "nbf", "sha256"} and claims["exp"] - claims["nbf"] == 300
    assert claims["sha256"] == body_hash(body)
    real = jwt.decode(recorded()[0]["request"]["headers"]["Authorization"], options={"verify_signature": False})
    assert set(real) == set(claims)


def test_a_valid_event_is_accepted_and_queued_without_running() -> None:
    harness = Harness()
    response = harness.post(joined(), signed(joined()))
    assert response.status_code == 200 and response.text == "ok\n"
    assert harness.queue.depth == 1 and harness.handled == []  # the answer never waited for a run


def _expired(body: bytes) -> dict[str, str]:
    return signed(body, now=time.time() - 400)


def _tampered(body: bytes) -> dict[str, str]:
    return signed(body.replace(b"alice", b"mallory"))


def _no_hash(body: bytes) -> dict[str, str]:
    now = int(time.time())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        token = jwt.encode({"iss": "devkey", "nbf": now, "exp": now + 300}, "secret", algorithm="HS256")
    return {"Authorization": token}


def _none_alg(body: bytes) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"iss": "devkey", "nbf": now, "exp": now + 300, "sha256": body_hash(body)}, None,
                       algorithm="none")
    return {"Authorization": token}


@pytest.mark.parametrize(("case", "headers", "reason"), [
    ("wrong key", lambda b: signed(b, key="otherkey"), "unknown_key"),
    ("wrong secret", lambda b: signed(b, secret="not-the-secret"), "bad_signature"),
    ("expired", _expired, "expired"),
    ("tampered body", _tampered, "bad_checksum"),
    ("missing header", lambda b: {"Content-Type": CONTENT_TYPE}, "missing_authorization"),
    ("garbage token", lambda b: {"Authorization": "not.a.jwt"}, "bad_token"),
    ("no sha256 claim", _no_hash, "bad_checksum"),
    ("alg none", _none_alg, "bad_token"),
])
def test_forged_deliveries_are_401_with_no_detail_and_no_action(case: str, headers: Any, reason: str) -> None:
    harness = Harness()
    body = joined()
    sent = headers(body)
    response = harness.post(body, sent)
    assert response.status_code == 401, case
    assert response.text == "unauthorized\n"  # nothing that tells the sender which check failed
    assert harness.queue.depth == 0
    assert harness.value("roomctl_webhook_rejected_total", reason=reason) == 1, case
    if "Authorization" in sent:
        assert not sdk_accepts(body, sent["Authorization"]), case  # the independent verifier agrees


def test_rejections_are_warnings_with_the_reason_one_line_per_reason_per_minute_and_no_token(
        caplog: pytest.LogCaptureFixture) -> None:
    harness = Harness()
    now = [1000.0]
    harness.receiver.rejections = RejectionLog(clock=lambda: now[0])
    body = joined()
    forged = signed(body, secret="not-the-secret")["Authorization"]
    with caplog.at_level(logging.WARNING, logger="roomctl.webhook"):
        for _ in range(5):
            assert harness.post(body, {"Authorization": forged}).status_code == 401
        assert harness.post(body, signed(body, key="otherkey")).status_code == 401
        now[0] += 30
        assert harness.post(body, {"Authorization": forged}).status_code == 401  # within the minute: counted only
        now[0] += 31
        assert harness.post(body, {"Authorization": forged}).status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "roomctl.webhook"]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "roomctl.webhook")
    assert lines == [
        "webhook rejected (401 bad_signature): " + REJECTION_TEXT["bad_signature"],
        "webhook rejected (401 unknown_key): " + REJECTION_TEXT["unknown_key"],
        "webhook rejected (401 bad_signature): " + REJECTION_TEXT["bad_signature"]
        + "; 6 refused for this reason since the last such line",
    ]
    text = "\n".join(lines)
    assert forged not in text and forged.split(".")[1] not in text and "alice" not in text and "EV_1" not in text
    assert harness.value("roomctl_webhook_rejected_total", reason="bad_signature") == 7


def test_verifying_with_a_short_secret_prints_no_pyjwt_warning() -> None:
    # pyproject's filterwarnings ignores it for the suite; here the process default ("always") is forced.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        body = joined()
        verify(body, signed(body)["Authorization"], KEYS, time.time())  # KEYS' secret is the 6-byte "secret"
    assert [str(w.category.__name__) for w in caught] == []


def test_oversized_body_is_413_before_anything_else() -> None:
    harness = Harness()
    body = joined().replace(b'"ACTIVE"', b'"' + b"x" * (70 * 1024) + b'"')
    assert harness.post(body, signed(body)).status_code == 413
    assert harness.queue.depth == 0 and harness.value("roomctl_webhook_rejected_total", reason="too_large") == 1


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"event": "participant_joined"}', b'{"id": "EV_1"}'])
def test_signed_but_malformed_events_are_400(body: bytes) -> None:
    harness = Harness()
    response = harness.post(body, signed(body))
    assert response.status_code == 400 and response.text == "bad request\n"
    assert harness.queue.depth == 0 and harness.value("roomctl_webhook_rejected_total", reason="malformed") == 1


def test_a_replayed_event_id_is_acted_on_once() -> None:
    harness = Harness()
    body = joined()
    assert harness.post(body, signed(body)).status_code == 200
    asyncio.run(_run_once(harness))
    # The server retries after a lost answer: same id, new token. Answered 200 (so it stops), never queued.
    assert harness.post(body, signed(body)).status_code == 200
    assert harness.queue.depth == 0
    assert harness.value("roomctl_webhook_events_total", event="participant_joined", result="duplicate") == 1


async def _run_once(harness: Harness) -> None:
    harness.queue.start()
    await asyncio.wait_for(harness.queue.wait_idle(), 5)
    await harness.queue.stop()


def test_events_nothing_reacts_to_are_counted_not_queued() -> None:
    harness = Harness()
    for event_id, event in (("EV_a", "participant_left"), ("EV_b", "egress_started")):
        body = joined(event_id=event_id, event=event)
        assert harness.post(body, signed(body)).status_code == 200
        assert harness.value("roomctl_webhook_events_total", event=event, result="ignored") == 1
    assert harness.queue.depth == 0


def test_bursts_coalesce_per_room_and_a_full_queue_answers_503_until_there_is_room() -> None:
    harness = Harness(capacity=2)
    for i in range(10):
        body = joined(room=f"r{i % 2}", identity=f"p{i}", event_id=f"EV_{i}")
        assert harness.post(body, signed(body)).status_code == 200
    assert harness.queue.depth == 2  # ten joins, two rooms, two pending runs
    third = joined(room="r2", identity="late", event_id="EV_late")
    assert harness.post(third, signed(third)).status_code == 503
    assert harness.value("roomctl_webhook_events_total", event="participant_joined", result="queue_full") == 1
    asyncio.run(_run_once(harness))
    assert sorted(len(w.participants) for w in harness.handled) == [5, 5]
    # LiveKit retries the refused event with the same id: it is accepted now (it was never remembered).
    assert harness.post(third, signed(third)).status_code == 200


async def test_a_room_is_never_run_twice_at_once_and_late_events_are_not_lost() -> None:
    running: set[str] = set()
    overlaps = 0
    seen: list[set[str]] = []
    registry = CollectorRegistry()
    release = asyncio.Event()

    async def handle(work: RoomWork) -> None:
        nonlocal overlaps
        overlaps += work.room in running
        running.add(work.room)
        await release.wait()
        seen.append(set(work.participants))
        running.discard(work.room)

    queue = EventQueue(handle, capacity=10, workers=4, metrics=WebhookMetrics(registry))
    receiver = Receiver(KEYS, queue, WebhookMetrics(CollectorRegistry()))
    queue.start()
    first = joined(identity="a", event_id="EV_a")
    assert receiver.receive(first, sign(first, "devkey", "secret", time.time())) == 200
    await asyncio.sleep(0.05)  # the run for r1 is in flight now
    second = joined(identity="b", event_id="EV_b")
    assert receiver.receive(second, sign(second, "devkey", "secret", time.time())) == 200
    await asyncio.sleep(0.05)
    assert len(running) == 1  # b waits for a's run instead of running beside it
    release.set()
    await asyncio.wait_for(queue.wait_idle(), 5)
    await queue.stop()
    assert overlaps == 0 and seen == [{"a"}, {"b"}]


def test_healthz_readyz_and_metrics() -> None:
    harness = Harness()
    ready = False
    harness.app.ready = lambda: ready

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=harness.app), base_url="http://t") as client:
            return [await client.get(p) for p in ("/healthz", "/readyz", "/metrics", "/webhook", "/nope")]

    health, readyz, metrics, get_webhook, missing = asyncio.run(go())
    assert (health.status_code, readyz.status_code, get_webhook.status_code, missing.status_code) == (200, 503, 405, 404)
    assert "roomctl_webhook_events_total" in metrics.text
    ready = True
    assert asyncio.run(go())[1].status_code == 200
