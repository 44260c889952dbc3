"""A Twirp (JSON) client for LiveKit over httpx: per-call tokens, error mapping, retries, timeouts."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ..auth import TokenSource
from .errors import (
    AuthFailed,
    BackendError,
    Conflict,
    InvalidArgument,
    NotFound,
    RateLimited,
    ServerFailure,
    TransportFailure,
    Unavailable,
)
from .limiter import AdaptiveLimiter, LimitedTransport
from .transport import http_transport

log = logging.getLogger("roomctl.twirp")

# Called after every HTTP attempt with (method, seconds, outcome): "ok" or the error class name.
CallObserver = Callable[[str, float, str], None]

# Methods routed over psrpc to the room/participant topic: the server honours X-Twirp-Timeout-Ms.
ROUTED = frozenset(
    {"SendData", "MutePublishedTrack", "UpdateSubscriptions", "UpdateParticipant", "RemoveParticipant",
     "UpdateRoomMetadata", "DeleteRoom", "CreateDispatch", "ListDispatch", "DeleteDispatch"}
)
# Not idempotent: retried only when the request surely never reached the server (livekit-api.md §3.4).
NOT_IDEMPOTENT = frozenset({"CreateDispatch"})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        # Exponential with full jitter.
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def _map_error(response: httpx.Response) -> BackendError:
    status = response.status_code
    try:
        body = response.json()
        code = str(body.get("code", "")) if isinstance(body, dict) else ""
        msg = str(body.get("msg", "")) if isinstance(body, dict) else ""
    except ValueError:
        code, msg = "", ""
    if status == 401 or code == "unauthenticated":
        # Never the server's text: some 401 bodies echo the whole bearer token.
        hint = "the API key or secret is wrong, a grant is missing, or the clocks differ by over a minute"
        return AuthFailed(f"authentication failed (HTTP 401): {hint}", code=code or "unauthenticated", status=status)
    if status == 429 or code == "resource_exhausted":
        retry_after = response.headers.get("retry-after")
        seconds = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
        return RateLimited("rate limited (HTTP 429)", retry_after=seconds, code=code, status=status)
    text = f"{code or 'http ' + str(status)}: {msg}" if msg else (code or f"HTTP {status}")
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


class TwirpClient:
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
    ) -> None:
        self.on_call = on_call
        self.base_url = base_url.rstrip("/")
        if self.base_url.startswith("ws"):
            self.base_url = "http" + self.base_url[2:]
        self.tokens = tokens
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.rng = random.Random()
        self.calls: dict[str, int] = {}
        # Requests in flight adapt up to max_connections (backends/limiter.py). TLS settings go to
        # http_transport(verify=...): httpx ignores AsyncClient(verify=) when given a transport.
        self.limiter = AdaptiveLimiter(max_connections)
        self.client = httpx.AsyncClient(
            transport=LimitedTransport(transport or http_transport(self.base_url, max_connections=max_connections),
                                       self.limiter),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def call(self, service: str, method: str, body: dict[str, Any], room: str = "") -> dict[str, Any]:
        url = f"{self.base_url}/twirp/livekit.{service}/{method}"
        payload = json.dumps(body, separators=(",", ":")).encode()
        attempt = 0
        while True:
            headers = {
                "Content-Type": "application/json",
                "Authorization": "Bearer " + self.tokens.for_call(method, room),
            }
            if method in ROUTED:
                headers["X-Twirp-Timeout-Ms"] = str(int(self.timeout * 1000))
            self.calls[method] = self.calls.get(method, 0) + 1
            log.debug("POST %s/%s room=%s attempt=%d", service, method, room, attempt + 1)
            started = time.monotonic()
            try:
                response = await self.client.post(url, content=payload, headers=headers)
                if response.status_code == 200:
                    result: dict[str, Any] = response.json()
                    self._observe(method, started, "ok")
                    return result
                error: BackendError = _map_error(response)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                error = TransportFailure(f"cannot connect to {self.base_url}: {type(exc).__name__}", sent=False)
            except httpx.PoolTimeout:
                error = TransportFailure("no free connection in the pool", sent=False)
            except httpx.TransportError as exc:
                error = TransportFailure(f"no answer from {self.base_url}: {type(exc).__name__}", sent=True)
            self._observe(method, started, type(error).__name__)
            attempt += 1
            if not self._should_retry(method, error, attempt):
                raise error
            delay = self.retry.backoff(attempt - 1, self.rng)
            if isinstance(error, RateLimited) and error.retry_after is not None:
                delay = min(error.retry_after, self.retry.max_retry_after)
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
            # created the dispatch already, and a second one would start a second agent.
            return isinstance(error, RateLimited) or (isinstance(error, TransportFailure) and not error.sent)
        return True
