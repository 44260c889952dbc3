"""Prometheus metrics of the operator, in their own registry (served on --metrics-port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter("roomctl_reconciles_total", "Reconciles of one Room object, by trigger and result.",
                     ["trigger", "result"], registry=REGISTRY)
FAILURES = Counter("roomctl_reconcile_failures_total", "Failed reconciles, by Ready reason.", ["reason"],
                   registry=REGISTRY)
ACTIONS = Counter("roomctl_actions_total", "Plan actions performed on the server, by kind and result.",
                  ["kind", "result"], registry=REGISTRY)
DRIFT = Gauge("roomctl_drift", "Drift entries not applied, over all Room objects, as of the last sweep.",
              registry=REGISTRY)
ROOMS = Gauge("roomctl_rooms", "Room objects known to the operator's index.", registry=REGISTRY)
SWEEPS = Counter("roomctl_sweeps_total", "Drift sweeps, one per server and interval.", ["result"],
                 registry=REGISTRY)
CALL_LATENCY = Histogram("roomctl_livekit_call_seconds", "LiveKit Twirp call latency, per attempt.",
                         ["method", "outcome"], registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20))


def observe_call(method: str, seconds: float, outcome: str) -> None:
    CALL_LATENCY.labels(method, outcome).observe(seconds)
