"""In-memory plugNmeet server API (`/auth/room/*`), per plugnmeet-api.md §1-§5.

Business errors are HTTP 200 with `status: false`; only auth failures are 401. A live room can
never be changed: create on an active room returns it unchanged. endRoom answers at once and holds
the room's lock while it "cleans up", so a create straight after it waits (or times out).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .common import Clock

ROOM_ID_RE = re.compile(r"^[a-zA-Z0-9-_]+$")
LOCK_WAIT_SECONDS = 15.0

# The server's defaults for RoomCreateFeatures, emitted in full as protojson does (§5).
DEFAULT_FEATURES: dict[str, Any] = {
    "allow_webcams": True,
    "mute_on_start": False,
    "allow_screen_share": True,
    "allow_rtmp": True,
    "admin_only_webcams": False,
    "allow_view_other_webcams": True,
    "allow_view_other_users_list": True,
    "room_duration": "0",
    "enable_analytics": True,
    "allow_virtual_bg": True,
    "allow_raise_hand": True,
    "allow_reactions": True,
    "auto_gen_user_id": False,
    "recording_features": {
        "is_allow": True, "is_allow_cloud": True, "is_allow_local": True,
        "enable_auto_cloud_recording": False, "only_record_admin_webcams": False,
    },
    "chat_features": {
        "is_allow": True, "is_allow_file_upload": True,
        "allowed_file_types": ["jpg", "png", "zip", "pdf", "docx"], "max_file_size": "50",
    },
    "shared_note_pad_features": {"is_allow": True, "is_active": False, "visible": False, "note_pad_id": ""},
    "whiteboard_features": {
        "is_allow": True, "visible": False, "whiteboard_file_id": "", "file_name": "",
        "file_path": "", "total_pages": 0,
    },
    "external_media_player_features": {"is_allow": True, "is_active": False, "shared_by": "", "url": ""},
    "waiting_room_features": {"is_active": False, "waiting_room_msg": ""},
    "breakout_room_features": {"is_allow": True, "is_active": False, "allowed_number_rooms": 6},
    "display_external_link_features": {"is_allow": True, "is_active": False, "link": "", "shared_by": ""},
    "ingress_features": {"is_allow": True, "input_type": "RTMP_INPUT", "url": "", "stream_key": "", "is_active": False},
    "end_to_end_encryption_features": {
        "is_enabled": False, "included_chat_messages": False, "included_whiteboard": False,
        "enabled_self_insert_encryption_key": False,
    },
    "polls_features": {"is_allow": True, "is_active": False},
    "insights_features": {
        "is_allow": True,
        "transcription_features": {"is_allow": True, "is_allow_translation": True, "is_allow_speech_synthesis": True},
        "chat_translation_features": {"is_allow": True},
        "ai_features": {
            "is_allow": True,
            "ai_text_chat_features": {"is_allow": True},
            "meeting_summarization_features": {"is_allow": True},
        },
    },
    "sip_dial_in_features": {"is_allow": True, "enable_dial_in_on_create": False, "hide_phone_number": False},
    "external_broadcasting_features": {"is_allow": True, "is_allow_rtmp": True},
}

DEFAULT_LOCKS: dict[str, bool] = {
    "lock_microphone": False,
    "lock_webcam": False,
    "lock_screen_sharing": True,
    "lock_chat": False,
    "lock_chat_send_message": False,
    "lock_chat_file_share": False,
    "lock_private_chat": False,
    "lock_whiteboard": True,
    "lock_shared_notepad": True,
    "lock_reactions": False,
}

# Fields declared `optional` in the proto: an explicit false is honoured even on v2.3+ (§5).
OPTIONAL_FEATURES = frozenset(
    {"allow_virtual_bg", "allow_raise_hand", "allow_reactions", "auto_gen_user_id", "room_duration", "allow_rtmp"}
)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _snake_keys(value: Any, free_form: bool = False) -> Any:
    if isinstance(value, dict):
        if free_form:
            return dict(value)
        return {_snake(k): _snake_keys(v, free_form=_snake(k) == "extra_data") for k, v in value.items()}
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    return value


def merge_features(defaults: dict[str, Any], requested: dict[str, Any], honour_false: bool) -> dict[str, Any]:
    """proto.Merge of the request over the defaults: on v2.3+ a false never overrides a true (§5)."""
    out = copy.deepcopy(defaults)
    for key, value in requested.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_features(out[key], value, honour_false)
        elif value is False and not honour_false and key not in OPTIONAL_FEATURES:
            continue  # a zero scalar is "unpopulated", so the default true survives
        else:
            out[key] = value
    # A parent that is off clears its children (create_room.go:33-57).
    if out.get("is_allow") is False:
        for key, value in out.items():
            if key != "is_allow" and isinstance(value, bool):
                out[key] = False
    return out


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class PnmRoom:
    room_id: str
    sid: str
    metadata: dict[str, Any]
    empty_timeout: int
    max_participants: int
    creation_time: int
    joined_participants: int = 0
    ending: bool = False


@dataclass
class PnmOptions:
    # v2.3+ servers silently ignore `false` for default-true non-optional booleans (§5, 🔒).
    ignore_false_defaults: bool = True
    # How long endRoom's asynchronous cleanup holds the room lock (real: up to ~10-20 s).
    end_lock_seconds: float = 1.0


@dataclass
class PlugNmeetState:
    clock: Clock
    options: PnmOptions = field(default_factory=PnmOptions)
    rooms: dict[str, PnmRoom] = field(default_factory=dict)
    past: list[dict[str, Any]] = field(default_factory=list)
    locks: dict[str, float] = field(default_factory=dict)  # room_id -> monotonic release time

    # ---- helpers ------------------------------------------------------------------------------
    @staticmethod
    def reply(ok: bool, msg: str, code: str, **extra: Any) -> dict[str, Any]:
        return {"status": ok, "msg": msg, "status_code": code, **extra}

    def _settle(self) -> None:
        now = time.monotonic()
        for room_id, until in list(self.locks.items()):
            if now >= until:
                del self.locks[room_id]
                room = self.rooms.get(room_id)
                if room is not None and room.ending:
                    del self.rooms[room_id]
                    self.past.append(self._past_entry(room))

    async def _wait_lock(self, room_id: str) -> bool:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            self._settle()
            if room_id not in self.locks:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _info(self, room: PnmRoom) -> dict[str, Any]:
        return {
            "room_title": room.metadata["room_title"],
            "room_id": room.room_id,
            "sid": room.sid,
            "joined_participants": str(room.joined_participants),
            "is_running": 1,
            "is_recording": 0,
            "is_active_rtmp": 0,
            "webhook_url": room.metadata.get("webhook_url", ""),
            "is_breakout_room": 0,
            "parent_room_id": "",
            "creation_time": str(room.creation_time),
            "metadata": json.dumps(room.metadata, separators=(",", ":")),
        }

    def _past_entry(self, room: PnmRoom) -> dict[str, Any]:
        ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.now()))
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(room.creation_time))
        return {
            "room_title": room.metadata["room_title"], "room_id": room.room_id, "room_sid": room.sid,
            "joined_participants": str(room.joined_participants), "webhook_url": room.metadata.get("webhook_url", ""),
            "created": created, "ended": ended,
        }

    def active(self, room_id: str) -> PnmRoom | None:
        self._settle()
        room = self.rooms.get(room_id)
        return room if room is not None and not room.ending else None

    # ---- API ----------------------------------------------------------------------------------
    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        req = _snake_keys(body)
        room_id = req.get("room_id")
        error = _validate_create(req)
        if error:
            return self.reply(False, error, "INVALID_PARAMETERS")
        assert isinstance(room_id, str)
        if not await self._wait_lock(room_id):
            return self.reply(
                False,
                f"timeout waiting to acquire lock for room {room_id}, operation is currently locked",
                "INTERNAL_SERVER_ERROR",
            )
        existing = self.active(room_id)
        if existing is not None:
            # Not an upsert: the existing room comes back and the request is discarded (§3).
            return self.reply(True, "success", "SUCCESS", room_info=self._info(existing))
        meta_in = req["metadata"]
        features = merge_features(
            DEFAULT_FEATURES, meta_in.get("room_features") or {}, not self.options.ignore_false_defaults
        )
        locks = {**DEFAULT_LOCKS, **(meta_in.get("default_lock_settings") or {})}
        metadata = {
            "room_title": meta_in["room_title"],
            "welcome_message": meta_in.get("welcome_message", ""),
            "is_recording": False,
            "is_active_rtmp": False,
            "is_breakout_room": False,
            "parent_room_id": "",
            "webhook_url": meta_in.get("webhook_url", ""),
            "logout_url": meta_in.get("logout_url", ""),
            "started_at": str(int(self.clock.now())),
            "room_features": features,
            "default_lock_settings": locks,
            "copyright_conf": {"display": True, "text": "Powered by plugNmeet"},
            "metadata_id": str(uuid.uuid4()),
            "extra_data": dict(meta_in.get("extra_data") or {}),
        }
        timeout = int(req.get("empty_timeout") or 0)
        room = PnmRoom(
            room_id=room_id,
            sid=str(uuid.uuid4()),
            metadata=metadata,
            empty_timeout=timeout if timeout >= 120 else 1800,  # under 120 becomes 1800 (§3)
            max_participants=int(req.get("max_participants") or 0),
            creation_time=int(self.clock.now()),
        )
        self.rooms[room_id] = room
        return self.reply(True, "success", "SUCCESS", room_info=self._info(room))

    def is_room_active(self, body: dict[str, Any]) -> dict[str, Any]:
        room_id = _snake_keys(body).get("room_id") or ""
        if not room_id:
            return self.reply(False, "validation error: room_id: value is required", "INVALID_PARAMETERS")
        self._settle()
        room = self.rooms.get(room_id)
        if room is None:
            return self.reply(True, "room not found", "ROOM_NOT_FOUND", is_active=False)
        if room.ending:
            return self.reply(True, "room is not active", "ROOM_NOT_ACTIVE", is_active=False)
        return self.reply(True, "room is active", "SUCCESS", is_active=True)

    async def get_active_room_info(self, body: dict[str, Any]) -> dict[str, Any]:
        room_id = _snake_keys(body).get("room_id") or ""
        if not room_id:
            return self.reply(False, "validation error: room_id: value is required", "INVALID_PARAMETERS")
        await self._wait_lock(room_id)
        room = self.active(room_id)
        if room is None:
            return self.reply(False, "room not found in active state", "ROOM_NOT_FOUND", room=None)
        return self.reply(True, "success", "SUCCESS", room={"room_info": self._info(room), "participants_info": []})

    def get_active_rooms_info(self) -> dict[str, Any]:
        self._settle()
        rooms = [r for r in self.rooms.values() if not r.ending]
        if not rooms:
            return self.reply(False, "no active room found", "NOT_FOUND", rooms=[])
        return self.reply(
            True, "success", "SUCCESS",
            rooms=[{"room_info": self._info(r), "participants_info": []} for r in rooms],
        )

    async def end_room(self, body: dict[str, Any]) -> dict[str, Any]:
        room_id = _snake_keys(body).get("room_id") or ""
        if not room_id:
            return self.reply(False, "validation error: room_id: value is required", "INVALID_PARAMETERS")
        self._settle()
        room = self.rooms.get(room_id)
        if room is not None and room.ending:
            return self.reply(True, "success", "SUCCESS")  # an end already in progress
        if room is None:
            return self.reply(False, "room not found or not active", "ROOM_NOT_FOUND")
        room.ending = True
        self.locks[room_id] = time.monotonic() + self.options.end_lock_seconds
        return self.reply(True, "success", "SUCCESS")

    def get_join_token(self, body: dict[str, Any], api_key: str, secret: str) -> dict[str, Any]:
        import jwt

        req = _snake_keys(body)
        room_id = req.get("room_id") or ""
        user = req.get("user_info") or {}
        if not user.get("name"):
            return self.reply(False, "validation error: user_info.name: value is required", "INVALID_PARAMETERS")
        user_id = user.get("user_id") or ""
        if not ROOM_ID_RE.match(user_id):
            return self.reply(False, "user_id contains invalid characters", "INVALID_PARAMETERS")
        room = self.active(room_id)
        if room is None:
            return self.reply(False, "room is not active", "ROOM_NOT_FOUND")
        now = int(time.time())  # token validity is real time; the fake clock moves rooms only
        token = jwt.encode(
            {
                "iss": api_key, "sub": user_id, "nbf": now, "exp": now + 600, "name": user["name"],
                "user_id": user_id, "room_id": room_id, "is_admin": bool(user.get("is_admin")),
                "is_hidden": bool(user.get("is_hidden")), "client_type": "WEB",
            },
            secret,
            algorithm="HS256",
        )
        return self.reply(True, "success", "SUCCESS", token=token)

    def fetch_past_rooms(self, body: dict[str, Any]) -> dict[str, Any]:
        req = _snake_keys(body)
        ids = set(req.get("room_ids") or [])
        limit = min(int(req.get("limit") or 20), 100)
        start = int(req.get("from") or 0)
        rows = [r for r in self.past if not ids or r["room_id"] in ids]
        if req.get("order_by", "DESC") == "DESC":
            rows = list(reversed(rows))
        return self.reply(
            True, "success", "SUCCESS",
            result={"total_rooms": str(len(rows)), "from": start, "limit": limit,
                    "order_by": req.get("order_by", "DESC"), "rooms_list": rows[start : start + limit]},
        )

    # ---- persistence --------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        self._settle()
        return {
            "rooms": [vars(r) for r in self.rooms.values() if not r.ending],
            "past": self.past,
        }

    def load(self, data: dict[str, Any]) -> None:
        self.rooms = {r["room_id"]: PnmRoom(**r) for r in data.get("rooms", [])}
        self.past = list(data.get("past", []))


def _validate_create(req: dict[str, Any]) -> str | None:
    room_id = req.get("room_id")
    if not isinstance(room_id, str) or not room_id:
        return "validation error: room_id: value is required"
    if not ROOM_ID_RE.match(room_id):
        return "validation error: room_id: value does not match regex pattern `^[a-zA-Z0-9-_]+$`"
    if "-FIELD_" in room_id or room_id.startswith("user_"):
        return "room_id contains a reserved word"
    meta = req.get("metadata")
    if not isinstance(meta, dict):
        return "validation error: metadata: value is required"
    if not meta.get("room_title"):
        return "validation error: metadata.room_title: value is required"
    if not isinstance(meta.get("room_features"), dict):
        return "validation error: metadata.room_features: value is required"
    for key in ("empty_timeout", "max_participants"):
        if key in req and (not isinstance(req[key], int | str) or int(req[key]) <= 0):
            return f"validation error: {key}: value must be greater than 0"
    for key in ("webhook_url", "logout_url"):
        value = meta.get(key)
        if value and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", str(value)):
            return f"validation error: metadata.{key}: value must be a valid URI"
    return None
