"""A Twirp (JSON) client for LiveKit over aiohttp (or any httpx transport): per-call tokens, error mapping,
retries, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..auth import TokenSource
from .errors import (
    AuthFailed,
    BackendError,
    Conflict,
    DeadlineExceeded,
    InvalidArgument,
    InvalidServer,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    ServerFailure,
    TransportFailure,
    Unavailable,
)
from .failures import not_twirp, parse_server_url, tls_verify, transport_failure
from .limiter import AdaptiveLimiter
from .transport import USER_AGENT, HttpClient, InvalidURL, Reply, TransportError, http_pool

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("roomctl.twirp")

# Called after every HTTP attempt with (method, seconds, outcome): "ok" or the error class name.
CallObserver = Callable[[str, float, str], None]

# Methods routed over psrpc to the room/participant topic: the server honours X-Twirp-Timeout-Ms.
ROUTED = frozenset(
    {"SendData", "MutePublishedTrack", "UpdateSubscriptions", "UpdateParticipant", "RemoveParticipant",
     "UpdateRoomMetadata", "DeleteRoom", "CreateDispatch", "ListDispatch", "DeleteDispatch"}
)
# The server-side wait a routed call may take (X-Twirp-Timeout-Ms): a routed call on a room that is
# not live hangs ~15 s on a real server (livekit-api.md §3.3); a live one answers in milliseconds.
ROUTED_TIMEOUT = 5.0
# Sent per logical request, the same on each retry (server-sdk-go's idempotency key).
REQUEST_ID_HEADER = "X-Livekit-Request-Id"
# Not idempotent: retried only when the request surely never reached the server (livekit-api.md §3.4).
NOT_IDEMPOTENT = frozenset({"CreateDispatch"})
# json.dumps with options builds a new encoder on every call.
_encode = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # 35 % of attempts failing at random (issue 9's fault mix) then fails 1 call in 4,400
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        # Exponential with full jitter.
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def new_request_id() -> str:
    """A random (version 4) UUID as text, what str(uuid.uuid4()) gives, without building a UUID
    object: 0.8 instead of 2 us, on every request."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _map_error(response: Reply, server: str) -> BackendError:
    status = response.status_code
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    is_twirp = isinstance(body, dict) and "code" in body
    code = str(body.get("code", "")) if is_twirp else ""
    msg = str(body.get("msg", "")) if is_twirp else ""
    if status == 401 or code == "unauthenticated":
        # Never the server's text: some 401 bodies echo the whole bearer token.
        hint = "the API key or secret is wrong, a grant is missing, or the clocks differ by over a minute"
        return AuthFailed(f"authentication failed (HTTP 401) at {server}: {hint}", code=code or "unauthenticated",
                          status=status)
    if status == 429 or code == "resource_exhausted":
        retry_after = response.headers.get("retry-after")
        seconds = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
        return RateLimited("rate limited (HTTP 429)", retry_after=seconds, code=code, status=status)
    if not is_twirp and status not in (502, 503, 504):
        # Not LiveKit's answer (Twirp errors are always a JSON {code, msg}): a wrong path or host.
        return not_twirp(server, response.path, status, response.headers.get("content-type", ""))
    text = f"{code or 'http ' + str(status)}: {msg}" if msg else (code or f"HTTP {status} from {server}")
    if code == "not_found" or (status == 404 and code != "bad_route"):
        return NotFound(text, code=code, status=status)
    if code in ("invalid_argument", "malformed", "out_of_range", "bad_route"):
        return InvalidArgument(text, code=code, status=status)
    if code in ("already_exists", "aborted", "failed_precondition"):
        return Conflict(text, code=code, status=status)
    if code == "unavailable" or status == 503:
        return Unavailable(text, code=code, status=status)
    if status >= 500 or code in ("internal", "unknown", "dataloss", "deadline_exceeded", "canceled"):
        return ServerFailure(text, code=code, status=status)
    return BackendError(text, code=code, status=status)


def _json_reply(response: Reply, server: str) -> dict[str, Any]:
    try:
        result = response.json()
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise not_twirp(server, response.path, response.status_code,
                        response.headers.get("content-type", ""))
    return result


