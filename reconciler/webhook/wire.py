"""The webhook wire as livekit-server sends it (livekit-api.md §7; livekit/protocol
`webhook/resource_url_notifier.go` `send`): POST, `Content-Type: application/webhook+json`, the
WebhookEvent in protojson (lowerCamel names, int64 as strings, unset fields omitted), and a bare
`Authorization: <JWT>` header: HS256 with the API secret, `iss` the key, valid 5 minutes, claim
`sha256` = standard base64 of SHA-256 over the exact body bytes."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt

from ..auth import short_keys_allowed

CONTENT_TYPE = "application/webhook+json"
TOKEN_TTL = 300  # auth.NewAccessToken(...).SetValidFor(5 * time.Minute)


def body_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def sign(body: bytes, api_key: str, api_secret: str, now: float) -> str:
    """The Authorization value for one delivery: no sub, no grants, only iss/nbf/exp/sha256."""
    claims = {"exp": int(now) + TOKEN_TTL, "iss": api_key, "nbf": int(now), "sha256": body_hash(body)}
    with short_keys_allowed():  # `livekit-server --dev` signs with the 6-byte secret "secret"
        return jwt.encode(claims, api_secret, algorithm="HS256")


def encode_event(event: dict[str, Any]) -> bytes:
    """protojson's shape for an already lowerCamel dict. Go's encoder puts a space after some
    commas on purpose (so nobody relies on the bytes); ", " everywhere looks like the recordings."""
    return json.dumps(event, separators=(", ", ":"), ensure_ascii=False).encode()
