"""`roomctl serve`'s Enforcer without sockets. It holds its servers' adaptive limiters at its worker
count: latency that rises because the CPU is shared must not shrink the limit below the rate webhook
reactions arrive at (the benchmark's collapse: p50 0.5-2.5 s before, ~80 ms after; bench/RESULTS.md).
And a manifest edit it cannot serve (a server not opened at start) keeps the last good state."""

from __future__ import annotations

from pathlib import Path

from reconciler.backends.limiter import AdaptiveLimiter
from reconciler.backends.livekit import LiveKitBackend
from reconciler.engine import Backends
from reconciler.serve import Enforcer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def slow_down(limiter: AdaptiveLimiter, clock: Clock, latencies: list[float]) -> None:
    """Answers at the given latencies, one window per round (about `limit` answers each)."""
    for latency in latencies:
        for _ in range(max(1, int(limiter.limit))):
            started = clock.now
            clock.now += latency
            limiter.release(started, 200)


def test_rising_latency_shrinks_an_unheld_limiter_but_not_below_the_floor() -> None:
    free, held = Clock(), Clock()
    plain = AdaptiveLimiter(64, clock=free)
    floored = AdaptiveLimiter(64, clock=held)
    floored.hold_at_least(32)
    rising = [0.02] * 3 + [0.06, 0.12, 0.2, 0.3, 0.3, 0.3]
    slow_down(plain, free, rising)
    slow_down(floored, held, rising)
    assert plain.limit < 8  # what happened to serve under a loaded CPU
    assert floored.limit >= 32


def test_a_refusal_still_halves_down_to_the_floor_only() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(64, clock=clock)
    limiter.hold_at_least(16)
    for _ in range(10):
        clock.now += 1.0
        limiter.release(clock.now, 503)
    assert limiter.limit == 16


def test_the_enforcer_holds_every_server_at_its_worker_count() -> None:
    default = LiveKitBackend("http://127.0.0.1:9", "k", "s")
    named = LiveKitBackend("http://127.0.0.1:9", "k2", "s2")
    enforcer = Enforcer(["rooms.yaml"], Backends(default, named={"eu": named}), workers=24)
    assert default.twirp.limiter.minimum == named.twirp.limiter.minimum == 24
    assert enforcer.keys == {"k": "s", "k2": "s2"} and enforcer.servers == {"k": "", "k2": "eu"}


def test_an_edit_asking_for_a_server_serve_did_not_open_keeps_the_last_good_state(tmp_path: Path) -> None:
    manifest = tmp_path / "rooms.yaml"
    manifest.write_text("apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {name: a}\n")
    reports: list[str] = []
    enforcer = Enforcer([str(manifest)], Backends(LiveKitBackend("http://127.0.0.1:9", "k", "s")),
                        report=reports.append)
    assert enforcer.load() and enforcer.inputs is not None
    good = enforcer.inputs
    manifest.write_text(manifest.read_text() + "spec:\n  serverRef: {name: eu}\n")
    assert not enforcer.load()
    assert enforcer.inputs is good
    assert reports[-1].startswith(f"error: {manifest}:1: spec.serverRef: server 'eu' was not opened")
    assert "last good manifests stay in force" in reports[-1]
