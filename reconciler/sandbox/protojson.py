"""protojson as the LiveKit server speaks it (livekit-api.md §1.3-1.4).

Python's ``json_format`` differs from Go's protojson in ways a client can see: it omits unset
message fields (Go writes ``null``), and it accepts the same field spelled twice (Go answers 400
"duplicate field"). So responses are encoded here by walking the descriptor, and requests are
checked for duplicate spellings before ``json_format`` parses them.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


M = TypeVar("M", bound=Message)


class DecodeError(ValueError):
    """The body is not a JSON encoding of the request message."""


def _is_map(field: Any) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type is not None
        and field.message_type.GetOptions().map_entry
    )


def _is_repeated(field: Any) -> bool:
    return bool(field.is_repeated) if hasattr(field, "is_repeated") else bool(field.label == field.LABEL_REPEATED)


def _map_value_field(field: Any) -> Any:
    return field.message_type.fields_by_name["value"]


def _scalar(field: Any, value: Any) -> Any:
    if field.type in _INT64_TYPES:
        return str(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return encode(value)
    return value


# How each field of a message type is written, worked out once per type (encoding walked the
# descriptor per field per message, a third of the sandbox's CPU per CreateRoom).
_PLAIN, _CONVERT, _MAP, _REPEATED, _ONEOF, _MESSAGE = range(6)
_Plan = list[tuple[str, int, Any]]
_PLANS: dict[str, _Plan] = {}


def _converter(field: Any) -> Any:
    """None when the value is written as it is, else the function that converts it."""
    if field.type in _INT64_TYPES or field.type in (FieldDescriptor.TYPE_ENUM, FieldDescriptor.TYPE_BYTES,
                                                    FieldDescriptor.TYPE_MESSAGE):
        return lambda value: _scalar(field, value)
    return None


def _plan(descriptor: Any) -> _Plan:
    plan = _PLANS.get(descriptor.full_name)
    if plan is not None:
        return plan
    plan = []
    for field in descriptor.fields:
        if _is_map(field):
            plan.append((field.name, _MAP, _map_value_field(field)))
        elif _is_repeated(field):
            plan.append((field.name, _REPEATED, _converter(field)))
        elif field.containing_oneof is not None:
            # Real oneof members and proto3 `optional` fields are omitted when unset.
            plan.append((field.name, _ONEOF, field))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            plan.append((field.name, _MESSAGE, None))
        else:
            convert = _converter(field)
            plan.append((field.name, _PLAIN if convert is None else _CONVERT, convert))
    _PLANS[descriptor.full_name] = plan
    return plan


def encode(message: Message) -> dict[str, Any]:
    """Encode like Go protojson with UseProtoNames and EmitUnpopulated."""
    out: dict[str, Any] = {}
    for name, how, extra in _plan(message.DESCRIPTOR):
        value = getattr(message, name)
        if how == _PLAIN:
            out[name] = value
        elif how == _CONVERT:
            out[name] = extra(value)
        elif how == _REPEATED:
            out[name] = [extra(v) for v in value] if extra is not None else list(value)
        elif how == _MESSAGE:
            out[name] = encode(value) if message.HasField(name) else None
        elif how == _ONEOF:
            if message.HasField(name):
                out[name] = _scalar(extra, value)
        else:
            out[name] = {str(k): _scalar(extra, value[k]) for k in sorted(value)}
    return out


def _check_duplicate_spellings(data: Any, descriptor: Any) -> None:
    if not isinstance(data, dict):
        return
    seen: set[str] = set()
    for key, value in data.items():
        field = descriptor.fields_by_name.get(key) or _by_json_name(descriptor, key)
        if field is None:
            continue
        if field.name in seen:
            raise DecodeError(f"duplicate field {field.name}")
        seen.add(field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE and not _is_map(field):
            items = value if isinstance(value, list) else [value]
            for item in items:
                _check_duplicate_spellings(item, field.message_type)


def _by_json_name(descriptor: Any, key: str) -> Any:
    for field in descriptor.fields:
        if field.json_name == key:
            return field
    return None


def decode(data: Any, message_class: type[M]) -> M:
    """Parse a decoded JSON value into ``message_class``, ignoring unknown keys and enum names."""
    if not isinstance(data, dict):
        raise DecodeError("not a JSON object")
    _check_duplicate_spellings(data, message_class.DESCRIPTOR)
    message = message_class()
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise DecodeError(str(exc)) from exc
    return message
