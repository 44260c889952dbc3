"""What every kind's model shares: strict camelCase models, limits, metadata text, object metadata."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

API_VERSION = "roomctl.dev/v1alpha1"
MAX_NAME_BYTES = 256
MAX_METADATA_BYTES = 512 * 1024
MAX_ATTRIBUTES_BYTES = 64 * 1024
# livekit-server's limit.max_api_request_body_size: a bigger CreateRoom is refused with 413.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
UINT32_MAX = 4_294_967_295
# Bounds that keep the CRD's CEL rules (unique agent names) within the API server's cost budget.
MAX_AGENTS = 64
MAX_AGENT_NAME = 256

# Strict: a string or a float is an error, not silently coerced.
UInt32 = Annotated[int, Field(strict=True, ge=0, le=UINT32_MAX)]
PositiveUInt32 = Annotated[int, Field(strict=True, ge=1, le=UINT32_MAX)]

class Strict(BaseModel):
    # defer_build: a model's validator is built on its first validation (or schema, or dump), not at
    # import. A run builds only the kinds it reads (RoomManifest with what it nests, in one validator)
    # instead of one validator per model of every kind: ~10 ms of every command's start-up. The
    # fields (model_fields), JSON schema, CRDs and errors are the same (tests/test_startup.py).
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        defer_build=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        """`emptyTimeout` and `empty_timeout` together would let one silently win."""
        if isinstance(data, dict):
            for alias, name in _spellings(cls):
                if alias in data and name in data:
                    raise ValueError(f"{alias!r} and {name!r} are the same field; give it once")
        return data


_SPELLINGS: dict[type[BaseModel], list[tuple[str, str]]] = {}


def _spellings(cls: type[BaseModel]) -> list[tuple[str, str]]:
    """(alias, name) of each field spelled two ways, worked out once per model (this runs for every
    object of every manifest; pydantic's model_fields is a computed property)."""
    found = _SPELLINGS.get(cls)
    if found is None:
        found = _SPELLINGS[cls] = [(info.alias, name) for name, info in cls.model_fields.items()
                                   if info.alias and info.alias != name]
    return found


# One encoder for every call (json.dumps with options builds a new one each time); same output.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def canonical_json(value: Any) -> str:
    """A mapping given as metadata is stored as canonical JSON: sorted keys, compact."""
    return _CANONICAL.encode(value)


def _metadata_text(value: Any) -> Any:
    if isinstance(value, dict | list):
        return canonical_json(value)
    return value


def check_bytes(value: str | None, limit: int, what: str) -> str | None:
    # Not a string: leave it to the type check, which names the field and the expected type.
    if isinstance(value, str) and len(value.encode()) > limit:
        raise ValueError(f"{what} is {len(value.encode())} bytes; the server's limit is {limit}")
    return value


def check_name(value: str | None, what: str) -> str | None:
    """A room name: at most 256 bytes (the server's limit) and no control characters (a name is
    printed in plans and logs, where a newline would forge lines)."""
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise ValueError(f"{what} must not contain control characters (newlines, tabs...)")
        if len(value.encode()) > MAX_NAME_BYTES:
            raise ValueError(f"{what} is {len(value.encode())} bytes; the server's limit is {MAX_NAME_BYTES}")
    return value


def _metadata_value(value: Any) -> Any:
    return check_bytes(_metadata_text(value), MAX_METADATA_BYTES, "metadata")


# Metadata is a string on the wire; a manifest may give a mapping, stored as canonical JSON.
# One type for every metadata field, so the conversion and the size limit live in one place.
JsonText = Annotated[str, BeforeValidator(_metadata_value), WithJsonSchema({
    "anyOf": [{"type": "string"}, {"type": "object"}],
    "description": "A string; a mapping is stored as canonical JSON (sorted keys, compact).",
})]


def request_size_error(name: str | None, metadata: str | None, tags: dict[str, str] | None,
                       egress: dict[str, Any] | None, agents: Sequence[BaseModel] | None) -> None:
    """Refuse a room whose CreateRoom body (sent as compact JSON, as the backend does) would be over
    the server's body limit; the error points at the biggest field."""
    # A string's JSON is at most 12 bytes a character (an astral one as two \uXXXX): a room of a name
    # and metadata far below the limit on that bound alone (nearly every room) needs nothing encoded.
    if not (tags or egress or agents) and 12 * (len(name or "") + len(metadata or "")) + 36 <= MAX_REQUEST_BYTES:
        return
    fields = {"name": name, "metadata": metadata, "tags": tags, "egress": egress,
              "agents": [a.model_dump() for a in agents or []]}
    given = {k: v for k, v in fields.items() if v}
    sizes = {k: len(_COMPACT.encode(v).encode()) for k, v in given.items()}
    total = sum(sizes.values()) + 16 * len(sizes)
    if total > MAX_REQUEST_BYTES:
        biggest = max(sizes, key=lambda k: sizes[k])
        raise PydanticCustomError("request_too_large", "{detail}", {
            "detail": f"the room's CreateRoom request would be about {total} bytes ({biggest}: {sizes[biggest]}); "
                      f"the server refuses bodies over {MAX_REQUEST_BYTES} bytes (413)",
            "path": [biggest],
        })


def check_attributes(value: dict[str, str | None] | None) -> dict[str, str | None] | None:
    if value:
        size = sum(len(k.encode()) + len((v or "").encode()) for k, v in value.items())
        if size > MAX_ATTRIBUTES_BYTES:
            raise ValueError(f"attributes total {size} bytes; the server's limit is {MAX_ATTRIBUTES_BYTES}")
    return value


class ObjectMeta(Strict):
    name: Annotated[str, Field(min_length=1)]
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # metadata.name is the room name (or plugNmeet room id) whenever the spec does not set one.
        check_name(value, "name (the room name unless the spec sets one)")
        return value



class ServerRef(Strict):
    """Which server a room lives on. The operator reads `secretName` (a Secret in the object's
    namespace); the CLI reads `name` (an entry of roomctl.servers.yaml). A manifest used by both
    sets both. Neither side ever falls back to its default server for a ref it cannot resolve."""

    secret_name: str | None = None
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")] | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> ServerRef:
        if self.secret_name is None and self.name is None:
            raise ValueError("serverRef needs name (the CLI's servers file) and/or secretName (the operator)")
        return self


