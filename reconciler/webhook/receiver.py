"""The webhook receiver both fronts share (`roomctl serve` and the operator).

`verify` checks one delivery exactly as livekit/protocol's `webhook.Receive` does (key by `iss`,
HS256 signature, times, then the body hash, compared in constant time). `Receiver` adds what a
real deployment needs on top: a size cap, dedupe by event `id` (the server retries, so events
repeat), and hand-off to an `EventQueue` that coalesces bursts per room and never makes the HTTP
answer wait for reconciliation (a full queue answers 503, so LiveKit retries later).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import jwt

from ..auth import short_keys_allowed
from .metrics import WebhookMetrics
from .wire import body_hash

log = logging.getLogger("roomctl.webhook")

MAX_BODY_BYTES = 2 * 1024 * 1024  # a participant event carries room + participant metadata (512 KiB each)
LEEWAY_SECONDS = 60  # the server's own token leeway (livekit-api.md §2.4)
# Events a reconciler reacts to; every other event is counted and answered 200 (LiveKit must not retry it).
REACTIONS = frozenset({"room_started", "room_finished", "participant_joined", "track_published"})
# A replayed delivery is only accepted while its token is valid (5 min + leeway): remember ids that long.
DEDUPE_SECONDS = 300 + 2 * LEEWAY_SECONDS
REJECTION_LOG_SECONDS = 60.0  # at most one WARNING line per rejection reason this often
# What each rejection reason means to the person reading the log (never token or body content).
REJECTION_TEXT = {
    "missing_authorization": "no Authorization header",
    "bad_token": "the Authorization header is not an HS256 JWT",
    "unknown_key": "signed with an API key this process does not know (check the webhook api_key "
                   "of the LiveKit server against the keys roomctl is given)",
    "bad_signature": "the signature does not verify with its API key's credentials (do roomctl and the "
                     "LiveKit server have the same key pair?)",
    "expired": "the token has expired (a delivery replayed late, or clocks apart by minutes)",
    "not_yet_valid": "the token is not valid yet (clocks apart by minutes)",
    "bad_checksum": "the body does not match the token's sha256 claim",
    "malformed": "a signed body that is not a webhook event",
    "too_large": "the body is over the size limit",
}


class WebhookRejected(Exception):
    """A delivery that is not from the server (401), too large (413) or not an event (400). The
    reason is a metric label and a log word; the HTTP answer carries nothing that helps an attacker."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class WebhookEvent:
    """What a reaction needs from a WebhookEvent (the full body is never kept: rooms carry turnPassword)."""

    id: str
    event: str
    api_key: str  # the key that signed it: which server sent it
    room: str = ""
    room_sid: str = ""
    participant: str = ""  # identity
    participant_kind: str = ""
    track_source: str = ""
    created_at: int = 0


KeyLookup = Callable[[str], str | None]


def _lookup(keys: Mapping[str, str] | KeyLookup) -> KeyLookup:
    if callable(keys):
        return keys
    return keys.get


def _field(data: Mapping[str, Any], camel: str, snake: str) -> Any:
    # Go's protojson accepts either spelling; the server writes lowerCamel.
    return data.get(camel, data.get(snake))


def _object(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def parse_event(body: bytes, api_key: str) -> WebhookEvent:
    try:
        data = json.loads(body)
    except ValueError:
        raise WebhookRejected(400, "malformed") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str) or not isinstance(data.get("id"), str):
        raise WebhookRejected(400, "malformed")
    if not data["id"] or not data["event"]:
        raise WebhookRejected(400, "malformed")
    room, participant, track = (_object(data, key) for key in ("room", "participant", "track"))
    try:
        created = int(_field(data, "createdAt", "created_at") or 0)
    except (TypeError, ValueError):
        raise WebhookRejected(400, "malformed") from None
    return WebhookEvent(
        id=data["id"],
        event=data["event"],
        api_key=api_key,
        room=str(room.get("name") or ""),
        room_sid=str(room.get("sid") or ""),
        participant=str(participant.get("identity") or ""),
        participant_kind=str(participant.get("kind") or "STANDARD"),
        track_source=str(track.get("source") or ""),
        created_at=created,
    )


