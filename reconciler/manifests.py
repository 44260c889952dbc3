"""YAML files -> validated desired rooms, every error naming file:line:column and the field path."""

from __future__ import annotations

import difflib
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel, to_snake

from .model import API_VERSION, BareRoomConfiguration, DesiredRoom, RoomManifest
from .model.plugnmeet import DesiredPnmRoom, PlugNmeetRoomManifest
from .model.policy import DesiredPolicy, RoomPolicyManifest
from .yamlsafe import YamlDocument, YamlError, load_documents

KINDS: dict[str, type[BaseModel]] = {
    "Room": RoomManifest, "PlugNmeetRoom": PlugNmeetRoomManifest, "RoomPolicy": RoomPolicyManifest,
}


@dataclass(frozen=True)
class Issue:
    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ManifestError(Exception):
    """One or more inputs are invalid; nothing may be sent to a server."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = list(issues)


def _input_files(paths: Iterable[str]) -> list[tuple[str, bytes | None]]:
    out: list[tuple[str, bytes | None]] = []
    for raw in paths:
        if raw == "-":
            out.append(("<stdin>", sys.stdin.buffer.read()))
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))
            out.extend((str(p), p.read_bytes()) for p in files)
        elif path.is_file():
            out.append((str(path), path.read_bytes()))
        else:
            out.append((str(path), None))
    return out


def _format_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _resolve(doc: YamlDocument, loc: Sequence[str | int], base: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Map a pydantic error location (aliases) onto the keys as written in the file."""
    path = base
    for part in loc:
        if isinstance(part, int):
            path = (*path, part)
            continue
        for spelling in (part, to_snake(part), to_camel(part)):
            if (*path, spelling) in doc.positions:
                path = (*path, spelling)
                break
        else:
            break  # a union branch name or similar: stop at the nearest real key
    return path


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            if typing.get_origin(current) is list:
                current = typing.get_args(current)[0]
                continue
            return None
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return None
        current = field.annotation
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _suggest(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    parent = _model_at(model, loc[:-1])
    if parent is None or not isinstance(loc[-1], str):
        return ""
    names = [f.alias or n for n, f in parent.model_fields.items()]
    close = difflib.get_close_matches(loc[-1], names + [to_snake(n) for n in names], n=1, cutoff=0.6)
    return f" (did you mean {to_camel(close[0])!r}?)" if close else ""


def _message(error: Any, model: type[BaseModel]) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        return f"unknown field{_suggest(model, loc)}"
    if kind == "missing":
        return "required field is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _validation_issues(file: str, doc: YamlDocument, model: type[BaseModel], err: ValidationError,
                       base: tuple[str | int, ...] = ()) -> list[Issue]:
    issues = []
    for error in err.errors():
        loc = [p for p in error["loc"] if isinstance(p, str | int)]
        # Drop union-branch and tagged names pydantic appends (e.g. 'str', 'function-after[...]').
        clean = [p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("str", "int", "bool")))]
        path = _resolve(doc, clean, base)
        line, column = doc.position(path)
        issues.append(Issue(file, line, column, _format_path(clean), _message(error, model)))
    return issues


Manifest = RoomManifest | PlugNmeetRoomManifest | RoomPolicyManifest


def _parse_document(file: str, doc: YamlDocument) -> tuple[Manifest | None, list[Issue]]:
    data = doc.data
    line, column = doc.position(())
    if not isinstance(data, dict):
        return None, [Issue(file, line, column, "", "a manifest must be a mapping")]
    if "apiVersion" not in data and "kind" not in data:
        try:
            return BareRoomConfiguration.model_validate(data).to_manifest(), []
        except ValidationError as err:
            return None, _validation_issues(file, doc, BareRoomConfiguration, err)
    kind = data.get("kind")
    if data.get("apiVersion") != API_VERSION:
        line, column = doc.position(("apiVersion",))
        return None, [Issue(file, line, column, "apiVersion",
                            f"unknown apiVersion {data.get('apiVersion')!r} (expected {API_VERSION!r})")]
    model = KINDS.get(str(kind))
    if model is None:
        line, column = doc.position(("kind",))
        close = difflib.get_close_matches(str(kind), list(KINDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(KINDS)})"
        return None, [Issue(file, line, column, "kind", f"unknown kind {kind!r}{hint}")]
    try:
        manifest = model.model_validate(data)
    except ValidationError as err:
        return None, _validation_issues(file, doc, model, err)
    assert isinstance(manifest, RoomManifest | PlugNmeetRoomManifest | RoomPolicyManifest)
    return manifest, []


def _decode(file: str, raw: bytes) -> tuple[str | None, Issue | None]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Issue(file, line, column, "", f"file is not UTF-8 (invalid byte 0x{raw[exc.start]:02x})")


@dataclass(frozen=True)
class Inputs:
    """Every declared room, by backend, and the RoomPolicies (which govern LiveKit rooms)."""

    livekit: list[DesiredRoom]
    plugnmeet: list[DesiredPnmRoom]
    policies: list[DesiredPolicy] = field(default_factory=list)


def load_manifests(paths: Iterable[str]) -> list[DesiredRoom]:
    """The LiveKit rooms only (commands that have no plugNmeet side)."""
    return load_inputs(paths).livekit


def load_inputs(paths: Iterable[str]) -> Inputs:
    """Load and validate every input; raise ManifestError listing every problem found."""
    issues: list[Issue] = []
    rooms: list[DesiredRoom] = []
    pnm_rooms: list[DesiredPnmRoom] = []
    policies: list[DesiredPolicy] = []
    inputs = _input_files(paths)
    for file, raw in inputs:
        if raw is None:
            issues.append(Issue(file, 0, 0, "", "no such file or directory"))
            continue
        text, decode_issue = _decode(file, raw)
        if text is None:
            assert decode_issue is not None
            issues.append(decode_issue)
            continue
        try:
            documents = load_documents(text.removeprefix("\ufeff"))
        except YamlError as exc:
            issues.append(Issue(file, exc.line, exc.column, "", exc.message))
            continue
        for doc in documents:
            manifest, doc_issues = _parse_document(file, doc)
            issues.extend(doc_issues)
            if isinstance(manifest, RoomManifest):
                rooms.append(DesiredRoom(manifest, file, doc.line))
            elif isinstance(manifest, PlugNmeetRoomManifest):
                pnm_rooms.append(DesiredPnmRoom(manifest, file, doc.line))
            elif isinstance(manifest, RoomPolicyManifest):
                policies.append(DesiredPolicy(manifest, file, doc.line))
    if not inputs:
        issues.append(Issue("<args>", 0, 0, "", "no manifest files given"))
    groups: tuple[tuple[Sequence[DesiredRoom | DesiredPnmRoom | DesiredPolicy], str, str], ...] = (
        (rooms, "spec.name", "room"), (pnm_rooms, "spec.roomId", "room"), (policies, "metadata.name", "RoomPolicy"))
    for group, path, noun in groups:
        seen: dict[str, DesiredRoom | DesiredPnmRoom | DesiredPolicy] = {}
        for room in group:
            first = seen.setdefault(room.name, room)
            if first is not room:
                issues.append(Issue(room.file, room.line, 1, path,
                                    f"{noun} {room.name!r} is already declared at {first.source}"))
    if issues:
        raise ManifestError(issues)
    return Inputs(rooms, pnm_rooms, policies)
