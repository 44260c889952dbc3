"""The plugNmeet backend: `/auth/room/*` over httpx with HMAC-SHA256 signatures (plugnmeet-api.md §1-§4).

Business errors arrive as HTTP 200 with `status: false`; they are mapped to typed errors by
`status_code`. The signature is computed over the exact bytes sent (lowercase hex)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import ssl
from typing import TYPE_CHECKING, Any

from ..observed import ObservedPnmRoom
from .errors import (
    AuthFailed,
    BackendError,
    Conflict,
    InvalidArgument,
    NotFound,
    ServerFailure,
)
from .failures import not_twirp, parse_server_url, tls_verify, transport_failure
from .transport import http_transport

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("roomctl.plugnmeet")

# create/end/getActiveRoomInfo share a per-room lock held up to ~15-20 s after endRoom (§3).
LOCK_MESSAGE = "operation is currently locked"


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _business_error(method: str, reply: dict[str, Any]) -> BackendError:
    code = str(reply.get("status_code", ""))
    text = f"plugNmeet {method}: {reply.get('msg', '')} ({code})"
    if code in ("NOT_FOUND", "ROOM_NOT_FOUND", "ROOM_NOT_ACTIVE", "USER_NOT_FOUND"):
        return NotFound(text, code=code)
    if code in ("INVALID_PARAMETERS", "MISSING_REQUIRED_PARAMETER"):
        return InvalidArgument(text, code=code)
    if code in ("INVALID_API_KEY", "INVALID_TOKEN_OR_SIGNATURE", "PERMISSION_DENIED"):
        return AuthFailed(text, code=code)
    if LOCK_MESSAGE in str(reply.get("msg", "")):
        return Conflict(text, code="LOCKED")
    if code == "INTERNAL_SERVER_ERROR":
        return ServerFailure(text, code=code)
    return BackendError(text, code=code)


class PlugNmeetBackend:
    def __init__(self, url: str, api_key: str, api_secret: str, *,
                 transport: httpx.AsyncBaseTransport | None = None, timeout: float = 30.0,
                 attempts: int = 4, lock_wait: float = 45.0, verify: ssl.SSLContext | bool | None = None) -> None:
        self.url = parse_server_url(url).base  # userinfo removed: safe to print
        self.timeout = timeout
        self.api_key = api_key
        self._secret = api_secret
        self.attempts = attempts
        self.lock_wait = lock_wait
        import httpx  # here, not at import: a LiveKit-only run never loads it (~20 ms of start-up)

        # 30 s: a create straight after endRoom may block ~15 s on the room lock (§3).
        self._failures = (httpx.TransportError, OSError, TimeoutError)
        self.client = httpx.AsyncClient(
            transport=transport or http_transport(self.url, max_connections=16, verify=verify or tls_verify()),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5)))

    def __repr__(self) -> str:
        return f"PlugNmeetBackend(url={self.url!r})"

    async def aclose(self) -> None:
        await self.client.aclose()

    async def call(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "API-KEY": self.api_key,
                   "HASH-SIGNATURE": signature(self._secret, body)}
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(self.timeout):  # the whole answer, a slow body included
                    response = await self.client.post(f"{self.url}/auth/room/{method}", content=body,
                                                      headers=headers)
            except self._failures as exc:
                error: BackendError = transport_failure(exc, self.url, self.timeout)
            else:
                if response.status_code == 401:
                    raise AuthFailed("plugNmeet refused the request (HTTP 401): check PLUGNMEET_API_KEY and "
                                     "PLUGNMEET_API_SECRET", status=401)
                if response.status_code == 200:
                    try:
                        reply: dict[str, Any] = response.json()
                        reply.get("status")
                    except (ValueError, AttributeError):
                        raise not_twirp(self.url, f"/auth/room/{method}", 200,
                                        response.headers.get("content-type", ""), "plugNmeet") from None
                    if reply.get("status") is True:
                        return reply
                    raise _business_error(method, reply)
                if response.status_code == 404:
                    raise InvalidArgument(f"{self.url}/auth/room/{method}: not found (is this a plugNmeet server?)",
                                          status=404)
                error = ServerFailure(f"plugNmeet {method}: HTTP {response.status_code}", status=response.status_code)
            # Every method used here is safe to repeat: create on a live room returns it unchanged.
            if attempt >= self.attempts:
                raise error
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))

    async def active_rooms(self) -> list[ObservedPnmRoom]:
        """One getActiveRoomsInfo. With zero rooms the server answers NOT_FOUND: an empty list (§3)."""
        try:
            reply = await self.call("getActiveRoomsInfo", {})
        except NotFound:
            return []
        return sorted((ObservedPnmRoom.from_json(r) for r in reply.get("rooms") or []), key=lambda r: r.room_id)

    async def create(self, request: dict[str, Any]) -> ObservedPnmRoom:
        """Create; while an endRoom still holds the room's lock, wait and try again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_wait
        while True:
            try:
                reply = await self.call("create", request)
            except Conflict:
                if loop.time() >= deadline:
                    raise
                log.info("room %s is locked by a recent endRoom; retrying create", request.get("room_id"))
                await asyncio.sleep(1.0)
                continue
            return ObservedPnmRoom.from_json({"room_info": reply.get("room_info") or {}})

    async def end_room(self, room_id: str) -> bool:
        """False when the room was not active (already gone)."""
        try:
            await self.call("endRoom", {"room_id": room_id})
        except NotFound:
            return False
        return True

    async def wait_ended(self, room_id: str, timeout: float = 30.0) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reply = await self.call("isRoomActive", {"room_id": room_id})
            if not reply.get("is_active"):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.5)

    async def join_token(self, room_id: str, user: dict[str, Any]) -> str:
        reply = await self.call("getJoinToken", {"room_id": room_id, "user_info": user})
        return str(reply.get("token", ""))
