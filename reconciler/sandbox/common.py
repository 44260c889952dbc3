"""Pieces the sandbox's LiveKit and plugNmeet emulations share: ids, the clock, Twirp errors."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

# shortuuid's alphabet, as LiveKit's guid package uses it (livekit-api.md §4 "IDs").
ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    # One urandom read per id, not one per character (it was a tenth of the sandbox's CPU per CreateRoom).
    number = int.from_bytes(secrets.token_bytes(10))  # 80 bits over 57^12 (~2^70): bias below 2^-10
    chars = []
    for _ in range(12):
        number, digit = divmod(number, 57)
        chars.append(ID_ALPHABET[digit])
    return prefix + "".join(chars)


class Clock:
    """Wall time plus an offset that tests advance to make rooms expire without waiting."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


# Twirp code -> HTTP status (livekit-api.md §1.5, from twirp's errors.go).
TWIRP_STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

# psrpc errors reach the client re-wrapped, so their text carries this prefix (livekit-api.md §1.5).
PSRPC_PREFIX = "twirp error unknown: "


@dataclass
class TwirpError(Exception):
    code: str
    msg: str
    meta: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def psrpc(cls, code: str, text: str) -> TwirpError:
        return cls(code, PSRPC_PREFIX + text)

    @classmethod
    def invalid_argument(cls, argument: str, detail: str) -> TwirpError:
        # twirp.InvalidArgumentError(arg, detail): msg = arg + " " + detail, meta.argument = arg.
        return cls("invalid_argument", f"{argument} {detail}", {"argument": argument})

    @property
    def status(self) -> int:
        return TWIRP_STATUS.get(self.code, 500)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:
            out["meta"] = dict(self.meta)
        return out


PERMISSION_DENIED = ("unauthenticated", "permissions denied")
