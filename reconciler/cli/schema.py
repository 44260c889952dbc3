"""`roomctl schema`: JSON Schema of a Room manifest, for editors (yaml-language-server)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..model import RoomManifest


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("schema", help="print the JSON Schema of a Room manifest", parents=[common])
    parser.set_defaults(run=run)


def manifest_schema() -> dict[str, Any]:
    schema = RoomManifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "roomctl Room (roomctl.dev/v1alpha1)"
    return schema


def run(args: argparse.Namespace) -> int:
    print(json.dumps(manifest_schema(), indent=2))
    return 0