class TwirpClient:
    """One client per server. `deadline` is a time.monotonic() instant the whole run must finish by:
    no attempt outlives it, and a retry that would not fit is not made (the last error is raised,
    marked as DeadlineExceeded)."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenSource,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 32,
        on_call: CallObserver | None = None,
        deadline: float | None = None,
        verify: ssl.SSLContext | bool | None = None,
    ) -> None:
        self.on_call = on_call
        self.server = parse_server_url(base_url)
        self.base_url = self.server.base
        self.tokens = tokens
        self.timeout = timeout
        self.deadline = deadline
        self.retry = retry or RetryPolicy()
        self.rng = random.Random()
        self.calls: dict[str, int] = {}
        # Requests in flight adapt up to max_connections (backends/limiter.py). TLS settings go to
        # the pool (http_pool(verify=...)); a transport given (the embedded sandbox's) has its own.
        self.ssl_context = verify or tls_verify()
        self.limiter = AdaptiveLimiter(max_connections)
        self.client = HttpClient(
            transport or http_pool(self.base_url, max_connections=max_connections, verify=self.ssl_context),
            # No read timeout of its own: every attempt is bounded whole (HttpClient.post's bound, at
            # most `timeout`, from before the request is sent), which a per-read timer would only
            # duplicate (aiohttp re-arms it for every response: three timer operations a request).
            connect=min(timeout, 5.0), read=None, pool=timeout, limiter=self.limiter,
        )
        self._urls: dict[tuple[str, str], str] = {}

    async def aclose(self) -> None:
        await self.client.aclose()

    def remaining(self) -> float:
        """Seconds left before the run's deadline (inf without one)."""
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    async def call(self, service: str, method: str, body: dict[str, Any], room: str = "",
                   request_id: str | None = None) -> dict[str, Any]:
        """One logical request: the same X-Livekit-Request-Id on every attempt (as the Go SDK sends
        it). Errors come back typed and located (`error.method`, `error.room`)."""
        try:
            return await self._call(service, method, body, room, request_id or new_request_id())
        except BackendError as exc:
            raise exc.at(method, room) from None

    async def _call(self, service: str, method: str, body: dict[str, Any], room: str,
                    request_id: str) -> dict[str, Any]:
        url = self._urls.get((service, method))
        if url is None:
            url = self._urls[service, method] = f"{self.base_url}/twirp/livekit.{service}/{method}"
        payload = _encode(body).encode()
        server = self.server.display
        attempt = 0
        last_error: BackendError | None = None
        while True:
            left = self.remaining()
            if left <= 0.05:
                # Name the cause when an attempt already failed: the deadline ran out between retries.
                last = f"; last: {last_error}" if last_error is not None else ""
                raise DeadlineExceeded(f"deadline reached before {method} could be sent{last}")
            # One bound for the whole attempt (connect, send, a body that trickles in), never past the deadline.
            budget = min(self.timeout, left)
            headers = {
                "User-Agent": USER_AGENT,
                "Content-Type": "application/json",
                "Authorization": "Bearer " + self.tokens.for_call(method, room),
                REQUEST_ID_HEADER: request_id,
            }
            if method in ROUTED:
                # The server gives up first and answers, rather than our client timing out blind.
                headers["X-Twirp-Timeout-Ms"] = str(max(100, int(min(ROUTED_TIMEOUT, budget * 0.8) * 1000)))
            self.calls[method] = self.calls.get(method, 0) + 1
            log.debug("POST %s/%s room=%s attempt=%d request_id=%s", service, method, room, attempt + 1, request_id)
            started = time.monotonic()
            try:
                # The bound starts once the limiter admits the request: waiting for a slot, a
                # Retry-After pause or a paced turn is not the server being slow (backends/limiter.py).
                # The run's deadline bounds the wait for admission too.
                response = await self.client.post(url, content=payload, headers=headers, bound=budget,
                                                  deadline=self.deadline)
                if response.status_code == 200:
                    result = _json_reply(response, server)
                    self._observe(method, started, "ok")
                    return result
                error: BackendError = _map_error(response, server)
            except BackendError:
                self._observe(method, started, "BackendError")
                raise
            except (TransportError, OSError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError) and self.remaining() <= 0.01:
                    cut = transport_failure(exc, server, left)
                    raise DeadlineExceeded(f"deadline reached during attempt {attempt + 1}; "
                                           f"last: {last_error or cut}") from None
                error = transport_failure(exc, server, budget)
            except InvalidURL:
                raise InvalidServer(f"invalid server URL {server}") from None
            self._observe(method, started, type(error).__name__)
            last_error = error
            attempt += 1
            if not self._should_retry(method, error, attempt):
                if method in NOT_IDEMPOTENT and _outcome_unknown(error):
                    raise OutcomeUnknown(error)
                raise error
            delay = self.retry.backoff(attempt - 1, self.rng)
            if isinstance(error, RateLimited) and error.retry_after is not None:
                delay = min(error.retry_after, self.retry.max_retry_after)
            if delay >= self.remaining() - 0.05:
                raise DeadlineExceeded(f"deadline reached after {attempt} attempt(s); last: {error}")
            log.info("%s failed (%s); retry %d in %.2fs", method, error, attempt, delay)
            await asyncio.sleep(delay)

    def _observe(self, method: str, started: float, outcome: str) -> None:
        if self.on_call is not None:
            self.on_call(method, time.monotonic() - started, outcome)

    def _should_retry(self, method: str, error: BackendError, attempt: int) -> bool:
        if attempt >= self.retry.attempts or not error.retryable:
            return False
        if method in NOT_IDEMPOTENT:
            # A 429 or a refused connection means the server did nothing; anything else may have
            # created the dispatch already: the caller re-checks before trying again.
            return not _outcome_unknown(error)
        return True


def _outcome_unknown(error: BackendError) -> bool:
    """True when the server may have acted: no answer after sending, or a 5xx."""
    if isinstance(error, RateLimited):
        return False
    if isinstance(error, TransportFailure):
        return error.sent
    return isinstance(error, ServerFailure | Unavailable)
