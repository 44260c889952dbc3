"""YAML files -> validated desired rooms, every error naming file:line:column and the field path."""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import json
import os
import re
import stat
import sys
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel, to_snake

from .model import API_VERSION, BareRoomConfiguration, DesiredRoom, RoomManifest
from .model.plugnmeet import DesiredPnmRoom, PlugNmeetRoomManifest
from .model.policy import DesiredPolicy, RoomPolicyManifest
from .yamlsafe import MAX_FILE_BYTES, YamlDocument, YamlError, load_documents

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
        # Line 0: the problem is the file or folder itself (missing, unreadable): no fake position.
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return escape_control(text)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control(text: str) -> str:
    """Control characters (newlines above all) as escapes: one error is always one line, and a key
    or name holding `\nerror: ...` cannot forge another."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                        text)


class ManifestError(Exception):
    """One or more inputs are invalid; nothing may be sent to a server."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = list(issues)


@dataclass(frozen=True)
class Source:
    """One input file: its bytes, or the one-line reason it could not be read."""

    file: str
    raw: bytes | None
    problem: str = ""


def _read_limited(handle: BinaryIO) -> tuple[bytes | None, str]:
    raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        return None, f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB (the server's request limit)"
    return raw, ""


def _read_file(path: str) -> Source:
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return Source(path, None, "not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            return Source(path, None, f"file is {info.st_size} bytes; the limit is "
                                      f"{MAX_FILE_BYTES // (1024 * 1024)} MiB (the server's request limit)")
        with open(path, "rb") as handle:
            raw, problem = _read_limited(handle)
    except OSError as exc:
        return Source(path, None, f"cannot read: {exc.strerror or exc}")
    return Source(path, raw, problem)


HELM_CHART = "Chart.yaml"


def _folder_files(folder: str, problems: list[Source], charts: list[Foreign]) -> list[str]:
    """Every *.yaml/*.yml below `folder`, sorted; a sub-folder that cannot be listed is a problem,
    never silently skipped (what was not read must not be pruned). Symlinked folders are followed once.
    Hidden folders and files (`.git`, `.github`, ...) are not walked; a folder holding a Chart.yaml is
    a Helm chart (templates are not YAML, values.yaml is not a manifest): skipped whole, in `charts`."""

    def failed(exc: OSError) -> None:
        problems.append(Source(str(exc.filename or folder), None, f"cannot read folder: {exc.strerror or exc}"))

    found: list[str] = []
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, onerror=failed, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        if HELM_CHART in files:
            charts.append(Foreign(root, 0, "", "Helm chart", f"holds {HELM_CHART}; not read"))
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, f) for f in files
                     if f.endswith((".yaml", ".yml")) and not f.startswith("."))
    return sorted(found)


def _input_files(paths: Iterable[str], charts: list[Foreign]) -> list[Source]:
    """Every input, each file once (the same file given twice, or inside a given folder, is read once)."""
    out: list[Source] = []
    seen: set[tuple[int, int]] = set()

    def add(source: Source) -> None:
        if source.raw is not None or source.problem:
            with contextlib.suppress(OSError):
                info = os.stat(source.file)
                if (info.st_dev, info.st_ino) in seen:
                    return
                seen.add((info.st_dev, info.st_ino))
        out.append(source)

    for raw in paths:
        if raw == "-":
            data, problem = _read_limited(sys.stdin.buffer)
            out.append(Source("<stdin>", data, problem))
            continue
        if os.path.isdir(raw):
            problems: list[Source] = []
            files = _folder_files(raw, problems, charts)
            out.extend(problems)
            for file in files:
                add(_read_file(file))
        elif os.path.lexists(raw):
            add(_read_file(raw))
        else:
            out.append(Source(raw, None, "no such file or directory"))
    return out


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$@/-][A-Za-z0-9_.$@/-]*")


