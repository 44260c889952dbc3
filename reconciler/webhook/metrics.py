"""Prometheus metrics of the webhook path, registered in whichever registry the front serves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter("roomctl_webhook_events_total",
                              "Verified webhook events, by event type and result "
                              "(accepted, duplicate, ignored, queue_full).",
                              ["event", "result"], registry=registry)
        self.rejected = Counter("roomctl_webhook_rejected_total",
                                "Webhook deliveries refused (401/413/400), by reason.", ["reason"],
                                registry=registry)
        self.runs = Counter("roomctl_webhook_runs_total",
                            "Reactions to coalesced events of one room, by result (acted, no_action, failed).",
                            ["result"], registry=registry)
        self.latency = Histogram("roomctl_enforcement_latency_seconds",
                                 "From a webhook's arrival to the end of the reaction that covered it.",
                                 registry=registry, buckets=LATENCY_BUCKETS)
        self.queue_depth = Gauge("roomctl_webhook_queue_depth", "Rooms waiting for a webhook reaction.",
                                 registry=registry)
