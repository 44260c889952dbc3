"""Typed errors from a server. Messages are safe to print: no server text is passed through
verbatim where it may echo a credential (a real LiveKit echoes the bearer token in some 401s)."""

from __future__ import annotations

import re

_JWT_RE = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*")


def scrub(text: str) -> str:
    """Remove anything shaped like a JWT and cap the length."""
    return _JWT_RE.sub("<token>", text)[:300]


class BackendError(Exception):
    retryable = False

    def __init__(self, message: str, *, code: str = "", status: int = 0) -> None:
        super().__init__(scrub(message))
        self.code = code
        self.status = status

    @property
    def message(self) -> str:
        return str(self)


class AuthFailed(BackendError):
    """401: wrong key or secret, an expired token (clock skew), or a missing grant."""


class NotFound(BackendError):
    pass


class InvalidArgument(BackendError):
    pass


class Conflict(BackendError):
    pass


class Unavailable(BackendError):
    retryable = True


class RateLimited(BackendError):
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, code: str = "", status: int = 429) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class TransportFailure(BackendError):
    """No answer: refused, reset, timed out. `sent` is False when the request surely never left."""

    retryable = True

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class ServerFailure(BackendError):
    """A 5xx or an unknown/internal Twirp code."""

    retryable = True
