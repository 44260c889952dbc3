"""Fault injection for the sandbox: latency, 503s, 429s, resets, hangs, and a rate limit."""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Fault:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0  # answered 503 unavailable
    throttle_rate: float = 0.0  # answered 429 resource_exhausted with Retry-After
    retry_after: int = 1
    reset_rate: float = 0.0  # the connection is dropped without an answer
    hang_rate: float = 0.0  # no answer for hang_seconds, then the connection is dropped
    hang_seconds: float = 30.0
    lose_rate: float = 0.0  # the request is carried out, then the connection dropped: the answer is lost

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        fault = cls(**known)
        for name in ("error_rate", "throttle_rate", "reset_rate", "hang_rate", "lose_rate"):
            if not 0.0 <= getattr(fault, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        return fault


@dataclass
class Decision:
    delay: float = 0.0
    outcome: str = "pass"  # pass | error | throttle | reset | hang | rate_limited | lose
    retry_after: int = 0
    hang_seconds: float = 0.0


@dataclass
class FaultPlan:
    per_method: dict[str, Fault] = field(default_factory=dict)  # "*" applies to every method
    rate_limit_per_min: int = 0
    rng: random.Random = field(default_factory=random.Random)
    _recent: deque[float] = field(default_factory=deque)

    def describe(self) -> dict[str, Any]:
        return {
            "methods": {k: asdict(v) for k, v in self.per_method.items()},
            "rate_limit_per_min": self.rate_limit_per_min,
        }

    def configure(self, data: dict[str, Any]) -> None:
        methods = data.get("methods", {})
        self.per_method = {name: Fault.from_dict(spec) for name, spec in methods.items()}
        self.rate_limit_per_min = int(data.get("rate_limit_per_min", 0))
        if "seed" in data:
            self.rng.seed(data["seed"])

    def decide(self, method: str) -> Decision:
        if self.rate_limit_per_min:
            now = time.monotonic()
            while self._recent and now - self._recent[0] >= 60:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit_per_min:
                wait = max(1, int(60 - (now - self._recent[0])) + 1)
                return Decision(outcome="rate_limited", retry_after=wait)
            self._recent.append(now)
        fault = self.per_method.get(method) or self.per_method.get("*")
        if fault is None:
            return Decision()
        delay = fault.latency_ms / 1000
        if fault.jitter_ms:
            delay += self.rng.uniform(0, fault.jitter_ms) / 1000
        roll = self.rng.random()
        for outcome, rate in (
            ("error", fault.error_rate),
            ("throttle", fault.throttle_rate),
            ("reset", fault.reset_rate),
            ("hang", fault.hang_rate),
            ("lose", fault.lose_rate),
        ):
            if roll < rate:
                return Decision(delay, outcome, fault.retry_after, fault.hang_seconds)
            roll -= rate
        return Decision(delay)


def parse_latency(text: str) -> tuple[float, float]:
    """`N[:JITTER]` in milliseconds."""
    base, _, jitter = text.partition(":")
    return float(base), float(jitter or 0)


def parse_rate_limit(text: str) -> int:
    """`N/min`."""
    number, _, unit = text.partition("/")
    if unit not in ("", "min", "m"):
        raise ValueError("rate limit is given as N/min")
    return int(number)
