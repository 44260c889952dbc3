"""The adaptive limiter against in-process servers with known behaviour: it grows while latency
holds, shrinks when the server queues, pauses on Retry-After, and paces under a rate limit without
a failed call. Counts and limits are asserted, never wall-clock timings."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import httpx
import pytest

from reconciler.auth import TokenSource
from reconciler.backends.limiter import AdaptiveLimiter
from reconciler.backends.transport import HttpClient
from reconciler.backends.twirp import RetryPolicy, TwirpClient


class FakeServer(httpx.AsyncBaseTransport):
    """Answers after `latency` s; `capacity` requests are served at once, the rest queue (as a
    saturated server does); a sliding-window rate limit answers 429 + Retry-After."""

    def __init__(self, latency: float = 0.01, capacity: int = 10_000, per_window: int = 0,
                 window: float = 1.0, unavailable_first: int = 0, retry_after: str = "") -> None:
        self.latency = latency
        self.capacity = asyncio.Semaphore(capacity)
        self.per_window = per_window
        self.window = window
        self.accepted: deque[float] = deque()
        self.unavailable_first = unavailable_first
        self.retry_after = retry_after
        self.in_flight = 0
        self.peak = 0
        self.refused = 0
        self.starts: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        now = time.monotonic()
        self.starts.append(now)
        if self.unavailable_first:
            self.unavailable_first -= 1
            self.refused += 1
            return httpx.Response(503, json={"code": "unavailable", "msg": "busy"},
                                  headers={"retry-after": self.retry_after} if self.retry_after else {})
        if self.per_window:
            while self.accepted and now - self.accepted[0] >= self.window:
                self.accepted.popleft()
            if len(self.accepted) >= self.per_window:
                self.refused += 1
                wait = self.window - (now - self.accepted[0])
                return httpx.Response(429, json={"code": "resource_exhausted", "msg": "rate limit exceeded"},
                                      headers={"retry-after": f"{wait:.3f}"})
            self.accepted.append(now)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            async with self.capacity:
                await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        return httpx.Response(200, json={})


async def drive(server: FakeServer, limiter: AdaptiveLimiter, requests: int, callers: int) -> None:
    client = HttpClient(server, read=10.0, pool=10.0, limiter=limiter)
    todo = iter(range(requests))

    async def caller() -> None:
        for _ in todo:
            assert (await client.post("http://server/", content=b"{}", headers={})).status_code == 200

    try:
        await asyncio.gather(*(caller() for _ in range(callers)))
    finally:
        await client.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def simulate(limiter: AdaptiveLimiter, clock: Clock, latency_of: Callable[[int], float],
                   rounds: int) -> list[int]:
    """Round trips on a virtual clock: each round sends as many as the limit allows, and all of them
    take latency_of(in flight). Deterministic, so the decisions are checked, not the machine's load."""
    sent = []
    for _ in range(rounds):
        in_flight = int(limiter.limit)
        starts = [await limiter.acquire() for _ in range(in_flight)]  # free slots: no waiting
        clock.now += latency_of(in_flight)
        for started in starts:
            limiter.release(started, 200)
        sent.append(in_flight)
    return sent


async def test_grows_to_the_ceiling_while_latency_holds() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(64, initial=4, clock=clock)
    sent = await simulate(limiter, clock, lambda n: 0.02, rounds=12)
    assert sent[:5] == [4, 8, 16, 32, 64]  # doubling each round trip while latency holds
    assert max(sent) == 64 and limiter.limit == 64  # and never past the ceiling


async def test_shrinks_when_the_server_queues() -> None:
    # The server serves 8 at once in 40 ms: more in flight only queue, and latency grows with them.
    clock = Clock()
    limiter = AdaptiveLimiter(128, clock=clock)
    sent = await simulate(limiter, clock, lambda n: 0.04 * max(1.0, n / 8), rounds=40)
    assert sent[:2] == [8, 16]  # the default start, then one doubling past the capacity
    assert max(sent) <= 16, sent  # one doubling past the capacity at most, then back
    assert 8 <= sent[-1] <= 16, sent  # settles where latency stays near 1.5x the unqueued 40 ms