def verify(body: bytes, authorization: str | None, keys: Mapping[str, str] | KeyLookup, now: float) -> WebhookEvent:
    """One delivery, checked like livekit/protocol `webhook.Receive`, then parsed. Raises WebhookRejected."""
    if not authorization:
        raise WebhookRejected(401, "missing_authorization")
    token = authorization.strip()
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise WebhookRejected(401, "bad_token") from None
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise WebhookRejected(401, "unknown_key")
    secret = _lookup(keys)(issuer)
    if not secret:
        raise WebhookRejected(401, "unknown_key")
    if header.get("alg") != "HS256":
        raise WebhookRejected(401, "bad_token")
    try:
        with short_keys_allowed():
            claims = jwt.decode(token, secret, algorithms=["HS256"],
                                options={"require": ["exp"], "verify_exp": False, "verify_nbf": False})
    except jwt.PyJWTError:
        raise WebhookRejected(401, "bad_signature") from None
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or now > exp + LEEWAY_SECONDS:
        raise WebhookRejected(401, "expired")
    if isinstance(nbf, int | float) and now < nbf - LEEWAY_SECONDS:
        raise WebhookRejected(401, "not_yet_valid")
    claimed = claims.get("sha256")
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed.encode(), body_hash(body).encode()):
        raise WebhookRejected(401, "bad_checksum")
    return parse_event(body, issuer)


# ---- the queue ------------------------------------------------------------------------------------


@dataclass
class RoomWork:
    """Every accepted event for one room since its last run, coalesced."""

    api_key: str
    room: str
    events: Counter[str] = field(default_factory=Counter)
    participants: set[str] = field(default_factory=set)
    received: list[float] = field(default_factory=list)  # monotonic arrival times (enforcement latency)

    def add(self, event: WebhookEvent, received: float) -> None:
        self.events[event.event] += 1
        if event.participant:
            self.participants.add(event.participant)
        if len(self.received) < 10_000:
            self.received.append(received)


Handler = Callable[[RoomWork], Awaitable[None]]


class RunGate:
    """Room runs share the gate; a full reconcile takes it alone. So a sweep and a webhook run
    never act on the same room at once (no duplicate request for the same participant state)."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            async with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._cond:
            self._waiting += 1
            try:
                await self._cond.wait_for(lambda: not self._exclusive and self._shared == 0)
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            async with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class EventQueue:
    """Bounded, coalescing work queue: one pending entry per (server key, room), so a burst of 500
    joins across 50 rooms is at most 50 runs in flight or waiting. A room is never run twice at
    once; events arriving while it runs mark it pending again, so nothing that happened is missed."""

    def __init__(self, handler: Handler, *, capacity: int = 1000, workers: int = 8,
                 gate: RunGate | None = None, metrics: WebhookMetrics | None = None) -> None:
        self.handler = handler
        self.capacity = capacity
        self.workers = workers
        self.gate = gate
        self.metrics = metrics
        self._pending: dict[tuple[str, str], RoomWork] = {}
        self._running: set[tuple[str, str]] = set()
        self._ready: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def depth(self) -> int:
        return len(self._pending)

    def offer(self, event: WebhookEvent, received: float) -> bool:
        """Never waits. False: the queue is full (the caller answers 503)."""
        key = (event.api_key, event.room)
        work = self._pending.get(key)
        if work is None:
            if len(self._pending) >= self.capacity:
                return False
            work = self._pending[key] = RoomWork(event.api_key, event.room)
            if key not in self._running:
                self._ready.put_nowait(key)
        work.add(event, received)
        self._idle.clear()
        self._gauge()
        return True

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._pending))

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(), name=f"roomctl webhook worker {i}")
                           for i in range(self.workers)]

    async def _work(self) -> None:
        while True:
            key = await self._ready.get()
            work = self._pending.pop(key, None)
            if work is None:
                continue
            self._running.add(key)
            self._gauge()
            try:
                if self.gate is not None:
                    async with self.gate.shared():
                        await self.handler(work)
                else:
                    await self.handler(work)
            except Exception:  # one bad run must not stop the worker
                log.exception("webhook reaction for room %r failed", work.room)
            finally:
                self._running.discard(key)
                if key in self._pending:
                    self._ready.put_nowait(key)
                elif not self._pending and not self._running:
                    self._idle.set()

    async def wait_idle(self) -> None:
        """Until nothing is pending or running (graceful shutdown, tests)."""
        await self._idle.wait()

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Let in-flight runs (and, within `drain_seconds`, pending ones) finish, then stop the workers."""
        if drain_seconds > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.wait_idle(), drain_seconds)
        else:
            # Pending work is dropped (the next full reconcile covers it); running work finishes.
            self._pending.clear()
            while self._running:
                await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []


