"""Prometheus metrics of the operator, in their own registry (served on --metrics-port)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..webhook.metrics import WebhookMetrics

if TYPE_CHECKING:
    from .decide import RoomObject

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter("roomctl_reconciles_total", "Reconciles of one Room object, by trigger and result.",
                     ["trigger", "result"], registry=REGISTRY)
FAILURES = Counter("roomctl_reconcile_failures_total", "Failed reconciles, by Ready reason.", ["reason"],
                   registry=REGISTRY)
ACTIONS = Counter("roomctl_actions_total", "Plan actions performed on the server, by kind and result.",
                  ["kind", "result"], registry=REGISTRY)
DRIFT = Gauge("roomctl_drift", "Drift entries not applied (status.drift) of one object: one series per "
              "Room or PlugNmeetRoom, removed when the object goes.", ["namespace", "name", "kind"],
              registry=REGISTRY)
ROOMS = Gauge("roomctl_rooms", "Room objects known to the operator's index.", registry=REGISTRY)
SWEEPS = Counter("roomctl_sweeps_total", "Drift sweeps, one per server and interval.", ["result"],
                 registry=REGISTRY)
CALL_LATENCY = Histogram("roomctl_livekit_call_seconds", "LiveKit Twirp call latency, per attempt.",
                         ["method", "outcome"], registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20))

# The webhook endpoint's metrics (the same names `roomctl serve` exposes).
WEBHOOK = WebhookMetrics(REGISTRY)


def observe_call(method: str, seconds: float, outcome: str) -> None:
    CALL_LATENCY.labels(method, outcome).observe(seconds)


_drift_series: set[tuple[str, str, str]] = set()


def _labels(obj: RoomObject) -> tuple[str, str, str]:
    return (obj.namespace, obj.name, obj.kind)


def record_drift(obj: RoomObject, status: Mapping[str, Any]) -> None:
    labels = _labels(obj)
    DRIFT.labels(*labels).set(len(status.get("drift") or []))
    _drift_series.add(labels)


def forget_drift(obj: RoomObject) -> None:
    labels = _labels(obj)
    if labels in _drift_series:
        _drift_series.discard(labels)
        DRIFT.remove(*labels)


def retain_drift(objects: Iterable[RoomObject]) -> None:
    """Drop the series of every object not in `objects` (deleted while no handler saw it go)."""
    keep = {_labels(o) for o in objects}
    for labels in _drift_series - keep:
        DRIFT.remove(*labels)
    _drift_series.intersection_update(keep)