async def test_follows_a_network_that_got_slower() -> None:
    # 20 ms, then 200 ms for good at any load: after backing off, the new latency is the baseline.
    clock = Clock()
    limiter = AdaptiveLimiter(64, clock=clock)
    await simulate(limiter, clock, lambda n: 0.02, rounds=6)
    sent = await simulate(limiter, clock, lambda n: 0.2, rounds=25)
    assert min(sent) >= 1 and sent[-1] == 64, sent  # backed off, re-learned 200 ms, grew back


async def test_a_user_ceiling_below_the_start_is_the_limit() -> None:
    server = FakeServer(latency=0.002)
    limiter = AdaptiveLimiter(3)
    await drive(server, limiter, 200, callers=20)
    assert server.peak == 3


async def test_retry_after_pauses_every_request() -> None:
    server = FakeServer(latency=0.001, unavailable_first=1, retry_after="0.3")
    # A 0.1 s attempt timeout: waiting out the pause in the limiter must not count against it.
    client = TwirpClient("http://server", TokenSource("k", "s"), transport=server, max_connections=16,
                         retry=RetryPolicy(attempts=3, base_delay=0.01), timeout=0.1)
    limiter = client.limiter
    limiter.limit = 1  # the first request goes alone and meets the 503
    first = time.monotonic()
    await asyncio.gather(*(client.call("RoomService", "ListRooms", {}) for _ in range(10)))
    await client.aclose()
    refused_at = server.starts[0]
    later = server.starts[1:]
    assert len(later) == 10 and all(t - refused_at >= 0.29 for t in later)  # nobody went during the pause
    assert limiter.stats.paused_seconds >= 0.29
    assert first <= refused_at


@pytest.mark.parametrize("callers", [50])
async def test_paces_under_a_rate_limit_without_failing(callers: int) -> None:
    """A 60-per-0.5 s window: the first burst meets a 429, after which requests are paced and the
    rest go through without hammering the limit again."""
    server = FakeServer(latency=0.002, per_window=60, window=0.5)
    client = TwirpClient("http://server", TokenSource("k", "s"), transport=server, max_connections=64,
                         retry=RetryPolicy(attempts=5, base_delay=0.01))
    limiter = client.limiter
    todo = iter(range(180))

    async def caller() -> None:
        for _ in todo:
            await client.call("RoomService", "ListRooms", {})  # raises if any call fails for good

    await asyncio.gather(*(caller() for _ in range(callers)))
    await client.aclose()
    assert limiter.stats.paced_rate is not None
    assert limiter.stats.paced_rate < 60 / 0.5 * 1.5  # about the server's 120/s, not the burst rate
    # Refused: those in flight when the first 429 came (at most the limit then), plus a few while
    # probing upwards; never one refusal per request.
    assert server.refused < 30, server.refused
    assert len(server.starts) - server.refused == 180


async def test_an_attempt_cut_by_its_bound_or_the_deadline_gives_its_slot_back() -> None:
    """One timeout scope per attempt (transport.HttpClient): the deadline bounds the wait for a slot,
    then the attempt's own bound applies; either way the limiter gets the slot back."""
    server = FakeServer(latency=5.0)  # never answers in time
    limiter = AdaptiveLimiter(1)
    client = HttpClient(server, read=10.0, pool=10.0, limiter=limiter)
    try:
        holder = asyncio.create_task(client.post("http://server/", content=b"{}", headers={}, bound=0.5))
        await asyncio.sleep(0.05)
        assert limiter.in_flight == 1
        # Queued behind the holder: the deadline ends its wait for admission, before the server saw it.
        with pytest.raises(TimeoutError):
            await client.post("http://server/", content=b"{}", headers={}, bound=10.0,
                              deadline=time.monotonic() + 0.1)
        assert len(server.starts) == 1 and limiter.in_flight == 1 and not limiter._waiters
        with pytest.raises(TimeoutError):  # the holder's own 0.5 s bound
            await holder
        assert limiter.in_flight == 0
    finally:
        await client.aclose()
