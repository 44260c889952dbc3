"""LiveKit webhooks in: the wire (`wire`), one receiver both fronts share (`receiver`: verify, dedupe,
coalesce per room, a bounded queue), and its HTTP face (`app`). `roomctl serve` and the operator each
plug their own reaction in; both end in the shared plan and executor."""

from .receiver import EventQueue, Receiver, RoomWork, WebhookEvent, WebhookRejected, verify
from .wire import CONTENT_TYPE, body_hash, encode_event, sign

__all__ = [
    "CONTENT_TYPE",
    "EventQueue",
    "Receiver",
    "RoomWork",
    "WebhookEvent",
    "WebhookRejected",
    "body_hash",
    "encode_event",
    "sign",
    "verify",
]
