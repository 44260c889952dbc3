"""LiveKit access tokens: short-lived, least-privilege API tokens and join tokens (livekit-api.md §2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

API_TOKEN_TTL = 600  # seconds; the server allows 60 s of skew on each side
REFRESH_MARGIN = 60


@contextmanager
def short_keys_allowed() -> Iterator[None]:
    """Around every HS256 verify (or sign) of ours with PyJWT: `livekit-server --dev` (and the
    sandbox) use the 6-byte secret "secret", and a short key is the operator's choice to make, so
    PyJWT's InsecureKeyLengthWarning (a raw library line with a file path) is never printed."""
    import jwt  # its callers use PyJWT: loaded already

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        yield


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_HS256_HEADER = _b64(b'{"alg":"HS256","typ":"JWT"}')


def _sign(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT, byte for byte what PyJWT's jwt.encode(claims, secret, algorithm="HS256") gives
    (tests/test_auth.py compares them): written out here because importing PyJWT loads the
    cryptography package's x509 modules, ~28 ms of every run's start-up, for an HMAC."""
    signing_input = _HS256_HEADER + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64(signature)).decode()


def api_grant(method: str, room: str) -> tuple[str, dict[str, Any]]:
    """The least grant each method needs (livekit-api.md §2.2), and the cache key for it."""
    if method == "ListRooms":
        return "list", {"roomList": True}
    if method in ("CreateRoom", "DeleteRoom"):
        return "create", {"roomCreate": True}
    return f"admin:{room}", {"roomAdmin": True, "room": room}


@dataclass
class TokenSource:
    """Mints one token per grant and reuses it until shortly before it expires."""

    api_key: str
    api_secret: str = field(repr=False)
    ttl: int = API_TOKEN_TTL
    _cache: dict[str, tuple[str, float]] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # the secret never reaches a log line or traceback
        return f"TokenSource(api_key={self.api_key!r})"

    def for_call(self, method: str, room: str = "") -> str:
        key, video = api_grant(method, room)
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and cached[1] - now > REFRESH_MARGIN:
            return cached[0]
        expires = now + self.ttl
        token = _sign({"iss": self.api_key, "sub": "", "nbf": int(now), "exp": int(expires), "video": video},
                      self.api_secret)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (token, expires)
        return token

    def join_token(self, identity: str, video: dict[str, Any], ttl: int, extra: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {"iss": self.api_key, "sub": identity, "nbf": now, "exp": now + ttl, "video": video, **extra}
        return _sign(claims, self.api_secret)
