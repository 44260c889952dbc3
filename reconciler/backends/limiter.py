"""Adaptive concurrency for one server: how many requests may be in flight, and how fast they may start.

A fixed number in flight either wastes a fast server (16 at 20 ms is 800 requests/s at most) or
overloads a slow or rate-limited one. The limiter adapts, TCP-style, within the ceiling a user sets
(`--concurrency`):

- it starts at 8 (half the fixed 16 roomctl sent before it adapted), few enough that the first
  latencies it sees are the server's own, not queueing behind a burst of ours (the lowest latency
  is the baseline). Each doubling takes a round trip: from 4, a 1,000-room apply at 20 ms spent
  ~35 ms more reaching 64;
- it grows while the latency holds (a window's median latency within `tolerance` of the baseline)
  and nothing is refused: doubling per window at first, then by an eighth, and only when the
  current limit was actually used (a window is about `limit` answers: one round trip);
- it shrinks when latency rises (queueing: at the server, on the network, or in our own event loop
  when the CPU is the limit), in proportion to the rise; still slow with next to nothing in flight,
  the network itself got slower: that latency becomes the baseline;
- a refusal (429, 503) halves it, at most once per window, and a Retry-After pauses every request
  to that server until then;
- a 429 after at least 50 accepted requests also tells it a rate limit exists (a 429 sooner says
  too little: it only pauses and halves): from what the server accepted before refusing and how long
  it asked us to wait, it estimates the rate (accepted in the last minute / (their span + wait)) and
  from then on paces request starts at that rate, probing 5 % higher each second without a refusal:
  pacing rather than bursting into the limit and waiting it out again.

It sits in the HTTP client (`transport.HttpClient`), below the Twirp client's retry loop: every
attempt, first or retry, waits its turn; the retry loop still decides what is retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger("roomctl.limiter")

# The ceiling on requests in flight (`apply --concurrency`); the limiter adapts below it.
DEFAULT_CONCURRENCY = 64
REFUSED = frozenset({429, 503})
RATE_HORIZON = 60.0  # seconds of accepted requests a rate estimate looks back over ("per minute")
SLACK = 0.002  # seconds of latency noise tolerated on top of the baseline (loopback, timer jitter)
PROBE = 1.05  # paced rate growth per second without a refusal
MIN_EVIDENCE = 50  # requests accepted in the last minute before a 429 says anything about a rate
MIN_RATE = 0.5  # requests/s: pacing never starves a run
# A refusal cuts the limit, pauses everyone (Retry-After) and starts pacing (429) only when the last
# answers were all refusals (a rate limit or an overload refuses everything beyond it, so refusals
# come in a row). Sporadic refusals (a flaky proxy, fault injection: 25 % of answers at random) are
# retried one by one after their own Retry-After: cutting and pausing on each of them held the
# limit at its minimum and paused nearly all the time (a 500-room apply took minutes).
BURST = 8


@dataclass
class LimiterStats:
    """What a run did, for -v logs and the benchmarks."""

    peak_limit: int = 0
    peak_in_flight: int = 0
    refused: int = 0
    paused_seconds: float = 0.0
    paced_rate: float | None = None  # requests/s once a rate limit was seen


class AdaptiveLimiter:
    """See the module docstring. Not thread-safe: one event loop."""

    def __init__(self, ceiling: int, *, initial: int = 8, minimum: int = 1, tolerance: float = 1.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = max(1, ceiling)
        self.minimum = max(1, min(minimum, self.ceiling))
        self.tolerance = tolerance
        self.clock = clock
        self.limit = float(max(self.minimum, min(initial, self.ceiling)))
        self.in_flight = 0
        self.baseline: float | None = None
        self.slow_start = True
        self.stats = LimiterStats(peak_limit=int(self.limit))
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._window: list[float] = []
        self._window_used = False  # the limit was reached during this window
        self._last_cut = -1e18
        self._paused_until = 0.0
        self._rate: float | None = None  # requests/s, once a rate limit was seen
        self._next_start = 0.0
        self._probe_at = 0.0
        self._accepted: deque[float] = deque()  # when the server accepted requests, last RATE_HORIZON s
        self._outcomes: deque[bool] = deque(maxlen=BURST)  # refused?, for the last answers

    def hold_at_least(self, floor: int) -> None:
        """Never shrink below `floor` in flight (refusals and Retry-After pauses still apply). For a
        long-running process whose work arrives at its own pace (`roomctl serve`'s webhook reactions):
        latency that rises because the CPU is shared would otherwise shrink the limit below the
        arrival rate, and the work would queue without bound while the server is fine
        (bench/RESULTS.md "Webhook enforcement latency")."""
        self.minimum = max(1, min(floor, self.ceiling))
        self.limit = max(self.limit, float(self.minimum))
        self._admit()

    def log_stats(self) -> None:
        """The -v line at the end of a run: how far the limit went, refusals and pauses."""
        stats = self.stats
        if stats.peak_in_flight:
            paced = f", paced at {stats.paced_rate:.1f}/s" if stats.paced_rate else ""
            log.info("requests in flight peaked at %d (limit %d of %d); %d refused, %.1f s paused%s",
                     stats.peak_in_flight, stats.peak_limit, self.ceiling, stats.refused, stats.paused_seconds, paced)

    # ---- admission ----------------------------------------------------------------------------
    async def acquire(self) -> float:
        """Wait for a slot (then for any pause, and our turn when pacing); returns the start time
        to pass to `release`."""
        if self.in_flight >= int(self.limit) or self._waiters:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # _admit() hands the slot over (in_flight already counts us)
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._finish()
                elif waiter in self._waiters:  # _admit() may already have dropped a cancelled waiter
                    self._waiters.remove(waiter)
                raise
        else:
            self.in_flight += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.in_flight)
        if self.in_flight >= int(self.limit):
            self._window_used = True
        try:
            await self._wait_turn()
        except BaseException:
            self._finish()
            raise
        return self.clock()

    async def _wait_turn(self) -> None:
        while True:
            now = self.clock()
            start = max(now, self._paused_until)
            if self._rate is not None:
                start = max(start, self._next_start)
                self._next_start = start + 1.0 / self._rate
            if start <= now:
                return
            await asyncio.sleep(start - now)
            if self._rate is not None or self.clock() >= self._paused_until:
                return  # (a pause extended meanwhile is waited out again)

    def _finish(self) -> None:
        self.in_flight -= 1
        self._admit()

    def _admit(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    # ---- feedback -----------------------------------------------------------------------------
    def release(self, started: float, status: int | None, retry_after: float | None = None) -> None:
        """An attempt ended: `status` is the HTTP status, None for a transport failure (which says
        nothing about load, so it changes nothing)."""
        now = self.clock()
        if status is not None:
            self._outcomes.append(status in REFUSED)
        try:
            if status in REFUSED:
                self._refused(now, status, retry_after)
            elif status is not None:
                self._accepted.append(now)
                while now - self._accepted[0] > RATE_HORIZON:
                    self._accepted.popleft()
                self._sample(now, now - started)
        finally:
            self._finish()

    def _sample(self, now: float, latency: float) -> None:
        if self.baseline is None or latency < self.baseline:
            self.baseline = latency
        self._window.append(latency)
        if len(self._window) < max(4, int(self.limit)):
            return
        window, self._window = sorted(self._window), []
        median, used = window[len(window) // 2], self._window_used
        self._window_used = False
        threshold = self.baseline * self.tolerance + SLACK
        if median <= threshold:
            if used:
                grown = self.limit * 2 if self.slow_start else self.limit + max(1.0, self.limit / 8)
                self.limit = min(float(self.ceiling), grown)
            # Creeps up slowly unless renewed, so a network that got a little slower is followed.
            self.baseline = min(window[0], self.baseline * 1.01)
        else:
            self.slow_start = False
            if self.limit <= 2 * self.minimum:
                # Next to nothing in flight and still slow: the server itself got slower, not
                # queueing behind us. That is the new baseline; grow from it as from the start.
                self.baseline = window[0]
                self.slow_start = True
                self.stats.peak_limit = max(self.stats.peak_limit, int(self.limit))
                self._admit()
                return
            self.limit = max(float(self.minimum), self.limit * max(0.5, threshold / median))
        self.stats.peak_limit = max(self.stats.peak_limit, int(self.limit))
        if self._rate is not None and now >= self._probe_at:
            self._rate *= PROBE
            self.stats.paced_rate = self._rate
            self._probe_at = now + 1.0
        self._admit()

    def _refused(self, now: float, status: int | None, retry_after: float | None) -> None:
        self.stats.refused += 1
        if self.stats.refused > 1 and not all(self._outcomes):
            return  # sporadic: this request waits its own Retry-After (the retry loop); others go on
        self.slow_start = False
        if now - self._last_cut > (self.baseline or 0.05):
            self.limit = max(float(self.minimum), self.limit / 2)
            self._last_cut = now
        if retry_after is None or retry_after <= 0:
            return
        until = now + retry_after
        if status == 429 and now >= self._paused_until and len(self._accepted) >= MIN_EVIDENCE:
            # The first refusal of a burst (the others were sent before the pause began): what the
            # server took in the last minute, over the time that took plus the wait it asks for
            # (or over the whole minute, when that is more).
            recent = [t for t in self._accepted if now - t <= RATE_HORIZON]
            span = now - recent[0] if recent else 0.0
            estimate = max(len(recent) / (span + retry_after), len(recent) / RATE_HORIZON, MIN_RATE)
            if self._rate is None or estimate < self._rate:
                self._rate = estimate
                self.stats.paced_rate = estimate
            self._probe_at = until + 1.0
        if until > self._paused_until:
            self.stats.paused_seconds += until - max(now, self._paused_until)
            self._paused_until = until


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (`headers` look up case-insensitively); None when absent or a date."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare for APIs; the retry policy's backoff applies
