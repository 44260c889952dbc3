"""The sandbox as one ASGI app: LiveKit Twirp under /twirp/, plugNmeet under /auth/room/, and a
test API under /sandbox/ that is *not* part of LiveKit (see README "Sandbox test API").

The same app is mounted in-process through httpx (the embedded default) or served on a socket by
`roomctl sandbox serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from google.protobuf import json_format

from ..asgi import Message, Receive, Scope, Send
from ..asgi import read_body as _read_body
from ..asgi import respond as _respond
from . import protojson, twirp
from .common import Clock, TwirpError
from .defaults import DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_PNM_KEY, DEFAULT_PNM_SECRET
from .faults import FaultPlan
from .jwtauth import MiddlewareAuthError, extract_token, verify
from .livekit import JoinRefused, LiveKitOptions, LiveKitState
from .plugnmeet import PlugNmeetState, PnmOptions, sign
from .webhooks import WebhookSender

MAX_BODY_BYTES = 10 * 1024 * 1024


TEMP_PREFIX = ".sandbox-"
# A save takes milliseconds: a temp file this old was left by a run that was killed mid-write.
STALE_TEMP_SECONDS = 60.0


class SandboxStateError(Exception):
    """The state file cannot be read or written: one line naming it (and how to reset it)."""


def _remove_stale_temps(folder: Path) -> None:
    now = time.time()
    for leftover in folder.glob(f"{TEMP_PREFIX}*.json"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > STALE_TEMP_SECONDS:
                leftover.unlink()


class ConnectionDropped(Exception):
    """Raised to make the server drop the connection without an answer (fault injection)."""


@dataclass
class SandboxConfig:
    api_keys: dict[str, str] = field(default_factory=lambda: {DEFAULT_API_KEY: DEFAULT_API_SECRET})
    pnm_api_key: str = DEFAULT_PNM_KEY
    pnm_api_secret: str = DEFAULT_PNM_SECRET
    state_file: Path | None = None
    # Where to POST LiveKit webhooks (None: none are sent), signed with this key (default: the first).
    webhook_url: str | None = None
    webhook_api_key: str | None = None


class Sandbox:
    """State plus the ASGI entry point."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.clock = Clock()
        self.livekit = LiveKitState(self.clock, LiveKitOptions())
        self.plugnmeet = PlugNmeetState(self.clock, PnmOptions())
        self.faults = FaultPlan()
        self.requests: Counter[str] = Counter()
        # Per room: which methods named it (the request's `room`, or CreateRoom's `name`).
        self.room_requests: dict[str, Counter[str]] = {}
        self.dirty = False
        key = self.config.webhook_api_key or next(iter(self.config.api_keys))
        if key not in self.config.api_keys:
            raise ValueError(f"webhook API key {key!r} is not one of the sandbox's API keys")
        self.webhooks = WebhookSender(self.config.webhook_url, key, self.config.api_keys[key], self.clock)
        self.livekit.notify = self.webhooks.emit
        if self.config.state_file is not None and self.config.state_file.exists():
            self.load(self.config.state_file)

    # ---- persistence --------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {
            "version": 1,
            "clock_offset": self.clock.offset,
            "livekit": self.livekit.dump(),
            "plugnmeet": self.plugnmeet.dump(),
        }

    def load(self, path: Path) -> None:
        """Read a saved state; anything unreadable or malformed is one SandboxStateError naming the
        file and how to reset it (the file is left as it is: it may be worth a look)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, found {type(data).__name__}")
            if data.get("version", 1) != 1:
                raise ValueError(f"unknown version {data.get('version')!r}")
            offset = float(data.get("clock_offset", 0.0))
            if not math.isfinite(offset):
                raise ValueError("clock_offset is not a finite number")
            livekit, plugnmeet = data.get("livekit", {}), data.get("plugnmeet", {})
            if not isinstance(livekit, dict) or not isinstance(plugnmeet, dict):
                raise ValueError("'livekit' and 'plugnmeet' must be objects")
            self.clock.offset = offset
            self.livekit.load(livekit)
            self.plugnmeet.load(plugnmeet)
        except OSError as exc:
            raise SandboxStateError(f"cannot read sandbox state {path}: {exc.strerror or exc}") from None
        except (ValueError, TypeError, KeyError, AttributeError, json_format.ParseError) as exc:
            # JSONDecodeError and UnicodeDecodeError are ValueErrors: a truncated, empty or garbage file.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SandboxStateError(
                f"damaged sandbox state {path} ({type(exc).__name__}: {reason[:200]}); "
                f"delete it to start from an empty sandbox: rm {path}") from None

    def save(self, path: Path | None = None) -> None:
        """Write the state atomically (temp file in the same folder, fsync, rename): a crash
        mid-write never leaves a torn file, and a temp file left by a killed run is removed."""
        target = path or self.config.state_file
        if target is None:
            return
        if target.parent.exists() and not target.parent.is_dir():
            raise SandboxStateError(f"cannot write sandbox state {target}: {target.parent} is not a folder")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_temps(target.parent)
            fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".json", dir=target.parent)
        except OSError as exc:
            raise SandboxStateError(f"cannot write sandbox state {target}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.dump(), handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise SandboxStateError(f"cannot write sandbox state {target}: {exc.strerror or exc}") from None
            raise
        self.dirty = False

    # ---- ASGI ---------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        while "//" in path:
            path = path.replace("//", "/")  # RemoveDoubleSlashes (livekit-api.md §1.1)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if path.startswith("/twirp/"):
            await self._twirp(scope, path, headers, receive, send)
        elif path.startswith("/auth/"):
            await self._plugnmeet(scope, path, headers, receive, send)
        elif path.startswith("/sandbox"):
            await self._test_api(scope, path, receive, send)
        elif path == "/" and scope["method"] in ("GET", "HEAD"):
            await _respond(send, 200, b"OK", "text/plain; charset=utf-8")
        else:
            await _respond(send, 404, b"404 page not found\n", "text/plain; charset=utf-8")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        saver: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.config.state_file is not None:
                    saver = asyncio.create_task(self._autosave())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if saver is not None:
                    saver.cancel()
                await self.webhooks.aclose()
                if self.dirty:
                    self.save()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _autosave(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self.dirty:
                try:
                    self.save()
                except SandboxStateError as exc:  # e.g. disk full: keep serving, say so, retry later
                    print(f"roomctl sandbox: error: {exc}", file=sys.stderr, flush=True)
                    await asyncio.sleep(5)

    async def _apply_faults(self, method: str, send: Send) -> Send | None:
        """None when the fault already answered (or dropped) the request; else the `send` to answer
        with, which for a lost answer drops the connection instead (after the request was carried out)."""
        decision = self.faults.decide(method)
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.outcome == "pass":
            return send
        if decision.outcome == "lose":
            async def lose(message: Message) -> None:
                if message["type"] == "http.response.start":
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [(b"content-length", b"64")]})
                    raise ConnectionDropped(method)

            return lose
        if decision.outcome in ("throttle", "rate_limited"):
            err = TwirpError("resource_exhausted", "rate limit exceeded")
            await _respond_json(send, 429, err.body(), {"retry-after": str(decision.retry_after)})
        elif decision.outcome == "error":
            await _respond_json(send, 503, TwirpError("unavailable", "injected fault").body())
        else:
            if decision.outcome == "hang":
                await asyncio.sleep(decision.hang_seconds)
            # Start an answer that never completes: the server then drops the connection, and
            # the client sees a transport error, as with a reset.
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
            raise ConnectionDropped(method)
        return None

    async def _twirp(self, scope: Scope, path: str, headers: dict[str, str], receive: Receive, send: Send) -> None:
        verb = scope["method"]
        # "RoomService.ListRooms": the key of request counts and of per-method faults.
        method_key = (path[len("/twirp/livekit.") :] if path.startswith("/twirp/livekit.") else path).replace("/", ".")
        self.requests[method_key] += 1
        answer = await self._apply_faults(method_key, send)
        if answer is None:
            return
        send = answer
        body = await _read_body(receive, MAX_BODY_BYTES)
        if body is None:
            await _respond(send, 413, b"request body too large", "text/plain; charset=utf-8")
            return
        try:
            # The auth middleware runs before Twirp routing (livekit-api.md §1.6).
            query = parse_qs(scope.get("query_string", b"").decode())
            token = extract_token(headers.get("authorization"), (query.get("access_token") or [None])[0])
            claims = verify(token, self.config.api_keys, time.time()) if token is not None else None
        except MiddlewareAuthError as exc:
            await _respond(send, 401, exc.text.encode(), "text/plain; charset=utf-8")
            return
        try:
            call = twirp.route(verb, path, headers.get("content-type"))
            request = twirp.decode_request(call, body)
            self._count_room(method_key, request)
            timeout_header = headers.get("x-twirp-timeout-ms")
            timeout_ms = int(timeout_header) if timeout_header and timeout_header.isdigit() else None
            response = await twirp.invoke(self.livekit, call, claims, request, timeout_ms)
        except TwirpError as err:
            await _respond_json(send, err.status, err.body(), err.headers)
            return
        if call.name not in ("ListRooms", "ListParticipants", "GetParticipant", "ListDispatch"):
            self.dirty = True
        payload, content_type = twirp.encode_response(call, response)
        await _respond(send, 200, payload, content_type)

    async def _plugnmeet(
        self, scope: Scope, path: str, headers: dict[str, str], receive: Receive, send: Send
    ) -> None:
        name = path.rsplit("/", 1)[-1]
        method_key = f"plugnmeet.{name}"
        self.requests[method_key] += 1
        if scope["method"] != "POST" or not path.startswith("/auth/room/"):
            await _respond(send, 404, b"not found", "text/plain; charset=utf-8")
            return
        answer = await self._apply_faults(method_key, send)
        if answer is None:
            return
        send = answer
        body = await _read_body(receive, 50 * 1024 * 1024)
        if body is None:
            await _respond(send, 413, b"Request Entity Too Large", "text/plain; charset=utf-8")
            return
        state = self.plugnmeet
        auth_error = self._pnm_auth(headers, body)
        if auth_error is not None:
            await _respond_json(send, 401, state.reply(False, auth_error[0], auth_error[1]))
            return
        try:
            data = json.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            await _respond_json(send, 200, state.reply(False, f"proto: syntax error: {exc}", "INVALID_PARAMETERS"))
            return
        if data.get("room_id"):
            self.room_requests.setdefault(str(data["room_id"]), Counter())[method_key] += 1
        handlers: dict[str, Callable[[], Awaitable[dict[str, Any]] | dict[str, Any]]] = {
            "create": lambda: state.create(data),
            "isRoomActive": lambda: state.is_room_active(data),
            "getActiveRoomInfo": lambda: state.get_active_room_info(data),
            "getActiveRoomsInfo": state.get_active_rooms_info,
            "endRoom": lambda: state.end_room(data),
            "getJoinToken": lambda: state.get_join_token(data, self.config.pnm_api_key, self.config.pnm_api_secret),
            "fetchPastRooms": lambda: state.fetch_past_rooms(data),
        }
        handler = handlers.get(name)
        if handler is None:
            await _respond(send, 404, b"not found", "text/plain; charset=utf-8")
            return
        result = handler()
        reply = await result if asyncio.iscoroutine(result) else result
        assert isinstance(reply, dict)
        if name in ("create", "endRoom", "getJoinToken"):
            self.dirty = True
        await _respond_json(send, 200, reply)

    def _pnm_auth(self, headers: dict[str, str], body: bytes) -> tuple[str, str] | None:
        key = headers.get("api-key")
        if not key:
            return ("Missing API-KEY header.", "MISSING_REQUIRED_PARAMETER")
        if key != self.config.pnm_api_key:
            return ("Invalid API key provided.", "INVALID_API_KEY")
        signature = headers.get("hash-signature")
        if not signature:
            return ("Missing HASH-SIGNATURE header.", "MISSING_REQUIRED_PARAMETER")
        signed = body
        if "multipart/form-data" in headers.get("content-type", ""):
            room_id = headers.get("room-id")
            if not room_id:
                return ("Missing Room-Id header for multipart request.", "MISSING_REQUIRED_PARAMETER")
            signed = room_id.encode()
        # Lowercase hex over the exact bytes, compared in constant time: uppercase hex fails.
        if not hmac.compare_digest(signature.encode(), sign(self.config.pnm_api_secret, signed).encode()):
            return ("Failed to verify provided authentication details.", "INVALID_TOKEN_OR_SIGNATURE")
        return None

    # ---- /sandbox test API --------------------------------------------------------------------
    async def _test_api(self, scope: Scope, path: str, receive: Receive, send: Send) -> None:
        verb = scope["method"]
        body = await _read_body(receive, MAX_BODY_BYTES) or b""
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            await _respond_json(send, 400, {"error": "body is not JSON"})
            return
        try:
            status, result = self._test_call(verb, path.rstrip("/"), data)
        except (ValueError, KeyError, TypeError) as exc:
            status, result = 400, {"error": str(exc)}
        await _respond_json(send, status, result)

    def _count_room(self, method_key: str, request: Any) -> None:
        room = getattr(request, "room", "") or (getattr(request, "name", "") if method_key.endswith("CreateRoom") else "")
        named = [room] if isinstance(room, str) and room else list(getattr(request, "names", ()))  # ListRooms
        for name in named:
            self.room_requests.setdefault(name, Counter())[method_key] += 1

    def _test_call(self, verb: str, path: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        lk = self.livekit
        lk.expire(force=True)
        if path == "/sandbox" and verb == "GET":
            return 200, {"note": "roomctl sandbox test API; not part of LiveKit", "endpoints": TEST_ENDPOINTS}
        if path == "/sandbox/join" and verb == "POST":
            token = str(data.get("token", ""))
            try:
                claims = verify(token, self.config.api_keys, time.time())
            except MiddlewareAuthError as exc:
                return 401, {"error": exc.text}
            try:
                participant = lk.join(claims.raw, claims.identity)
            except JoinRefused as exc:
                return 403, {"error": str(exc)}
            self.dirty = True
            return 200, {"participant": protojson.encode(participant)}
        if path == "/sandbox/leave" and verb == "POST":
            try:
                lk.leave(str(data["room"]), str(data["identity"]))
            except KeyError:
                return 404, {"error": "participant not in room"}
            self.dirty = True
            return 200, {}
        if path == "/sandbox/publish" and verb == "POST":
            try:
                track = lk.publish(
                    str(data["room"]), str(data["identity"]), str(data.get("type", "AUDIO")),
                    str(data.get("source", "MICROPHONE")), str(data.get("name", "")),
                    str(data.get("mime_type", "")), str(data.get("mid", "")), str(data.get("cid", "")),
                )
            except TwirpError as err:
                return 404, {"error": err.msg}
            except JoinRefused as exc:
                return 403, {"error": str(exc)}
            self.dirty = True
            return 200, {"track": protojson.encode(track)}
        if path == "/sandbox/participant" and verb == "POST":
            identity = str(data["identity"])
            live = lk.rooms.get(str(data["room"]))
            if live is None or identity not in live.participants:
                return 404, {"error": "participant not in room"}
            return 200, {"participant": protojson.encode(live.participants[identity]),
                         "permission_changed_at": live.permission_changed.get(identity)}
        if path == "/sandbox/webhooks":
            if verb == "PUT":
                unknown = set(data) - {"url", "drop"}
                if unknown:
                    raise ValueError(f"unknown webhook settings: {sorted(unknown)}")
                if "url" in data:
                    self.webhooks.url = str(data["url"]) if data["url"] else None
                if "drop" in data:
                    self.webhooks.drop = bool(data["drop"])
            return 200, self.webhooks.describe()
        if path == "/sandbox/clock" and verb == "POST":
            self.clock.advance(float(data.get("advance", 0)))
            lk.expire(force=True)
            self.dirty = True
            return 200, {"now": self.clock.now()}
        if path == "/sandbox/requests":
            if verb == "DELETE":
                self.requests.clear()
                self.room_requests.clear()
            return 200, {"counts": dict(self.requests), "total": sum(self.requests.values()),
                         "by_room": {room: dict(c) for room, c in sorted(self.room_requests.items())}}
        if path == "/sandbox/faults":
            if verb == "PUT":
                self.faults.configure(data)
            elif verb == "DELETE":
                self.faults.configure({})
            return 200, self.faults.describe()
        if path == "/sandbox/options":
            if verb == "PUT":
                self.set_options(data)
            return 200, self.options()
        if path == "/sandbox/plugnmeet/participants" and verb == "POST":
            room = self.plugnmeet.active(str(data["room_id"]))
            if room is None:
                return 404, {"error": "room not active"}
            room.joined_participants = int(data["count"])
            return 200, {}
        if path == "/sandbox/reset" and verb == "POST":
            self.livekit.rooms.clear()
            self.plugnmeet.rooms.clear()
            self.plugnmeet.past.clear()
            self.requests.clear()
            self.room_requests.clear()
            self.faults.configure({})
            self.dirty = True
            return 200, {}
        return 404, {"error": f"no test endpoint {verb} {path}"}

    def options(self) -> dict[str, Any]:
        return {
            "routed_delay": self.livekit.options.routed_delay,
            "enable_remote_unmute": self.livekit.options.enable_remote_unmute,
            "auto_create": self.livekit.options.auto_create,
            "pnm_ignore_false_defaults": self.plugnmeet.options.ignore_false_defaults,
            "pnm_end_lock_seconds": self.plugnmeet.options.end_lock_seconds,
        }

    def set_options(self, data: dict[str, Any]) -> None:
        known = set(self.options())
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown options: {sorted(unknown)}")
        lk, pnm = self.livekit.options, self.plugnmeet.options
        lk.routed_delay = float(data.get("routed_delay", lk.routed_delay))
        lk.enable_remote_unmute = bool(data.get("enable_remote_unmute", lk.enable_remote_unmute))
        lk.auto_create = bool(data.get("auto_create", lk.auto_create))
        pnm.ignore_false_defaults = bool(data.get("pnm_ignore_false_defaults", pnm.ignore_false_defaults))
        pnm.end_lock_seconds = float(data.get("pnm_end_lock_seconds", pnm.end_lock_seconds))


TEST_ENDPOINTS = {
    "POST /sandbox/join": "{token} join a simulated participant with a real join token",
    "POST /sandbox/leave": "{room, identity}",
    "POST /sandbox/publish": "{room, identity, type: AUDIO|VIDEO, source: MICROPHONE|CAMERA|..., name, "
    "mime_type, mid, cid (the client SDK's own values, optional)}",
    "POST /sandbox/participant": "{room, identity} the participant, and when UpdateParticipant last changed its "
    "permission (permission_changed_at, sandbox clock)",
    "GET|PUT /sandbox/webhooks": "{url, drop: bool} where webhooks go; drop loses every event (as a real "
    "server's queue may); GET also counts sent/retried/failed/dropped_*",
    "POST /sandbox/clock": "{advance: seconds} move the fake clock (room expiry)",
    "GET|DELETE /sandbox/requests": "request counts per method (and per room: by_room) / reset them",
    "GET|PUT|DELETE /sandbox/faults": "{methods: {'*'|'RoomService.ListRooms': {latency_ms, jitter_ms, error_rate, "
    "throttle_rate, retry_after, reset_rate, hang_rate, hang_seconds, lose_rate}}, rate_limit_per_min, seed}",
    "GET|PUT /sandbox/options": "{routed_delay, enable_remote_unmute, auto_create, pnm_ignore_false_defaults, "
    "pnm_end_lock_seconds}",
    "POST /sandbox/plugnmeet/participants": "{room_id, count} set a plugNmeet room's joined participants",
    "POST /sandbox/reset": "forget every room",
}


async def _respond_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    await _respond(send, status, json.dumps(body, separators=(",", ":")).encode(), "application/json", headers)

