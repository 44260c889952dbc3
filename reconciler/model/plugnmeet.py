"""Desired state of a `kind: PlugNmeetRoom`: plugNmeet's CreateRoomReq (plugnmeet-api.md §1, §5).

Keys are camelCase; plugNmeet's snake_case spelling is accepted too. Only what the client may set
is modelled: runtime fields (is_recording, started_at, metadata_id, ...) must stay unset on create.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from .base import MAX_NAME_BYTES, ObjectMeta, PositiveUInt32, ServerRef, Strict

ROOM_ID_RE = re.compile(r"^[a-zA-Z0-9-_]+$")
SPEC_HASH_KEY = "roomctl.dev/spec-hash"
UInt64 = Annotated[int, Field(strict=True, ge=0, le=2**64 - 1)]


def _uri(value: str | None) -> str | None:
    if value is not None and not (urlparse(value).scheme and (urlparse(value).netloc or urlparse(value).path)):
        raise ValueError(f"{value!r} is not a URI (e.g. https://example.com/path)")
    return value


class AllowFeature(Strict):
    is_allow: bool | None = None


class RecordingFeatures(Strict):
    is_allow: bool | None = None
    is_allow_cloud: bool | None = None
    is_allow_local: bool | None = None
    enable_auto_cloud_recording: bool | None = None
    only_record_admin_webcams: bool | None = None


class ChatFeatures(Strict):
    is_allow: bool | None = None
    is_allow_file_upload: bool | None = None
    allowed_file_types: list[str] | None = None
    max_file_size: UInt64 | None = None


class WhiteboardFeatures(Strict):
    is_allow: bool | None = None
    preload_file: str | None = None

    @field_validator("preload_file")
    @classmethod
    def _preload_uri(cls, value: str | None) -> str | None:
        return _uri(value)


class WaitingRoomFeatures(Strict):
    is_active: bool | None = None
    waiting_room_msg: str | None = None


class BreakoutRoomFeatures(Strict):
    is_allow: bool | None = None
    allowed_number_rooms: Annotated[int, Field(strict=True, ge=1, le=16)] | None = None


class IngressFeatures(Strict):
    is_allow: bool | None = None
    input_type: Literal["RTMP_INPUT", "WHIP_INPUT"] | None = None


class EndToEndEncryptionFeatures(Strict):
    is_enabled: bool | None = None
    included_chat_messages: bool | None = None
    included_whiteboard: bool | None = None
    enabled_self_insert_encryption_key: bool | None = None


class TranscriptionFeatures(Strict):
    is_allow: bool | None = None
    is_allow_translation: bool | None = None
    is_allow_speech_synthesis: bool | None = None


class AiFeatures(Strict):
    is_allow: bool | None = None
    ai_text_chat_features: AllowFeature | None = None
    meeting_summarization_features: AllowFeature | None = None


class InsightsFeatures(Strict):
    is_allow: bool | None = None
    transcription_features: TranscriptionFeatures | None = None
    chat_translation_features: AllowFeature | None = None
    ai_features: AiFeatures | None = None


class SipDialInFeatures(Strict):
    is_allow: bool | None = None
    enable_dial_in_on_create: bool | None = None
    hide_phone_number: bool | None = None


class ExternalBroadcastingFeatures(Strict):
    is_allow: bool | None = None
    is_allow_rtmp: bool | None = None


class RoomFeatures(Strict):
    """RoomCreateFeatures. Beware (plugnmeet-api.md §5): on server v2.3+, `false` for a field whose
    default is true (allowWebcams, chatFeatures.isAllow, ...) is ignored; roomctl reports that as drift."""

    allow_webcams: bool | None = None
    mute_on_start: bool | None = None
    allow_screen_share: bool | None = None
    allow_rtmp: bool | None = None
    admin_only_webcams: bool | None = None
    allow_view_other_webcams: bool | None = None
    allow_view_other_users_list: bool | None = None
    room_duration: UInt64 | None = None
    enable_analytics: bool | None = None
    allow_virtual_bg: bool | None = None
    allow_raise_hand: bool | None = None
    allow_reactions: bool | None = None
    auto_gen_user_id: bool | None = None
    recording_features: RecordingFeatures | None = None
    chat_features: ChatFeatures | None = None
    shared_note_pad_features: AllowFeature | None = None
    whiteboard_features: WhiteboardFeatures | None = None
    external_media_player_features: AllowFeature | None = None
    waiting_room_features: WaitingRoomFeatures | None = None
    breakout_room_features: BreakoutRoomFeatures | None = None
    display_external_link_features: AllowFeature | None = None
    ingress_features: IngressFeatures | None = None
    end_to_end_encryption_features: EndToEndEncryptionFeatures | None = None
    polls_features: AllowFeature | None = None
    insights_features: InsightsFeatures | None = None
    sip_dial_in_features: SipDialInFeatures | None = None
    external_broadcasting_features: ExternalBroadcastingFeatures | None = None


class LockSettings(Strict):
    lock_microphone: bool | None = None
    lock_webcam: bool | None = None
    lock_screen_sharing: bool | None = None
    lock_chat: bool | None = None
    lock_chat_send_message: bool | None = None
    lock_chat_file_share: bool | None = None
    lock_private_chat: bool | None = None
    lock_whiteboard: bool | None = None
    lock_shared_notepad: bool | None = None
    lock_reactions: bool | None = None


class CopyrightConf(Strict):
    display: bool | None = None
    text: str | None = None


class PnmMetadata(Strict):
    room_title: Annotated[str, Field(min_length=1)]
    welcome_message: str | None = None
    webhook_url: str | None = None
    logout_url: str | None = None
    room_features: RoomFeatures = Field(default_factory=RoomFeatures)
    default_lock_settings: LockSettings | None = None
    copyright_conf: CopyrightConf | None = None
    extra_data: dict[str, str] | None = None

    @field_validator("webhook_url", "logout_url")
    @classmethod
    def _uris(cls, value: str | None) -> str | None:
        return _uri(value)

    @field_validator("extra_data")
    @classmethod
    def _own_key(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value and SPEC_HASH_KEY in value:
            raise ValueError(f"{SPEC_HASH_KEY!r} is roomctl's own bookkeeping key; do not set it")
        return value


class PnmPolicy(Strict):
    lifecycle: Literal["Persistent", "OnDemand"] = "Persistent"
    recreate: Literal["Never", "IfEmpty", "Always"] = "Never"
    deletion: Literal["Delete", "Orphan"] = "Delete"
    observe_only: bool = False
    # Dotted metadata paths never enforced, e.g. [defaultLockSettings] (moderators change locks live).
    ignore: list[Annotated[str, Field(pattern=r"^[A-Za-z_]+(\.[A-Za-z_]+)*$")]] = Field(default_factory=list)


class PnmSpec(Strict):
    room_id: str | None = None
    empty_timeout: PositiveUInt32 | None = None
    max_participants: PositiveUInt32 | None = None
    metadata: PnmMetadata
    policy: PnmPolicy = Field(default_factory=PnmPolicy)
    server_ref: ServerRef | None = None
    suspend: bool = False  # as a Room's: reported as suspended, nothing done

    @field_validator("room_id")
    @classmethod
    def _room_id(cls, value: str | None) -> str | None:
        if value is not None:
            check_room_id(value)
        return value


def check_room_id(value: str) -> None:
    """The server's own rules (plugnmeet-api.md §1): regex, and no reserved shapes. plugNmeet names
    its LiveKit room after the room id, so LiveKit's name limit (MAX_NAME_BYTES) holds too."""
    if len(value) > MAX_NAME_BYTES:
        raise ValueError(f"room id is {len(value)} characters; LiveKit's room name limit is {MAX_NAME_BYTES}")
    if not ROOM_ID_RE.match(value):
        raise ValueError(f"room id {value!r} must match ^[a-zA-Z0-9-_]+$")
    if value.startswith("user_") or "-FIELD_" in value:
        raise ValueError(f"room id {value!r} is reserved by plugNmeet (starts with 'user_' or contains '-FIELD_')")


