"""In-memory LiveKit: RoomService and AgentDispatchService semantics (livekit-api.md §3, §5).

State is kept as the protocol's own messages so both encodings are exact. Everything here is
synchronous and free of HTTP; `twirp.py` maps requests onto these methods.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from livekit.protocol import agent_dispatch as dispatch_pb
from livekit.protocol import models as models_pb
from livekit.protocol import room as room_pb
from livekit.protocol import webhook as webhook_pb

from .common import Clock, TwirpError, new_id

MAX_NAME_BYTES = 256
MAX_METADATA_BYTES = 512 * 1024
MAX_ATTRIBUTES_BYTES = 64 * 1024
DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20

ENABLED_CODECS = [
    "audio/PCMU", "audio/PCMA", "audio/opus", "audio/red", "video/VP8",
    "video/H264", "video/VP9", "video/AV1", "video/H265", "video/rtx",
]

# Grant names of canPublishSources (lower case) -> TrackSource enum (livekit-api.md §2.1).
SOURCE_FROM_GRANT = {
    "camera": models_pb.TrackSource.CAMERA,
    "microphone": models_pb.TrackSource.MICROPHONE,
    "screen_share": models_pb.TrackSource.SCREEN_SHARE,
    "screen_share_audio": models_pb.TrackSource.SCREEN_SHARE_AUDIO,
}
KIND_FROM_CLAIM: dict[str, Any] = {
    "standard": models_pb.ParticipantInfo.Kind.STANDARD,
    "ingress": models_pb.ParticipantInfo.Kind.INGRESS,
    "egress": models_pb.ParticipantInfo.Kind.EGRESS,
    "sip": models_pb.ParticipantInfo.Kind.SIP,
    "agent": models_pb.ParticipantInfo.Kind.AGENT,
    "connector": models_pb.ParticipantInfo.Kind.CONNECTOR,
    "bridge": models_pb.ParticipantInfo.Kind.BRIDGE,
}
_TRACK_TYPE_LETTER: dict[Any, str] = {models_pb.TrackType.AUDIO: "A", models_pb.TrackType.VIDEO: "V"}
_TRACK_SOURCE_LETTER: dict[Any, str] = {
    models_pb.TrackSource.CAMERA: "C",
    models_pb.TrackSource.MICROPHONE: "M",
    models_pb.TrackSource.SCREEN_SHARE: "S",
    models_pb.TrackSource.SCREEN_SHARE_AUDIO: "s",
}


class JoinRefused(Exception):
    """A join the real server refuses at the signalling handshake."""


@dataclass
class LiveRoom:
    room: models_pb.Room
    participants: dict[str, models_pb.ParticipantInfo] = field(default_factory=dict)
    dispatches: dict[str, dispatch_pb.AgentDispatch] = field(default_factory=dict)
    # Creation-only settings the Room message never returns (livekit-api.md §3.2 "RoomInternal").
    internal: dict[str, Any] = field(default_factory=dict)
    ever_joined: bool = False
    last_left: float | None = None
    # When each participant's permission last changed through UpdateParticipant (the benchmark reads it).
    permission_changed: dict[str, float] = field(default_factory=dict)

    def dependent(self, p: models_pb.ParticipantInfo) -> bool:
        # Agents and egress do not keep a room open (livekit-api.md §5, IsDependent).
        return p.kind in (models_pb.ParticipantInfo.Kind.AGENT, models_pb.ParticipantInfo.Kind.EGRESS) or (
            p.permission.agent or p.permission.recorder
        )

    def refresh_counts(self) -> None:
        people = [p for p in self.participants.values() if not self.dependent(p)]
        self.room.num_participants = len(people)
        self.room.num_publishers = sum(1 for p in self.participants.values() if p.is_publisher)


@dataclass
class LiveKitOptions:
    # Seconds a routed call on a missing room/participant waits before 503 (real server: ~15).
    routed_delay: float = 0.0
    enable_remote_unmute: bool = False
    auto_create: bool = True


def _check_size(value: str, limit: int) -> bool:
    return len(value.encode()) <= limit


def _attributes_size(attributes: Any) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())


class LiveKitState:
    def __init__(self, clock: Clock, options: LiveKitOptions | None = None) -> None:
        self.clock = clock
        self.options = options or LiveKitOptions()
        self.rooms: dict[str, LiveRoom] = {}
        self._last_expiry = float("-inf")
        # Receives every webhook event as it happens, with its resource key (sandbox/webhooks.py).
        self.notify: Callable[[webhook_pb.WebhookEvent, str], None] | None = None

    def _event(self, kind: str, live: LiveRoom, participant: models_pb.ParticipantInfo | None = None,
               track: models_pb.TrackInfo | None = None) -> None:
        if self.notify is None:
            return
        event = webhook_pb.WebhookEvent(event=kind)
        event.room.CopyFrom(live.room)
        resource = live.room.name
        if participant is not None:
            event.participant.CopyFrom(participant)
            resource = f"{live.room.name}/{participant.identity}"
        if track is not None:
            event.track.CopyFrom(track)
        self.notify(event, resource)

    def _close(self, name: str) -> None:
        live = self.rooms.pop(name)
        self._event("room_finished", live)

    # ---- time ---------------------------------------------------------------------------------
    def expire(self, force: bool = False) -> None:
        """Close rooms whose empty/departure timeout has passed. The real server checks once a
        second; so does this (on the next request), which keeps a request O(1) with many rooms."""
        now = self.clock.now()
        if not force and now - self._last_expiry < 1.0:
            return
        self._last_expiry = now
        for name, live in list(self.rooms.items()):
            if any(not live.dependent(p) for p in live.participants.values()):
                continue
            if live.ever_joined and live.last_left is not None:
                if now - live.last_left >= live.room.departure_timeout:
                    self._close(name)
            elif now - live.room.creation_time_ms / 1000 >= live.room.empty_timeout:
                self._close(name)

    # ---- rooms --------------------------------------------------------------------------------
    def _new_room(self, config: room_pb.CreateRoomRequest | room_pb.RoomConfiguration) -> LiveRoom:
        now = self.clock.now()
        room = models_pb.Room(
            sid=new_id("RM_"),
            name=config.name,
            empty_timeout=config.empty_timeout or DEFAULT_EMPTY_TIMEOUT,
            departure_timeout=config.departure_timeout or DEFAULT_DEPARTURE_TIMEOUT,
            max_participants=config.max_participants,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
            turn_password=secrets.token_urlsafe(24),
            metadata=config.metadata,
        )
        room.enabled_codecs.extend(models_pb.Codec(mime=m) for m in ENABLED_CODECS)
        live = LiveRoom(room=room)
        live.internal = {
            "egress": json_format.MessageToDict(config.egress) if config.HasField("egress") else None,
            "min_playout_delay": config.min_playout_delay,
            "max_playout_delay": config.max_playout_delay,
            "sync_streams": config.sync_streams,
            "tags": dict(config.tags),
        }
        if config.agents:
            for agent in config.agents:
                self._add_dispatch(live, agent.agent_name, agent.metadata, agent.deployment,
                                   dict(agent.attributes), agent.restart_policy)
        else:
            # Backward compatibility: every room gets one dispatch for the empty agent name.
            self._add_dispatch(live, "", "", "", {}, 0)
        self.rooms[room.name] = live
        self._event("room_started", live)
        return live

    def create_room(self, req: room_pb.CreateRoomRequest) -> models_pb.Room:
        if not _check_size(req.name, MAX_NAME_BYTES):
            raise TwirpError.psrpc(
                "invalid_argument", f"room name length exceeds limits: max length {MAX_NAME_BYTES}"
            )
        if not _check_size(req.metadata, MAX_METADATA_BYTES):
            raise TwirpError.invalid_argument(
                "metadata size exceeds limits", f"{MAX_METADATA_BYTES}"
            )
        for agent in req.agents:
            if not _check_size(agent.metadata, MAX_METADATA_BYTES):
                raise TwirpError.invalid_argument("metadata size exceeds limits", f"{MAX_METADATA_BYTES}")
            if _attributes_size(agent.attributes) > MAX_ATTRIBUTES_BYTES:
                raise TwirpError.invalid_argument("attributes size exceeds limits", f"{MAX_ATTRIBUTES_BYTES}")
        if req.room_preset:
            raise TwirpError.psrpc("invalid_argument", "unknown room configuration in create room request")
        live = self.rooms.get(req.name)
        if live is not None:
            # Get-or-create: a live room comes back unchanged, the request ignored (§3.2).
            return live.room
        return self._new_room(req).room

    def list_rooms(self, names: list[str]) -> list[models_pb.Room]:
        if not names:
            return [live.room for live in self.rooms.values()]
        seen: set[str] = set()
        out = []
        for name in names:
            live = self.rooms.get(name)
            if live is not None and name not in seen:
                seen.add(name)
                out.append(live.room)
        return out

    def delete_room(self, name: str) -> None:
        if name not in self.rooms:
            raise TwirpError.psrpc("not_found", "requested room does not exist")
        self._close(name)

    def update_room_metadata(self, name: str, metadata: str) -> models_pb.Room:
        live = self.rooms.get(name)
        if live is None:
            raise TwirpError.psrpc("not_found", "requested room does not exist")
        live.room.metadata = metadata  # "" clears it, whatever the proto comment says (§3.2)
        return live.room

    def require_room(self, name: str) -> LiveRoom:
        """For routed calls: a missing room means no subscriber on its topic (§3.3)."""
        live = self.rooms.get(name)
        if live is None:
            raise RoutedMiss()
        return live

    # ---- participants -------------------------------------------------------------------------
    def list_participants(self, room: str) -> list[models_pb.ParticipantInfo]:
        live = self.rooms.get(room)
        return list(live.participants.values()) if live else []

    def get_participant(self, room: str, identity: str) -> models_pb.ParticipantInfo:
        live = self.rooms.get(room)
        participant = live.participants.get(identity) if live else None
        if participant is None:
            raise TwirpError.psrpc("not_found", "participant does not exist")
        return participant

    def remove_participant(self, room: str, identity: str) -> None:
        self.get_participant(room, identity)
        self.leave(room, identity)

    def update_participant(self, req: room_pb.UpdateParticipantRequest) -> models_pb.ParticipantInfo:
        p = self.get_participant(req.room, req.identity)
        live = self.rooms[req.room]
        if req.name and req.name != p.name:
            p.name = req.name
            p.version += 1
        if req.metadata and req.metadata != p.metadata:
            p.metadata = req.metadata
            p.version += 1
        if req.attributes:
            before = dict(p.attributes)
            for key, value in req.attributes.items():
                if value == "":
                    p.attributes.pop(key, None)
                else:
                    p.attributes[key] = value
            if dict(p.attributes) != before:
                p.version += 1
        if req.HasField("permission"):
            # The permission is replaced whole: omitted booleans become false (§3.2).
            p.permission.CopyFrom(req.permission)
            self._drop_disallowed_tracks(p)
            p.is_publisher = p.permission.can_publish
            p.version += 1
            live.permission_changed[p.identity] = self.clock.now()
        live.refresh_counts()
        return p

    @staticmethod
    def _drop_disallowed_tracks(p: models_pb.ParticipantInfo) -> None:
        allowed = set(p.permission.can_publish_sources)
        keep = [
            t for t in p.tracks if p.permission.can_publish and (not allowed or t.source in allowed)
        ]
        if len(keep) != len(p.tracks):
            del p.tracks[:]
            p.tracks.extend(keep)

    def require_participant(self, room: str, identity: str) -> models_pb.ParticipantInfo:
        live = self.rooms.get(room)
        participant = live.participants.get(identity) if live else None
        if participant is None:
            raise RoutedMiss()
        return participant

    def mute_track(self, req: room_pb.MuteRoomTrackRequest) -> models_pb.TrackInfo | None:
        p = self.require_participant(req.room, req.identity)
        if not req.muted and not self.options.enable_remote_unmute:
            raise TwirpError("failed_precondition", "twirp error unknown: remote unmute not enabled")
        for track in p.tracks:
            if track.sid == req.track_sid:
                if track.muted != req.muted:
                    track.muted = req.muted
                    p.version += 1  # the recordings show one step per applied mute
                return track
        return None

    # ---- joins (the /sandbox test API) --------------------------------------------------------
    def join(self, claims: dict[str, Any], identity: str) -> models_pb.ParticipantInfo:
        video = claims.get("video") or {}
        if not video.get("roomJoin"):
            raise JoinRefused("token has no roomJoin grant")
        room_name = video.get("room") or ""
        if not room_name:
            raise JoinRefused("token names no room")
        if not identity:
            raise JoinRefused("token has no identity")
        live = self.rooms.get(room_name)
        if live is None:
            if not self.options.auto_create:
                raise JoinRefused("room does not exist")
            config = room_pb.RoomConfiguration()
            if isinstance(claims.get("roomConfig"), dict):
                json_format.ParseDict(claims["roomConfig"], config, ignore_unknown_fields=True)
            config.name = room_name
            live = self._new_room(config)
        present = [p for k, p in live.participants.items() if k != identity]
        if live.room.max_participants and len(present) >= live.room.max_participants:
            raise JoinRefused("room has exceeded its max participants")
        now = self.clock.now()
        permission = permission_from_grant(video)
        participant = models_pb.ParticipantInfo(
            sid=new_id("PA_"),
            identity=identity,
            state=models_pb.ParticipantInfo.State.ACTIVE,
            metadata=str(claims.get("metadata") or ""),
            joined_at=int(now),
            joined_at_ms=int(now * 1000),
            name=str(claims.get("name") or ""),
            version=2,  # a real join leaves it at 2 (conformance: bob, carol, erin)
            permission=permission,
            kind=KIND_FROM_CLAIM.get(str(claims.get("kind") or "standard"), models_pb.ParticipantInfo.Kind.STANDARD),
            client_protocol=2,  # reported by the real-time SDK; the recordings show 2
        )
        for key, value in (claims.get("attributes") or {}).items():
            participant.attributes[str(key)] = str(value)
        replaced = live.participants.get(identity)
        if replaced is not None:
            self._event("participant_left", live, replaced)
        live.participants[identity] = participant  # the same identity replaces the old session
        live.permission_changed.pop(identity, None)
        if not live.dependent(participant):
            live.ever_joined = True
        live.refresh_counts()
        self._event("participant_joined", live, participant)
        return participant

    def leave(self, room: str, identity: str) -> None:
        live = self.rooms.get(room)
        if live is None or identity not in live.participants:
            raise KeyError(identity)
        gone = live.participants.pop(identity)
        if not live.dependent(gone):
            live.last_left = self.clock.now()
        live.refresh_counts()
        self._event("participant_left", live, gone)

    def publish(
        self, room: str, identity: str, track_type: str, source: str, name: str,
        mime_type: str = "", mid: str = "", cid: str = "",
    ) -> models_pb.TrackInfo:
        """A published track. mime_type, mid and cid are what the client's SDK negotiates; a
        simulated client may state them (the recordings' SDK chose audio/red, mid "7")."""
        p = self.get_participant(room, identity)
        ttype: Any = models_pb.TrackType.Value(track_type)
        tsource: Any = models_pb.TrackSource.Value(source)
        allowed = set(p.permission.can_publish_sources)
        if not p.permission.can_publish or (allowed and tsource not in allowed):
            raise JoinRefused("participant is not allowed to publish this source")
        infix = _TRACK_TYPE_LETTER.get(ttype, "") + _TRACK_SOURCE_LETTER.get(tsource, "")
        now = self.clock.now()
        mime = mime_type or ("audio/opus" if ttype == models_pb.TrackType.AUDIO else "video/VP8")
        track = models_pb.TrackInfo(
            sid=new_id("TR_" + infix),
            type=ttype,
            name=name,
            source=tsource,
            mime_type=mime,
            mid=mid,
            stream="camera" if tsource in (models_pb.TrackSource.CAMERA, models_pb.TrackSource.MICROPHONE) else "",
            backup_codec_policy=models_pb.BackupCodecPolicy.SIMULCAST,
            version=models_pb.TimedVersion(unix_micro=int(now * 1_000_000)),
        )
        track.codecs.add(mime_type=mime, mid=mid, cid=cid or str(uuid.uuid4()))
        p.tracks.append(track)
        p.is_publisher = True
        p.version += 2  # join 2 -> 4 after one publish in the recordings
        self.rooms[room].refresh_counts()
        self._event("track_published", self.rooms[room], p, track)
        return track

    # ---- dispatches ---------------------------------------------------------------------------
    def _add_dispatch(
        self, live: LiveRoom, agent_name: str, metadata: str, deployment: str,
        attributes: dict[str, str], restart_policy: int,
    ) -> dispatch_pb.AgentDispatch:
        dispatch = dispatch_pb.AgentDispatch(
            id=new_id("AD_"),
            agent_name=agent_name,
            room=live.room.name,
            metadata=metadata,
            restart_policy=restart_policy,  # type: ignore[arg-type]
            deployment=deployment,
            state=dispatch_pb.AgentDispatchState(created_at=int(self.clock.now() * 1_000_000_000)),
        )
        dispatch.attributes.update(attributes)
        live.dispatches[dispatch.id] = dispatch
        return dispatch

    def create_dispatch(self, req: dispatch_pb.CreateAgentDispatchRequest) -> dispatch_pb.AgentDispatch:
        if len(req.deployment.encode()) > 64 or "_" in req.deployment or any(
            c.isspace() or ord(c) < 32 for c in req.deployment
        ):
            raise TwirpError.psrpc("invalid_argument", "invalid deployment name")
        if not _check_size(req.metadata, MAX_METADATA_BYTES):
            raise TwirpError.psrpc("invalid_argument", "metadata size exceeds limits")
        if _attributes_size(req.attributes) > MAX_ATTRIBUTES_BYTES:
            raise TwirpError.psrpc("invalid_argument", "attributes size exceeds limits")
        live = self.rooms.get(req.room)
        if live is None:
            if not self.options.auto_create:
                raise RoutedMiss()
            live = self._new_room(room_pb.CreateRoomRequest(name=req.room))
        # Never de-duplicated: every call is a new dispatch, and a new job (§3.4).
        return self._add_dispatch(
            live, req.agent_name, req.metadata, req.deployment, dict(req.attributes), req.restart_policy
        )

    def list_dispatch(self, room: str, dispatch_id: str) -> list[dispatch_pb.AgentDispatch]:
        live = self.require_room(room)
        if dispatch_id:
            found = live.dispatches.get(dispatch_id)
            return [found] if found else []
        return list(live.dispatches.values())

    def delete_dispatch(self, room: str, dispatch_id: str) -> dispatch_pb.AgentDispatch:
        live = self.require_room(room)
        found = live.dispatches.pop(dispatch_id, None)
        if found is None:
            raise TwirpError.psrpc("not_found", "dispatch ID not found")
        return found

    # ---- persistence --------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        def enc(message: Any) -> dict[str, Any]:
            return dict(json_format.MessageToDict(message, preserving_proto_field_name=True))

        return {
            name: {
                "room": enc(live.room),
                "participants": [enc(p) for p in live.participants.values()],
                "dispatches": [enc(d) for d in live.dispatches.values()],
                "internal": live.internal,
                "ever_joined": live.ever_joined,
                "last_left": live.last_left,
            }
            for name, live in self.rooms.items()
        }

    def load(self, data: dict[str, Any]) -> None:
        self.rooms = {}
        for name, item in data.items():
            live = LiveRoom(room=json_format.ParseDict(item["room"], models_pb.Room()))
            for p in item.get("participants", []):
                info = json_format.ParseDict(p, models_pb.ParticipantInfo())
                live.participants[info.identity] = info
            for d in item.get("dispatches", []):
                dispatch = json_format.ParseDict(d, dispatch_pb.AgentDispatch())
                live.dispatches[dispatch.id] = dispatch
            live.internal = item.get("internal") or {}
            live.ever_joined = bool(item.get("ever_joined"))
            live.last_left = item.get("last_left")
            self.rooms[name] = live


class RoutedMiss(Exception):
    """A topic-routed call found no room/participant: the real server waits, then answers 503."""


def permission_from_grant(video: dict[str, Any]) -> models_pb.ParticipantPermission:
    """VideoGrant -> ParticipantPermission, with the grant's defaults (livekit-api.md §2.1)."""
    can_publish = video.get("canPublish", True)
    permission = models_pb.ParticipantPermission(
        can_subscribe=bool(video.get("canSubscribe", True)),
        can_publish=bool(can_publish),
        can_publish_data=bool(video.get("canPublishData", can_publish)),
        hidden=bool(video.get("hidden", False)),
        recorder=bool(video.get("recorder", False)),
        can_update_metadata=bool(video.get("canUpdateOwnMetadata", False)),
        agent=bool(video.get("agent", False)),
        can_subscribe_metrics=bool(video.get("canSubscribeMetrics", False)),
        can_manage_agent_session=bool(video.get("canManageAgentSession", False)),
    )
    for source in video.get("canPublishSources") or []:
        if source in SOURCE_FROM_GRANT:
            permission.can_publish_sources.append(SOURCE_FROM_GRANT[source])
    return permission
