"""Desired state: the pydantic models of a `kind: Room` manifest (DESIGN §2).

Keys are camelCase; LiveKit's snake_case spelling is accepted too. Unknown keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import (
    API_VERSION,
    MAX_AGENT_NAME,
    MAX_AGENTS,
    MAX_NAME_BYTES,
    JsonText,
    ObjectMeta,
    PositiveUInt32,
    ServerRef,
    Strict,
    UInt32,
    check_attributes,
    check_bytes,
    check_name,
    request_size_error,
)
from .proto import check_room_egress

TrackSourceName = Literal["CAMERA", "MICROPHONE", "SCREEN_SHARE", "SCREEN_SHARE_AUDIO"]
ParticipantKindName = Literal["STANDARD", "INGRESS", "EGRESS", "SIP", "AGENT", "CONNECTOR", "BRIDGE"]
# Fields a policy may exclude from enforcement.
IgnorableField = Literal[
    "metadata", "emptyTimeout", "departureTimeout", "maxParticipants", "agents", "participants",
]



class Permission(Strict):
    """A partial ParticipantPermission: only the fields given are enforced."""

    can_subscribe: bool | None = None
    can_publish: bool | None = None
    can_publish_data: bool | None = None
    can_publish_sources: list[TrackSourceName] | None = None
    hidden: bool | None = None
    recorder: bool | None = None
    can_update_metadata: bool | None = None
    agent: bool | None = None
    can_subscribe_metrics: bool | None = None
    can_manage_agent_session: bool | None = None

    def declared(self) -> dict[str, Any]:
        """The declared fields by proto name (snake_case)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class ParticipantRule(Strict):
    identity: str = "*"
    kinds: list[ParticipantKindName] = Field(default_factory=lambda: list[ParticipantKindName](["STANDARD"]))
    permission: Permission | None = None
    metadata: JsonText | None = None
    name: str | None = None
    attributes: dict[str, str | None] | None = None
    remove: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return check_bytes(value, MAX_NAME_BYTES, "name")

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str | None] | None) -> dict[str, str | None] | None:
        return check_attributes(value)

    @model_validator(mode="after")
    def _remove_alone(self) -> ParticipantRule:
        if self.remove and (self.permission or self.metadata is not None or self.name is not None or self.attributes):
            raise ValueError("a rule with remove: true cannot also set permission, metadata, name or attributes")
        return self


class AgentDispatchSpec(Strict):
    agent_name: Annotated[str, Field(max_length=MAX_AGENT_NAME)]
    metadata: JsonText = ""
    deployment: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("deployment")
    @classmethod
    def _deployment(cls, value: str) -> str:
        if len(value.encode()) > 64 or "_" in value or any(c.isspace() or ord(c) < 32 for c in value):
            raise ValueError("deployment must be at most 64 bytes with no '_', spaces or control characters")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str]) -> dict[str, str]:
        check_attributes(dict(value))
        return value

    def key(self) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
        """What makes two dispatches the same (DESIGN §3 "Agents")."""
        return (self.agent_name, self.metadata, self.deployment, tuple(sorted(self.attributes.items())))


def unique_agent_names(agents: list[AgentDispatchSpec]) -> None:
    """One dispatch per agent name: two with the same name could never be told apart on the server."""
    names = [a.agent_name for a in agents]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"agent names must be unique; repeated: {', '.join(repeated)}")


class Policy(Strict):
    lifecycle: Literal["Persistent", "OnDemand"] = "Persistent"
    recreate: Literal["Never", "IfEmpty", "Always"] = "Never"
    deletion: Literal["Delete", "Orphan"] = "Delete"
    agents: Literal["Additive", "Exact"] = "Additive"
    observe_only: bool = False
    ignore: list[IgnorableField] = Field(default_factory=list)


class RoomConfigurationFields(Strict):
    """LiveKit's RoomConfiguration fields, shared by a Room's spec and a bare configuration document."""

    name: str | None = None
    empty_timeout: PositiveUInt32 | None = None
    departure_timeout: PositiveUInt32 | None = None
    max_participants: UInt32 | None = None
    metadata: JsonText | None = None
    min_playout_delay: UInt32 | None = None
    max_playout_delay: UInt32 | None = None
    sync_streams: bool | None = None
    egress: dict[str, Any] | None = None
    tags: dict[str, str] | None = None
    agents: Annotated[list[AgentDispatchSpec], Field(max_length=MAX_AGENTS)] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("room name must not be empty")
        return check_name(value, "room name")

    @field_validator("egress")
    @classmethod
    def _egress(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_room_egress(value)

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, value: list[AgentDispatchSpec] | None) -> list[AgentDispatchSpec] | None:
        unique_agent_names(value or [])
        return value

    @model_validator(mode="after")
    def _playout(self) -> RoomConfigurationFields:
        if (
            self.min_playout_delay is not None
            and self.max_playout_delay is not None
            and self.max_playout_delay
            and self.min_playout_delay > self.max_playout_delay
        ):
            raise ValueError(
                f"minPlayoutDelay ({self.min_playout_delay}) is greater than maxPlayoutDelay ({self.max_playout_delay})"
            )
        request_size_error(self.name, self.metadata, self.tags, self.egress, self.agents)
        return self


class RoomSpec(RoomConfigurationFields):
    """A LiveKit RoomConfiguration plus participant rules and policies."""

    participants: list[ParticipantRule] = Field(default_factory=list)
    policy: Policy = Field(default_factory=Policy)
    server_ref: ServerRef | None = None
    # Flux's suspend: the room is reported as suspended and nothing is done to it (no create,
    # update, re-create or delete; the operator's finalizer leaves it in place too).
    suspend: bool = False


class RoomManifest(Strict):
    api_version: Literal["roomctl.dev/v1alpha1"]
    kind: Literal["Room"]
    metadata: ObjectMeta
    spec: RoomSpec = Field(default_factory=RoomSpec)

    @property
    def room_name(self) -> str:
        return self.spec.name or self.metadata.name


class BareRoomConfiguration(RoomConfigurationFields):
    """A document with no apiVersion/kind: LiveKit's RoomConfiguration as-is (a name is required)."""

    name: str

    def to_manifest(self) -> RoomManifest:
        spec = RoomSpec.model_validate(self.model_dump(exclude_none=True))
        return RoomManifest(api_version=API_VERSION, kind="Room", metadata=ObjectMeta(name=self.name), spec=spec)


@dataclass(frozen=True)
class DesiredRoom:
    """One declared LiveKit room and where it was declared."""

    manifest: RoomManifest
    file: str
    line: int
    # The room name, worked out once (a plan reads it several times per room); not part of equality.
    name: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.manifest.room_name)

    @property
    def spec(self) -> RoomSpec:
        return self.manifest.spec

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"
