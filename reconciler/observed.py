"""Observed state: what a server reported, in plain frozen types the pure planner can read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PERMISSION_FIELDS = (
    "can_subscribe",
    "can_publish",
    "can_publish_data",
    "can_publish_sources",
    "hidden",
    "recorder",
    "can_update_metadata",
    "agent",
    "can_subscribe_metrics",
    "can_manage_agent_session",
)


@dataclass(frozen=True)
class ObservedParticipant:
    identity: str
    kind: str  # STANDARD, AGENT, ...
    permission: dict[str, Any]  # proto names; can_publish_sources as enum names
    metadata: str = ""
    name: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    # Not planned on; a saved plan records them to notice a participant that changed since (version
    # grows with every server-side update of the participant).
    sid: str = ""
    version: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObservedParticipant:
        permission = data.get("permission") or {}
        return cls(
            identity=str(data.get("identity", "")),
            kind=str(data.get("kind") or "STANDARD"),
            permission={k: permission.get(k, [] if k == "can_publish_sources" else False) for k in PERMISSION_FIELDS},
            metadata=str(data.get("metadata", "")),
            name=str(data.get("name", "")),
            attributes=dict(data.get("attributes") or {}),
            sid=str(data.get("sid", "")),
            version=int(data.get("version") or 0),
        )


@dataclass(frozen=True)
class ObservedDispatch:
    id: str
    agent_name: str
    metadata: str = ""
    deployment: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    created_at: int = 0  # state.created_at, nanoseconds: which of two duplicates is the older

    def key(self) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
        return (self.agent_name, self.metadata, self.deployment, tuple(sorted(self.attributes.items())))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObservedDispatch:
        return cls(
            id=str(data.get("id", "")),
            agent_name=str(data.get("agent_name", "")),
            metadata=str(data.get("metadata", "")),
            deployment=str(data.get("deployment", "")),
            attributes=dict(data.get("attributes") or {}),
            created_at=int((data.get("state") or {}).get("created_at") or 0),
        )


@dataclass(frozen=True)
class ObservedRoom:
    name: str
    sid: str
    empty_timeout: int
    departure_timeout: int
    max_participants: int
    metadata: str
    num_participants: int
    creation_time: int = 0
    # None: not observed (no rules/agents needed it); a tuple: what the server listed.
    participants: tuple[ObservedParticipant, ...] | None = None
    dispatches: tuple[ObservedDispatch, ...] | None = None
    # Why its participants or dispatches could not be read ("ListDispatch \"r\": unavailable: ..."):
    # the plan then does nothing to the room and reports it failed; other rooms go on.
    unreadable: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObservedRoom:
        # turn_password is a secret: it is never read into roomctl's types.
        return cls(
            name=str(data.get("name", "")),
            sid=str(data.get("sid", "")),
            empty_timeout=int(data.get("empty_timeout") or 0),
            departure_timeout=int(data.get("departure_timeout") or 0),
            max_participants=int(data.get("max_participants") or 0),
            metadata=str(data.get("metadata", "")),
            num_participants=int(data.get("num_participants") or 0),
            creation_time=int(data.get("creation_time") or 0),
        )


@dataclass(frozen=True)
class ObservedState:
    """Rooms a server listed. `complete` is True when every room was listed (prune needs it)."""

    rooms: dict[str, ObservedRoom]
    complete: bool = False


@dataclass(frozen=True)
class ObservedPnmRoom:
    room_id: str
    sid: str  # plugNmeet's session id (a UUID), not LiveKit's RM_ sid
    joined_participants: int
    metadata: dict[str, Any]  # the effective RoomMetadata, decoded from its JSON string

    @property
    def num_participants(self) -> int:
        """As ObservedRoom names it, so status and decisions read both kinds alike."""
        return self.joined_participants

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> ObservedPnmRoom:
        info = entry.get("room_info") or {}
        try:
            metadata = json.loads(info.get("metadata") or "{}")
        except ValueError:
            metadata = {}
        return cls(
            room_id=str(info.get("room_id", "")),
            sid=str(info.get("sid", "")),
            joined_participants=int(info.get("joined_participants") or 0),
            metadata=metadata if isinstance(metadata, dict) else {},
        )
