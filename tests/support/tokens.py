"""Mint tokens for tests the way any LiveKit client would (HS256 over the claims)."""

from __future__ import annotations

import time
import warnings
from typing import Any

import jwt

KEY = "devkey"
SECRET = "secret"


def mint(claims: dict[str, Any] | None = None, *, key: str = KEY, secret: str = SECRET, ttl: int = 600,
         exp_offset: int | None = None) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": key, "sub": "", "nbf": now, "exp": now + ttl}
    if exp_offset is not None:
        payload["exp"] = now + exp_offset
        payload["nbf"] = now - 600
    payload.update(claims or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the --dev secret is short on purpose
        return jwt.encode(payload, secret, algorithm="HS256")
