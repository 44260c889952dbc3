"""The one YAML wrapper: the safe (C when present) loader, line numbers kept for every value.

Values are built from the composed node tree ourselves, so duplicate keys, unknown tags and alias
expansion are caught with a position, where a plain `safe_load` would overwrite, guess or blow up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Values built from one document at most; aliases count once per expansion ("billion laughs").
MAX_NODES = 200_000
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"

Path = tuple[str | int, ...]


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


class _Builder:
    def __init__(self) -> None:
        self.constructor = yaml.constructor.SafeConstructor()
        self.count = 0

    def build(self, node: Node, path: Path, positions: dict[Path, tuple[int, int]]) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(
                node.start_mark.line + 1, node.start_mark.column + 1,
                f"document expands to more than {MAX_NODES} values (YAML aliases?)",
            )
        positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, ScalarNode):
            if node.tag == _TIMESTAMP:
                return node.value  # keep dates as written; no field here is a timestamp
            if node.tag not in _PLAIN_TAGS:
                raise YamlError(node.start_mark.line + 1, node.start_mark.column + 1,
                                f"unsupported YAML tag {node.tag}")
            return self.constructor.construct_object(node, deep=True)
        if isinstance(node, SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise YamlError(node.start_mark.line + 1, node.start_mark.column + 1, f"unsupported YAML tag {node.tag}")
            return [self.build(item, (*path, i), positions) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise YamlError(node.start_mark.line + 1, node.start_mark.column + 1, f"unsupported YAML tag {node.tag}")
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlError(line, column, "only plain scalar keys are supported (no merge keys)")
                key = self.build(key_node, (*path, "<key>"), {})
                key = str(key) if not isinstance(key, str) else key
                if key in out:
                    raise YamlError(line, column, f"duplicate key {key!r}")
                positions[(*path, key)] = (line, column)
                out[key] = self.build(value_node, (*path, key), positions)
            return out
        raise YamlError(1, 1, "unsupported YAML node")


def load_documents(text: str) -> list[YamlDocument]:
    """Every non-empty document of a YAML stream."""
    documents: list[YamlDocument] = []
    loader = Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            positions: dict[Path, tuple[int, int]] = {}
            data = _Builder().build(node, (), positions)
            documents.append(YamlDocument(data, node.start_mark.line + 1, positions))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlError(line, column, f"invalid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(1, 1, f"invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return documents


def dump(data: Any) -> str:
    dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