def _format_path(path: Sequence[str | int]) -> str:
    """spec.participants[0].permission; a key that is not a plain word is quoted: spec["a b"]."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            text += f"[{json.dumps(part)}]"
        else:
            text += f".{part}" if text else part
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
        # A check that knows the key inside the field (egress shape, the biggest field of a request).
        sub = (error.get("ctx") or {}).get("path") or []
        clean += [p for p in sub if isinstance(p, str | int)]
        path = _resolve(doc, clean, base)
        line, column = doc.position(path)
        issues.append(Issue(file, line, column, _format_path(clean), _message(error, model)))
    return issues


Manifest = RoomManifest | PlugNmeetRoomManifest | RoomPolicyManifest


@dataclass(frozen=True)
class Foreign:
    """A document of another tool (a Kustomization, a Secret...): skipped, counted, shown at -v."""

    file: str
    line: int
    api_version: str
    kind: str
    reason: str = "not a roomctl document"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        what = f"{self.kind or 'a document'} ({self.api_version})" if self.api_version else self.kind or "a document"
        return escape_control(f"{where}: skipped {what}: {self.reason}")


API_GROUP = API_VERSION.split("/")[0]


def _is_ours(api_version: str) -> bool:
    """roomctl's group, or close enough to it to be a typo rather than another tool's document."""
    group = api_version.split("/")[0] if "/" in api_version else ""
    return group == API_GROUP or bool(difflib.get_close_matches(group, [API_GROUP], n=1, cutoff=0.8))


def _parse_document(file: str, doc: YamlDocument) -> tuple[Manifest | Foreign | None, list[Issue]]:
    data = doc.data
    line, column = doc.position(())
    if not isinstance(data, dict):
        return None, [Issue(file, line, column, "", f"a manifest must be a mapping, not {_type_name(data)}")]
    if "apiVersion" not in data and "kind" not in data:
        if not any(_is_bare_key(key) for key in data):
            # No RoomConfiguration field (a docker-compose file, a workflow, a values.yaml): another tool's.
            return Foreign(file, doc.line, "", "", "no apiVersion/kind and no RoomConfiguration field; "
                                                   "not a roomctl document"), []
        try:
            return BareRoomConfiguration.model_validate(data).to_manifest(), []
        except ValidationError as err:
            issues = sorted(_validation_issues(file, doc, BareRoomConfiguration, err),
                            key=lambda i: (i.line, i.column))
            first = issues[0]
            issues[0] = replace(first, message=f"{first.message} (no apiVersion/kind: read as a bare LiveKit "
                                                "RoomConfiguration)")
            return None, issues
    kind = data.get("kind")
    api_version = data.get("apiVersion")
    if api_version is None:
        return None, [Issue(file, line, column, "apiVersion",
                            f"required field is missing (roomctl documents use {API_VERSION!r})")]
    if not isinstance(api_version, str):
        line, column = doc.position(("apiVersion",))
        return None, [Issue(file, line, column, "apiVersion", f"must be a string, not {_type_name(api_version)}")]
    if not _is_ours(api_version):
        return Foreign(file, doc.line, api_version, str(kind) if kind is not None else ""), []
    if api_version != API_VERSION:
        line, column = doc.position(("apiVersion",))
        return None, [Issue(file, line, column, "apiVersion",
                            f"unknown apiVersion {api_version!r} (expected {API_VERSION!r})")]
    model = KINDS.get(str(kind))
    if model is None:
        line, column = doc.position(("kind",))
        if kind is None:
            return None, [Issue(file, line, column, "kind", f"required field is missing (known: {', '.join(KINDS)})")]
        close = difflib.get_close_matches(str(kind), list(KINDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(KINDS)})"
        return None, [Issue(file, line, column, "kind", f"unknown kind {kind!r}{hint}")]
    try:
        manifest = model.model_validate(data)
    except ValidationError as err:
        return None, _validation_issues(file, doc, model, err)
    assert isinstance(manifest, RoomManifest | PlugNmeetRoomManifest | RoomPolicyManifest)
    return manifest, []


# The keys that make a document with no apiVersion/kind a bare RoomConfiguration: any of its fields
# but `name` (which nearly every YAML file of other tools has), in any spelling (camelCase, LiveKit's
# snake_case) or one typo away (`max_participant`), so a mistyped bare config is still an error.
_BARE_KEYS = frozenset(n.replace("_", "") for n in BareRoomConfiguration.model_fields if n != "name")


def _one_edit_apart(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) <= 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def _is_bare_key(key: str) -> bool:
    plain = key.replace("_", "").replace("-", "").lower()
    return plain in _BARE_KEYS or (len(plain) >= 5 and any(_one_edit_apart(plain, k) for k in _BARE_KEYS))


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _list_items(doc: YamlDocument) -> list[YamlDocument]:
    """A Kubernetes `kind: List` (what `kubectl get -o yaml` prints for several objects) stands for its
    items: each is read as a document of its own, so roomctl documents inside one are never skipped
    as "another tool's"."""
    data = doc.data
    if not (isinstance(data, dict) and data.get("apiVersion") == "v1" and data.get("kind") == "List"
            and isinstance(data.get("items"), list)):
        return [doc]
    items = []
    for i, item in enumerate(data["items"]):
        prefix = ("items", i)
        positions = {p[2:]: at for p, at in doc.positions.items() if p[:2] == prefix}
        root = doc.position(prefix)
        items.append(YamlDocument(item, root[0], positions, root=root))
    return items


# Where a room's name is written, in the order it is taken (the line a duplicate is reported at).
_NAME_PATHS: tuple[tuple[str, ...], ...] = (("spec", "name"), ("spec", "roomId"), ("spec", "room_id"), ("name",),
                                            ("metadata", "name"))


def _name_position(doc: YamlDocument) -> tuple[int, int]:
    for path in _NAME_PATHS:
        if path in doc.positions:
            return doc.positions[path]
    return doc.position(())


def _policy_name_position(doc: YamlDocument) -> tuple[int, int]:
    return doc.position(("metadata", "name"))


_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
         (b"\xfe\xff", "UTF-16"))


def _decode(file: str, raw: bytes) -> tuple[str | None, Issue | None]:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return None, Issue(file, 1, 1, "", f"file is {encoding} (byte-order mark); save it as UTF-8")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff"), None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Issue(file, line, column, "", f"file is not UTF-8 (invalid byte 0x{raw[exc.start]:02x})")


@dataclass(frozen=True)
class Inputs:
    """Every declared room, by backend, the RoomPolicies (which govern LiveKit rooms), and the
    foreign documents skipped."""

    livekit: list[DesiredRoom]
    plugnmeet: list[DesiredPnmRoom]
    policies: list[DesiredPolicy] = field(default_factory=list)
    foreign: list[Foreign] = field(default_factory=list)
    # file -> sha256 of the bytes read (a saved plan records what the plan was made from)
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return len(self.foreign)


def load_manifests(paths: Iterable[str]) -> list[DesiredRoom]:
    """The LiveKit rooms only (commands that have no plugNmeet side)."""
    return load_inputs(paths).livekit


def load_inputs(paths: Iterable[str]) -> Inputs:
    """Load and validate every input; raise ManifestError listing every problem found.

    All or nothing: a file or folder that cannot be read, decoded, parsed or validated fails the
    whole load, so no run ever acts (or prunes) on a partial view of the manifests."""
    issues: list[Issue] = []
    # Each with where its name is written, worked out only for a duplicate (positions are lazy).
    rooms: list[tuple[DesiredRoom, Callable[[], tuple[int, int]]]] = []
    pnm_rooms: list[tuple[DesiredPnmRoom, Callable[[], tuple[int, int]]]] = []
    policies: list[tuple[DesiredPolicy, Callable[[], tuple[int, int]]]] = []
    foreign: list[Foreign] = []
    digests: dict[str, str] = {}
    given = list(paths)
    inputs = _input_files(given, foreign)
    for source in inputs:
        file = source.file
        if source.raw is None:
            issues.append(Issue(file, 0, 0, "", source.problem))
            continue
        digests[file] = hashlib.sha256(source.raw).hexdigest()
        text, decode_issue = _decode(file, source.raw)
        if text is None:
            assert decode_issue is not None
            issues.append(decode_issue)
            continue
        try:
            documents = load_documents(text)
        except YamlError as exc:
            issues.append(Issue(file, exc.line, exc.column, "", exc.message))
            continue
        for doc in (d for document in documents for d in _list_items(document)):
            manifest, doc_issues = _parse_document(file, doc)
            issues.extend(doc_issues)
            if isinstance(manifest, RoomManifest):
                rooms.append((DesiredRoom(manifest, file, doc.line), functools.partial(_name_position, doc)))
            elif isinstance(manifest, PlugNmeetRoomManifest):
                pnm_rooms.append((DesiredPnmRoom(manifest, file, doc.line), functools.partial(_name_position, doc)))
            elif isinstance(manifest, RoomPolicyManifest):
                policies.append((DesiredPolicy(manifest, file, doc.line),
                                 functools.partial(_policy_name_position, doc)))
            elif isinstance(manifest, Foreign):
                foreign.append(manifest)
    if not inputs and not foreign:
        where = ", ".join(given) if given else "the command line"
        issues.append(Issue(where, 0, 0, "", "no manifest files given (no *.yaml or *.yml found)"))
    groups: tuple[tuple[Sequence[tuple[DesiredRoom | DesiredPnmRoom | DesiredPolicy,
                                       Callable[[], tuple[int, int]]]], str], ...] = (
        (rooms, "room"), (pnm_rooms, "room"), (policies, "RoomPolicy"))
    for group, noun in groups:
        seen: dict[str, DesiredRoom | DesiredPnmRoom | DesiredPolicy] = {}
        for item, name_at in group:
            first = seen.setdefault(item.name, item)
            if first is not item:
                line, column = name_at()
                issues.append(Issue(item.file, line, column, "",
                                    f"{noun} {item.name!r} is already declared at {first.source}"))
    if issues:
        # Files in the order read, each file's errors in line order.
        order = {source.file: index for index, source in enumerate(inputs)}
        issues.sort(key=lambda i: (order.get(i.file, len(order)), i.line, i.column))
        raise ManifestError(issues)
    return Inputs([r for r, _ in rooms], [r for r, _ in pnm_rooms], [p for p, _ in policies], foreign, digests)