class RejectionLog:
    """Rejected deliveries as WARNING lines an operator can act on, without flooding the log when a
    misconfigured server (or a scanner) keeps sending: the first of each reason at once, then at most
    one line per reason every `every` seconds, with how many were refused since the last line."""

    def __init__(self, every: float = REJECTION_LOG_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._last: dict[str, float] = {}
        self._unreported: Counter[str] = Counter()

    def note(self, status: int, reason: str) -> None:
        now = self.clock()
        self._unreported[reason] += 1
        last = self._last.get(reason)
        if last is not None and now - last < self.every:
            return
        count = self._unreported.pop(reason)
        since = f"; {count} refused for this reason since the last such line" if last is not None else ""
        log.warning("webhook rejected (%d %s): %s%s", status, reason, REJECTION_TEXT.get(reason, reason), since)
        self._last[reason] = now


class Receiver:
    """verify -> dedupe -> offer; returns the HTTP status. Never awaits reconciliation."""

    def __init__(self, keys: Mapping[str, str] | KeyLookup, queue: EventQueue, metrics: WebhookMetrics, *,
                 clock: Callable[[], float] = time.time, max_body: int = MAX_BODY_BYTES,
                 dedupe_size: int = 100_000, rejections: RejectionLog | None = None) -> None:
        self.keys = keys
        self.rejections = rejections or RejectionLog()
        self.queue = queue
        self.metrics = metrics
        self.clock = clock
        self.max_body = max_body
        self.dedupe_size = dedupe_size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def reject(self, status: int, reason: str) -> int:
        self.metrics.rejected.labels(reason).inc()
        self.rejections.note(status, reason)
        return status

    def _seen_before(self, event_id: str, now: float) -> bool:
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        return event_id in self._seen

    def _remember(self, event_id: str, now: float) -> None:
        self._seen[event_id] = now + DEDUPE_SECONDS
        while len(self._seen) > self.dedupe_size:
            self._seen.popitem(last=False)

    def receive(self, body: bytes, authorization: str | None) -> int:
        if len(body) > self.max_body:
            return self.reject(413, "too_large")
        now = self.clock()
        try:
            event = verify(body, authorization, self.keys, now)
        except WebhookRejected as exc:
            return self.reject(exc.status, exc.reason)
        received = time.monotonic()
        if self._seen_before(event.id, now):
            self.metrics.events.labels(event.event, "duplicate").inc()
            return 200
        if event.event not in REACTIONS or not event.room:
            self.metrics.events.labels(event.event, "ignored").inc()
            self._remember(event.id, now)
            return 200
        if not self.queue.offer(event, received):
            # Not remembered: LiveKit's retry of the same id must get in once there is room.
            self.metrics.events.labels(event.event, "queue_full").inc()
            return 503
        self.metrics.events.labels(event.event, "accepted").inc()
        self._remember(event.id, now)
        return 200
