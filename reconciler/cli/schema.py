"""`roomctl schema`: one JSON Schema for every document roomctl reads, for editors
(yaml-language-server). The document's `kind` picks Room, PlugNmeetRoom or RoomPolicy; a document
with neither `apiVersion` nor `kind` is a bare LiveKit RoomConfiguration; another tool's document
(a foreign `apiVersion`) is left alone, as roomctl skips it. Generated from the same pydantic
models that validate, so the editor and `roomctl validate` agree."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_snake
from pydantic.json_schema import models_json_schema

from ..manifests import KINDS
from ..model import API_VERSION, BareRoomConfiguration

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("schema", help="print the JSON Schema of roomctl's manifests (for editors)",
                            parents=[common])
    parser.set_defaults(run=run)


def _both_spellings(node: Any) -> None:
    """roomctl accepts LiveKit's snake_case spelling of every camelCase key: so does the schema
    (each property twice; giving both at once is refused by `roomctl validate`)."""
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict) and node.get("type") == "object":
            for name in list(properties):
                snake = to_snake(name)
                if snake != name and snake not in properties:
                    properties[snake] = properties[name]
                    node.setdefault("not", {"anyOf": []})["anyOf"].append({"required": [name, snake]})
            if "required" in node:
                # A required key may be written in either spelling.
                required = node.pop("required")
                node.setdefault("allOf", []).extend(
                    {"anyOf": [{"required": [r]}, {"required": [to_snake(r)]}]} if to_snake(r) != r
                    else {"required": [r]}
                    for r in required
                )
        for value in node.values():
            _both_spellings(value)
    elif isinstance(node, list):
        for value in node:
            _both_spellings(value)


def manifest_schema() -> dict[str, Any]:
    models: list[type[BaseModel]] = [*KINDS.values(), BareRoomConfiguration]
    refs, top = models_json_schema([(m, "validation") for m in models], by_alias=True,
                                   ref_template="#/$defs/{model}")
    defs = top.get("$defs", {})
    _both_spellings(defs)
    ref = {m: {"$ref": refs[(m, "validation")]["$ref"]} for m in models}
    branches: list[dict[str, Any]] = [
        {"if": {"required": ["kind"], "properties": {"kind": {"const": kind}}}, "then": ref[model]}
        for kind, model in KINDS.items()
    ]
    branches.append({
        "if": {"not": {"anyOf": [{"required": ["apiVersion"]}, {"required": ["kind"]}]}},
        "then": ref[BareRoomConfiguration],
    })
    branches.append({
        # roomctl's own group: the version and kind must be known. Any other apiVersion is another
        # tool's document (a Kustomization, a Secret...), which roomctl skips.
        "if": {"required": ["apiVersion"], "properties": {"apiVersion": {"pattern": r"^roomctl\.dev(/|$)"}}},
        "then": {"required": ["kind"], "properties": {"apiVersion": {"const": API_VERSION},
                                                      "kind": {"enum": list(KINDS)}}},
    })
    branches.append({
        "if": {"required": ["kind"], "not": {"required": ["apiVersion"]}},
        "then": {"required": ["apiVersion"]},
    })
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://roomctl.dev/schemas/v1alpha1/roomctl.schema.json",
        "title": f"roomctl manifest ({API_VERSION}): {', '.join(KINDS)} or a bare RoomConfiguration",
        "type": "object",
        "allOf": branches,
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(manifest_schema(), indent=2) + "\n"


def run(args: argparse.Namespace) -> int:
    print(schema_text(), end="")
    return 0
