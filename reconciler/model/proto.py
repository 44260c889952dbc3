"""Checks a manifest's pass-through blocks (a Room's `egress`) against LiveKit's own protobuf
descriptors (livekit_room.proto / livekit_egress.proto, from the livekit-protocol package), so an
unknown or misspelt key is an error with its path instead of being dropped by the server."""

from __future__ import annotations

import base64
import binascii
import difflib
import functools
from typing import Any

from pydantic_core import PydanticCustomError

# google.protobuf, json_format and LiveKit's room protos load on first use (only a manifest with an
# egress block needs them): ~20 ms of every run's start-up otherwise.

Path = tuple[str | int, ...]


@functools.cache
def _number_kinds() -> tuple[dict[int, tuple[int, int]], tuple[int, ...]]:
    """The integer field types with their ranges, and the floating-point ones."""
    from google.protobuf.descriptor import FieldDescriptor

    return {
        FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
        FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
        FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
        FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
        FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
        FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
        FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
        FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
        FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
        FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
    }, (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)


class ShapeError(Exception):
    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _field(desc: Any, key: str) -> Any:
    for f in desc.fields:
        if key in (f.name, f.json_name):
            return f
    return None


def _is_map(f: Any) -> bool:
    return f.message_type is not None and f.message_type.GetOptions().map_entry


def _repeated(f: Any) -> bool:
    return bool(f.label == f.LABEL_REPEATED) if hasattr(f, "label") else bool(f.is_repeated)


def _scalar(f: Any, value: Any, path: Path) -> None:
    from google.protobuf.descriptor import FieldDescriptor

    int_ranges, floats = _number_kinds()
    kind = f.type
    if kind == FieldDescriptor.TYPE_STRING:
        ok, expected = isinstance(value, str), "a string"
    elif kind == FieldDescriptor.TYPE_BOOL:
        ok, expected = isinstance(value, bool), "true or false"
    elif kind in int_ranges:
        low, high = int_ranges[kind]
        ok, expected = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high, \
            f"an integer from {low} to {high}"
    elif kind in floats:
        ok, expected = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    elif kind == FieldDescriptor.TYPE_ENUM:
        names = [v.name for v in f.enum_type.values]
        ok = isinstance(value, str) and value in names
        expected = f"one of {', '.join(names)}"
    elif kind == FieldDescriptor.TYPE_BYTES:
        try:
            ok = isinstance(value, str) and bool(base64.b64decode(value + "=" * (-len(value) % 4), validate=False)
                                                  or value == "")
        except (binascii.Error, ValueError):
            ok = False
        expected = "base64 text"
    else:  # pragma: no cover - every protobuf scalar type is listed above
        ok, expected = False, "a supported value"
    if not ok:
        raise ShapeError(path, f"must be {expected}")


def check_message(desc: Any, value: Any, path: Path = ()) -> None:
    """Raise ShapeError at the first key or value the message `desc` cannot hold (protojson rules:
    proto or JSON field names, enums by name, one member per oneof)."""
    if not isinstance(value, dict):
        raise ShapeError(path, f"must be a mapping ({desc.name})")
    oneofs: dict[str, str] = {}
    for key, item in value.items():
        f = _field(desc, key)
        if f is None:
            names = [x.json_name for x in desc.fields]
            close = difflib.get_close_matches(key, names + [x.name for x in desc.fields], n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else f" ({desc.name} has: {', '.join(names)})"
            raise ShapeError((*path, key), f"unknown field{hint}")
        where = (*path, key)
        if f.containing_oneof is not None:
            other = oneofs.setdefault(f.containing_oneof.name, key)
            if other != key:
                raise ShapeError(where, f"{other!r} and {key!r} are alternatives ({f.containing_oneof.name}); give one")
        if item is None:
            continue
        if _is_map(f):
            if not isinstance(item, dict):
                raise ShapeError(where, "must be a mapping")
            value_field = f.message_type.fields_by_name["value"]
            for k, v in item.items():
                _check_value(value_field, v, (*where, k), repeated=False)
        else:
            _check_value(f, item, where, repeated=_repeated(f))


def _check_value(f: Any, item: Any, where: Path, repeated: bool) -> None:
    if repeated:
        if not isinstance(item, list):
            raise ShapeError(where, "must be a list")
        for i, element in enumerate(item):
            _check_value(f, element, (*where, i), repeated=False)
    elif f.message_type is not None:
        check_message(f.message_type, item, where)
    else:
        _scalar(f, item, where)


def check_room_egress(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A pydantic validator for `egress`: the error carries the sub-path so it is reported at the key."""
    if value is None:
        return value
    from google.protobuf import json_format
    from livekit.protocol import room as room_pb

    try:
        check_message(room_pb.RoomEgress.DESCRIPTOR, value)
        json_format.ParseDict(value, room_pb.RoomEgress())  # what the server will parse, as a last word
    except ShapeError as exc:
        raise PydanticCustomError("proto_shape", "{detail}", {"detail": exc.message, "path": list(exc.path)}) from None
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise PydanticCustomError("proto_shape", "{detail}",
                                  {"detail": f"not a valid RoomEgress: {str(exc).splitlines()[0]}", "path": []}) from None
    return value


# Fields of RoomEgress that hold credentials (livekit_egress.proto): shown as "(redacted)" in plans,
# JSON output and logs; sent to the server as given. RTMP/SRT URLs carry stream keys.
SECRET_FIELDS = {
    ("livekit.S3Upload", "secret"), ("livekit.S3Upload", "session_token"),
    ("livekit.S3Upload", "assume_role_external_id"), ("livekit.ProxyConfig", "password"),
    ("livekit.GCPUpload", "credentials"), ("livekit.AzureBlobUpload", "account_key"),
    ("livekit.AliOSSUpload", "secret"), ("livekit.WebhookConfig", "signing_key"),
    ("livekit.StreamOutput", "urls"), ("livekit.StreamDestination", "url"),
}
REDACTED = "(redacted)"


def redact(desc: Any, value: Any) -> Any:
    """`value` (a message of type `desc`, as written in a manifest) with its credentials replaced."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        f = _field(desc, key)
        if f is None:
            out[key] = item
        elif (desc.full_name, f.name) in SECRET_FIELDS:
            out[key] = [REDACTED for _ in item] if isinstance(item, list) else REDACTED
        elif f.message_type is not None and not _is_map(f):
            out[key] = [redact(f.message_type, x) for x in item] if isinstance(item, list) else redact(f.message_type,
                                                                                                      item)
        else:
            out[key] = item
    return out


def redact_room_egress(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    from livekit.protocol import room as room_pb

    return redact(room_pb.RoomEgress.DESCRIPTOR, value)
