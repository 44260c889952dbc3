"""The one YAML wrapper: the safe (C when present) parser, line numbers kept for every value.

Values are built from the parser's event stream ourselves, without recursion, so that nothing a
hostile file holds can blow up before it is refused with a position: duplicate keys, unknown tags,
merge keys, nesting deeper than MAX_DEPTH, aliases whose expansion is bigger than
MAX_EXPANDED_BYTES ("billion laughs", counted in bytes of the expanded data, not in values), NaN
and infinities, and YAML 1.1 numbers and booleans (yes/no/on/off) that YAML 1.2 (kubectl, Helm,
Flux) reads differently.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
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
_MISSING = object()


class YamlError(Exception):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


class YamlDocument:
    """One document's data, the line it starts at and, on demand, where each value is written.

    `positions` (path -> (line, column), 1-based; a mapping value is located at its key) is worked
    out only when something asks for it: an error message, a `kind: List`. A run over valid files
    never needs it, and keeping a position for each of 10,000 rooms' values cost about a third of
    the parse (bench/RESULTS.md). It comes from parsing the file again with positions kept: the same
    builder, the same checks, so the same documents in the same order."""

    __slots__ = ("_locate", "_positions", "data", "line", "root")

    def __init__(self, data: Any, line: int, positions: dict[Path, tuple[int, int]] | None = None,
                 locate: Callable[[], dict[Path, tuple[int, int]]] | None = None,
                 root: tuple[int, int] | None = None) -> None:
        self.data = data
        self.line = line
        self._positions = positions
        self._locate = locate
        self.root = root if root is not None else (positions or {}).get((), (line, 1))

    @property
    def positions(self) -> dict[Path, tuple[int, int]]:
        if self._positions is None:
            self._positions = self._locate() if self._locate is not None else {}
            self._locate = None
        return self._positions

    def position(self, path: Path) -> tuple[int, int]:
        """The nearest known position of `path` (falls back to its closest parent)."""
        probe = tuple(path)
        if not probe:
            return self.root
        positions = self.positions
        while probe:
            if probe in positions:
                return positions[probe]
            probe = probe[:-1]
        return positions.get((), self.root)


def _where(event: Event) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


@dataclass(slots=True)
class _Open:
    """A mapping or sequence being built."""

    value: dict[str, Any] | list[Any]
    path: Path  # only when positions are kept
    anchor: str | None
    mapping: bool
    size: int = 2
    key: str | None = None  # a mapping's pending key, once read


class _Builder:
    """Events of one stream -> documents. Iterative: depth is bounded by MAX_DEPTH, not the stack.
    `track`: keep every value's position (for error messages; see YamlDocument)."""

    def __init__(self, loader: Any, track: bool = False) -> None:
        self.loader = loader  # PyYAML's loader methods are untyped
        self.track = track
        self.constructor = yaml.constructor.SafeConstructor()
        self.expanded = 0  # bytes of everything built so far, each alias counted at its full size

    def _too_big(self, event: Event) -> YamlError:
        line, column = _where(event)
        return YamlError(line, column, f"the file expands to more than {MAX_EXPANDED_BYTES // (1024 * 1024)} MiB "
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
        value = _SCALARS.get(key, _MISSING)
        if value is _MISSING:
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

    def document(self, start: DocumentStartEvent) -> tuple[Any, tuple[int, int], dict[Path, tuple[int, int]]] | None:
        """Build one document: (data, root position, positions if tracked); None for an empty one.
        The stream is positioned after its DocumentStartEvent. The loop runs once per YAML event
        (23 for a small Room): exact type tests, the size check inlined, positions only if tracked."""
        track = self.track
        positions: dict[Path, tuple[int, int]] = {}
        stack: list[_Open] = []
        root: Any = None
        root_at: tuple[int, int] | None = None
        get_event = self.loader.get_event
        anchors: dict[str, tuple[Any, int]] = {}  # this document's: anchors do not cross documents
        while True:
            event = get_event()
            kind = type(event)
            if kind is DocumentEndEvent:
                break
            if kind is MappingEndEvent or kind is SequenceEndEvent:
                done = stack.pop()
                if done.anchor:
                    anchors[done.anchor] = (done.value, done.size)
                value, size = done.value, done.size
            else:
                parent = stack[-1] if stack else None
                if parent is not None and parent.mapping and parent.key is None:
                    self._key(parent, event, positions)
                    continue
                if kind is ScalarEvent:
                    value = self._scalar(event)
                    text = event.value
                    size = (len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))) + 2
                    self.expanded += size
                    if self.expanded > MAX_EXPANDED_BYTES:
                        raise self._too_big(event)
                    if event.anchor:
                        anchors[event.anchor] = (value, size)
                elif kind is MappingStartEvent or kind is SequenceStartEvent:
                    mapping = kind is MappingStartEvent
                    tag = event.tag
                    if tag is not None and tag != "!" and tag != (_MAP if mapping else _SEQ):
                        line, column = _where(event)
                        raise YamlError(line, column, f"unsupported YAML tag {tag}")
                    if len(stack) >= MAX_DEPTH:
                        line, column = _where(event)
                        raise YamlError(line, column, f"nested more than {MAX_DEPTH} levels deep")
                    self.expanded += 2
                    if self.expanded > MAX_EXPANDED_BYTES:
                        raise self._too_big(event)
                    path: Path = ()
                    if track:
                        path = self._child_path(parent)
                        positions.setdefault(path, _where(event))
                    if root_at is None:
                        root_at = _where(event)
                    stack.append(_Open({} if mapping else [], path, event.anchor, mapping))
                    continue
                elif kind is AliasEvent:
                    found = anchors.get(event.anchor)
                    if found is None:
                        line, column = _where(event)
                        raise YamlError(line, column, f"unknown alias *{event.anchor}")
                    value, size = found
                    self.expanded += size
                    if self.expanded > MAX_EXPANDED_BYTES:
                        raise self._too_big(event)
                else:
                    line, column = _where(event)
                    raise YamlError(line, column, f"unexpected YAML event {kind.__name__}")
                if track:
                    positions.setdefault(self._child_path(parent), _where(event))
                if root_at is None:
                    root_at = _where(event)
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
        if root is None or root_at is None:
            return None  # an empty document (a lone `---`, only comments, or null): nothing declared
        return root, root_at, positions

    @staticmethod
    def _child_path(parent: _Open | None) -> Path:
        if parent is None:
            return ()
        if parent.mapping:
            assert parent.key is not None
            return (*parent.path, parent.key)
        return (*parent.path, len(parent.value))

    def _key(self, parent: _Open, event: Event, positions: dict[Path, tuple[int, int]]) -> None:
        if type(event) is not ScalarEvent:
            line, column = _where(event)
            raise YamlError(line, column, "only plain scalar keys are supported (no aliases or collections as keys)")
        assert isinstance(event, ScalarEvent)
        text = event.value
        tag = event.tag
        # Only `<<` resolves to a merge key (PyYAML's resolver: ^(?:<<)$).
        if text == "<<" and (tag is None or tag == "!") and self._resolve(text, event.implicit) == _MERGE:
            line, column = _where(event)
            raise YamlError(line, column, "merge keys (<<) are not supported")
        raw = self._scalar(event)
        key = raw if type(raw) is str else str(raw)
        if key in parent.value:
            line, column = _where(event)
            raise YamlError(line, column, f"duplicate key {key!r}")
        self.expanded += (len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))) + 3
        if self.expanded > MAX_EXPANDED_BYTES:
            raise self._too_big(event)
        parent.key = key
        if self.track:
            positions[(*parent.path, key)] = _where(event)


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


def _parse(text: str, track: bool) -> list[tuple[Any, tuple[int, int], dict[Path, tuple[int, int]]]]:
    found: list[tuple[Any, tuple[int, int], dict[Path, tuple[int, int]]]] = []
    loader: Any = Loader(text)
    builder = _Builder(loader, track)
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
                    found.append(doc)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text) from None
    finally:
        loader.dispose()
    return found


class _Positions:
    """Every document's positions in one file, worked out together the first time one is asked for."""

    def __init__(self, text: str) -> None:
        self.text: str | None = text
        self.found: list[dict[Path, tuple[int, int]]] = []

    def of(self, index: int) -> dict[Path, tuple[int, int]]:
        if self.text is not None:
            self.found = [positions for _, _, positions in _parse(self.text, track=True)]
            self.text = None
        return self.found[index]


def load_documents(text: str) -> list[YamlDocument]:
    """Every non-empty document of a YAML stream (empty ones, e.g. a leading `---`, are skipped)."""
    located = _Positions(text)
    return [YamlDocument(data, root[0], locate=functools.partial(located.of, index), root=root)
            for index, (data, root, _) in enumerate(_parse(text, track=False))]


def dump(data: Any) -> str:
    dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
