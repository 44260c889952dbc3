"""Typed errors from a server. Messages are safe to print: no server text is passed through
verbatim where it may echo a credential (a real LiveKit echoes the bearer token in some 401s)."""

from __future__ import annotations

import json
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
        # Where it happened, set by the client that made the call: "ListParticipants", a room name.
        self.method = ""
        self.room = ""

    @property
    def message(self) -> str:
        return str(self)

    def at(self, method: str, room: str = "") -> BackendError:
        self.method, self.room = method, room
        return self

    def describe(self) -> str:
        """One line naming the method (and room) and the cause: what the user reads."""
        where = self.method + (f" {json.dumps(self.room, ensure_ascii=False)}" if self.room else "")
        return f"{where}: {self}" if where else str(self)


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

    def __init__(self, message: str, *, sent: bool, retryable: bool = True) -> None:
        super().__init__(message)
        self.sent = sent
        self.retryable = retryable  # False where trying again cannot help (an untrusted certificate)


class ServerFailure(BackendError):
    """A 5xx or an unknown/internal Twirp code."""

    retryable = True


class OutcomeUnknown(BackendError):
    """A request that is not safe to repeat got no clear answer: it may or may not have acted.
    The caller re-checks (e.g. ListDispatch) before trying again."""

    def __init__(self, cause: BackendError) -> None:
        super().__init__(f"outcome unknown: {cause}", code=cause.code, status=cause.status)
        self.cause = cause


class DeadlineExceeded(BackendError):
    """The run's --deadline passed before this request could complete."""


class InvalidServer(BackendError):
    """The server URL itself is unusable (bad scheme, port out of range): nothing was sent."""
