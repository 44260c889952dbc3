"""Desired state, one module per kind: `room` (Room), `plugnmeet` (PlugNmeetRoom), `policy`
(RoomPolicy); `base` is shared."""

from .base import API_VERSION, ObjectMeta, ServerRef, Strict, canonical_json
from .plugnmeet import DesiredPnmRoom, PlugNmeetRoomManifest
from .policy import DesiredPolicy, RoomPolicyManifest
from .room import (
    AgentDispatchSpec,
    BareRoomConfiguration,
    DesiredRoom,
    ParticipantRule,
    Permission,
    Policy,
    RoomManifest,
    RoomSpec,
)

__all__ = [
    "API_VERSION",
    "AgentDispatchSpec",
    "BareRoomConfiguration",
    "DesiredPnmRoom",
    "DesiredPolicy",
    "DesiredRoom",
    "ObjectMeta",
    "ParticipantRule",
    "Permission",
    "PlugNmeetRoomManifest",
    "Policy",
    "RoomManifest",
    "RoomPolicyManifest",
    "RoomSpec",
    "ServerRef",
    "Strict",
    "canonical_json",
]
