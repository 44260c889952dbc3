"""The one YAML wrapper: the safe (C when present) parser, line numbers kept for every value.

Values are built from the parser's event stream ourselves, without recursion, so that nothing a
hostile file holds can blow up before it is refused with a position: duplicate keys, unknown tags,
merge keys, nesting deeper than MAX_DEPTH, aliases whose expansion is bigger than
MAX_EXPANDED_BYTES ("billion laughs", counted in bytes of the expanded data, not in values), NaN
and infinities, and YAML 1.1 numbers and booleans (yes/no/on/off) that YAML 1.2 (kubectl, Helm,
Flux) reads differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode

Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The server takes request bodies up to 10 MiB: no manifest file needs more, and every value
# built from a file (aliases counted once per use) must fit in MAX_EXPANDED_BYTES.
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_EXPANDED_BYTES = 16 * 1024 * 1024
# A Room manifest nests about 8 levels deep; an egress block about 12.
MAX_DEPTH = 64

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_PLAIN_TAGS = {_STR, _INT, _FLOAT, "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BOOL = "tag:yaml.org,2002:bool"
# The only booleans of YAML 1.2's core schema; YAML 1.1's yes/no/on/off are strings there.
_YAML12_BOOL = frozenset({"true", "True", "TRUE", "false", "False", "FALSE"})
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"
# Numbers YAML 1.2's core schema reads as integers/floats (or not at all) differently from YAML 1.1.
_YAML12_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)|0x[0-9a-fA-F]+")
_YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")

Path = tuple[str | int, ...]

# Scalars built (and tags resolved) before, by everything that decides them; values are immutable.
_SCALARS: dict[tuple[str | None, str, str | None, tuple[bool, bool]], Any] = {}
_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}
_CACHE_LIMIT = 100_000
# Tuples, not `A | B`: a union in isinstance() is built anew on every call of this per-event loop.
_ENDS = (MappingEndEvent, SequenceEndEvent)
_STARTS = (MappingStartEvent, SequenceStartEvent)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class YamlError(Exception):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


@dataclass
class YamlDocument:
    data: Any
    line: int
    # path -> (line, column), 1-based; a mapping value is located at its key.
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path) -> tuple[int, int]:
        """The nearest known position of `path` (falls back to its closest parent)."""
        probe = tuple(path)
        while probe:
            if probe in self.positions:
                return self.positions[probe]
            probe = probe[:-1]
        return self.positions.get((), (self.line, 1))


def _where(event: Event) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


@dataclass(slots=True)
class _Open:
    """A mapping or sequence being built."""

    value: dict[str, Any] | list[Any]
    path: Path
    anchor: str | None
    mapping: bool
    size: int = 2
    key: str | None = None  # a mapping's pending key, once read
    key_at: tuple[int, int] = (0, 0)


class _Builder:
    """Events of one stream -> documents. Iterative: depth is bounded by MAX_DEPTH, not the stack."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader  # PyYAML's loader methods are untyped
        self.constructor = yaml.constructor.SafeConstructor()
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.expanded = 0  # bytes of everything built so far, each alias counted at its full size

    def _grow(self, size: int, event: Event) -> None:
        self.expanded += size
        if self.expanded > MAX_EXPANDED_BYTES:
            line, column = _where(event)
            raise YamlError(line, column, f"the file expands to more than {MAX_EXPANDED_BYTES // (1024 * 1024)} MiB "
                                          "of data (YAML aliases?)")

    def _resolve(self, value: str, implicit: tuple[bool, bool]) -> str:
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = self.loader.resolve(ScalarNode, value, implicit)
            if len(_RESOLVED) > _CACHE_LIMIT:
                _RESOLVED.clear()
            _RESOLVED[key] = tag
        return str(tag)

    def _scalar(self, event: ScalarEvent) -> Any:
        # Manifests repeat their keys and many values: a scalar already built is reused (they are
        # immutable), which made this loop ~3x cheaper for 10,000 Rooms (bench/RESULTS.md).
        key = (event.tag, event.value, event.style, event.implicit)
        if key in _SCALARS:
            return _SCALARS[key]
        value = self._build_scalar(event)
        if len(_SCALARS) > _CACHE_LIMIT:
            _SCALARS.clear()
        _SCALARS[key] = value
        return value

    def _build_scalar(self, event: ScalarEvent) -> Any:
        line, column = _where(event)
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(event.value, event.implicit)
        if tag == _TIMESTAMP:
            return event.value  # keep dates as written; no field here is a timestamp
        if tag not in _PLAIN_TAGS:
            raise YamlError(line, column, f"unsupported YAML tag {tag}")
        plain = event.tag is None and event.style in (None, "") and bool(event.implicit[0])
        if plain and tag == _INT and not _YAML12_INT.fullmatch(event.value):
            raise YamlError(line, column, f"ambiguous number {event.value!r}: YAML 1.1 reads it as "
                                          f"{self._construct(tag, event)}, YAML 1.2 (kubectl, Helm) differently; "
                                          "quote it or write it plainly")
        if plain and tag == _BOOL and event.value not in _YAML12_BOOL:
            raise YamlError(line, column, f"ambiguous boolean {event.value!r}: YAML 1.1 reads it as "
                                          f"{str(self._construct(tag, event)).lower()}, YAML 1.2 (kubectl, Helm, "
                                          "Flux) as a string; quote it, or write true or false")
        if tag == _FLOAT:
            if event.value.lower().lstrip("+-") in (".nan", ".inf"):
                raise YamlError(line, column, f"{event.value!r} is not a finite number")
            if plain and not _YAML12_FLOAT.fullmatch(event.value):
                raise YamlError(line, column, f"ambiguous number {event.value!r}: YAML 1.1 and YAML 1.2 (kubectl, "
                                              "Helm) read it differently; quote it or write it plainly")
        return self._construct(tag, event)

    def _construct(self, tag: str, event: ScalarEvent) -> Any:
        node = ScalarNode(tag, event.value, None, None, event.style)
        return self.constructor.construct_object(node, deep=True)

    def document(self, start: DocumentStartEvent) -> YamlDocument | None:
        """Build one document; the stream is positioned after its DocumentStartEvent."""
        positions: dict[Path, tuple[int, int]] = {}
        stack: list[_Open] = []
        root: Any = None
        root_line = _where(start)[0]
        have_root = False
        self.anchors = {}
        while True:
            event = self.loader.get_event()
            if isinstance(event, DocumentEndEvent):
                break
            if isinstance(event, _ENDS):
                done = stack.pop()
                if done.anchor:
                    self.anchors[done.anchor] = (done.value, done.size)
                value, size = done.value, done.size
            else:
                parent = stack[-1] if stack else None
                if parent is not None and parent.mapping and parent.key is None:
                    self._key(parent, event, positions)
                    continue
                path = self._child_path(parent)
                line, column = _where(event)
                if isinstance(event, AliasEvent):
                    if event.anchor not in self.anchors:
                        raise YamlError(line, column, f"unknown alias *{event.anchor}")
                    value, size = self.anchors[event.anchor]
                    self._grow(size, event)
                    positions.setdefault(path, (line, column))
                elif isinstance(event, ScalarEvent):
                    value = self._scalar(event)
                    size = _utf8_size(event.value) + 2
                    self._grow(size, event)
                    positions.setdefault(path, (line, column))
                    if event.anchor:
                        self.anchors[event.anchor] = (value, size)
                elif isinstance(event, _STARTS):
                    mapping = isinstance(event, MappingStartEvent)
                    tag = event.tag
                    if tag not in (None, "!", _MAP if mapping else _SEQ):
                        raise YamlError(line, column, f"unsupported YAML tag {tag}")
                    if len(stack) >= MAX_DEPTH:
                        raise YamlError(line, column, f"nested more than {MAX_DEPTH} levels deep")
                    self._grow(2, event)
                    positions.setdefault(path, (line, column))
                    stack.append(_Open({} if mapping else [], path, event.anchor, mapping))
                    if not have_root:
                        root_line = line
                        have_root = True
                    continue
                else:
                    raise YamlError(line, column, f"unexpected YAML event {type(event).__name__}")
                if not have_root:
                    root_line = line
                    have_root = True
            if not stack:
                root = value
                continue
            parent = stack[-1]
            parent.size += size + 1
            if parent.mapping:
                parent.value[parent.key] = value  # type: ignore[call-overload, index]
                parent.key = None
            else:
                parent.value.append(value)  # type: ignore[union-attr]
        if root is None or not have_root:
            return None  # an empty document (a lone `---`, only comments, or null): nothing declared
        return YamlDocument(root, root_line, positions)

    @staticmethod
    def _child_path(parent: _Open | None) -> Path:
        if parent is None:
            return ()
        if parent.mapping:
            assert parent.key is not None
            return (*parent.path, parent.key)
        return (*parent.path, len(parent.value))

    def _key(self, parent: _Open, event: Event, positions: dict[Path, tuple[int, int]]) -> None:
        line, column = _where(event)
        if not isinstance(event, ScalarEvent):
            raise YamlError(line, column, "only plain scalar keys are supported (no aliases or collections as keys)")
        tag = event.tag
        if (tag is None or tag == "!") and self._resolve(event.value, event.implicit) == _MERGE:
            raise YamlError(line, column, "merge keys (<<) are not supported")
        raw = self._scalar(event)
        key = raw if isinstance(raw, str) else str(raw)
        if key in parent.value:
            raise YamlError(line, column, f"duplicate key {key!r}")
        self._grow(_utf8_size(event.value) + 3, event)
        parent.key = key
        parent.key_at = (line, column)
        positions[(*parent.path, key)] = (line, column)