class PlugNmeetRoomManifest(Strict):
    api_version: Literal["roomctl.dev/v1alpha1"]
    kind: Literal["PlugNmeetRoom"]
    metadata: ObjectMeta
    spec: PnmSpec

    @model_validator(mode="after")
    def _name_is_a_room_id(self) -> PlugNmeetRoomManifest:
        if self.spec.room_id is None:
            try:
                check_room_id(self.metadata.name)  # metadata.name becomes the room id
            except ValueError as exc:
                raise ValueError(f"metadata.name (the room id, as spec.roomId is not set): {exc}") from None
        return self

    @property
    def room_id(self) -> str:
        return self.spec.room_id or self.metadata.name


def create_request(room_id: str, spec: PnmSpec) -> dict[str, Any]:
    """The CreateRoomReq body (proto names), with the spec hash in extra_data."""
    metadata = spec.metadata.model_dump(exclude_none=True)
    metadata["extra_data"] = {**(metadata.get("extra_data") or {}), SPEC_HASH_KEY: spec_hash(room_id, spec)}
    body: dict[str, Any] = {"room_id": room_id, "metadata": metadata}
    if spec.empty_timeout is not None:
        body["empty_timeout"] = spec.empty_timeout
    if spec.max_participants is not None:
        body["max_participants"] = spec.max_participants
    return body


def spec_hash(room_id: str, spec: PnmSpec) -> str:
    """What was asked at create time, including the fields the server never returns (timeouts)."""
    declared = {"room_id": room_id, "empty_timeout": spec.empty_timeout, "max_participants": spec.max_participants,
                "metadata": spec.metadata.model_dump(exclude_none=True)}
    text = json.dumps(declared, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DesiredPnmRoom:
    """One declared plugNmeet room and where it was declared."""

    manifest: PlugNmeetRoomManifest
    file: str
    line: int

    @property
    def name(self) -> str:
        return self.manifest.room_id

    @property
    def spec(self) -> PnmSpec:
        return self.manifest.spec

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"