_CONTEXT_AT_OPENING = ("while parsing a flow sequence", "while parsing a flow mapping",
                       "while scanning a quoted scalar", "while scanning a block scalar")


def _tab_indent(text: str, line: int, column: int) -> bool:
    """The parser stopped at a tab in a line's leading whitespace (0-based line and column)."""
    lines = text.split("\n")
    if line >= len(lines):
        return False
    lead = lines[line][: column + 1]
    return "\t" in lead and not lead.strip(" \t")


def _yaml_error(exc: yaml.YAMLError, text: str) -> YamlError:
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem_mark
        context = exc.context_mark
        if context is not None and exc.context in _CONTEXT_AT_OPENING and problem is not None:
            # Report where the unclosed thing was opened: that is the line a person fixes.
            what = str(exc.context).removeprefix("while parsing a ").removeprefix("while scanning a ")
            return YamlError(context.line + 1, context.column + 1,
                             f"invalid YAML: {what} opened here is not closed ({exc.problem} "
                             f"at {problem.line + 1}:{problem.column + 1})")
        mark = problem or context
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if mark is not None and _tab_indent(text, mark.line, mark.column):
            return YamlError(line, column, "invalid YAML: a tab is used for indentation; tabs are not allowed for "
                                           "indentation in YAML (indent with spaces)")
        return YamlError(line, column, f"invalid YAML: {exc.problem or exc.context}")
    if isinstance(exc, yaml.reader.ReaderError):
        position = max(0, min(int(exc.position), len(text)))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        character = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        return YamlError(line, column, f"invalid YAML: {exc.reason} (character #x{character:04x})")
    return YamlError(1, 1, f"invalid YAML: {exc}")


def load_documents(text: str) -> list[YamlDocument]:
    """Every non-empty document of a YAML stream (empty ones, e.g. a leading `---`, are skipped)."""
    documents: list[YamlDocument] = []
    loader: Any = Loader(text)
    builder = _Builder(loader)
    try:
        while True:
            event = loader.get_event()
            if event is None or isinstance(event, StreamEndEvent):
                break
            if isinstance(event, StreamStartEvent):
                continue
            if isinstance(event, DocumentStartEvent):
                doc = builder.document(event)
                if doc is not None:
                    documents.append(doc)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text) from None
    finally:
        loader.dispose()
    return documents


def dump(data: Any) -> str:
    dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
