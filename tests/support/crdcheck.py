"""Validate an object against a generated CRD the way the API server would (what can be emulated here):
the openAPIV3Schema with strict field validation (kubectl's default), then the CEL rules."""

from __future__ import annotations

from typing import Any

import celpy
import jsonschema

_CEL = celpy.Environment()


def _to_jsonschema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_jsonschema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes") and k != "nullable"}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
    if node.get("type") == "object" and "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False  # kubectl --validate=strict: unknown fields are errors
    return out


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def _cel(rule: str, value: Any, old: Any) -> bool:
    program = _CEL.program(_CEL.compile(rule))
    activation = {"self": celpy.json_to_cel(value)}
    if old is not None:
        activation["oldSelf"] = celpy.json_to_cel(old)
    return bool(program.evaluate(activation))


def _cel_errors(node: dict[str, Any], value: Any, old: Any, path: str) -> list[str]:
    errors = []
    for rule in node.get("x-kubernetes-validations", []):
        transition = "oldSelf" in rule["rule"]
        if transition and old is None:
            continue  # transition rules run only on update, when the old value exists
        if not _cel(rule["rule"], value, old if transition else None):
            errors.append(f"{path}: {rule['message']}")
    if isinstance(value, dict):
        for key, sub in node.get("properties", {}).items():
            if key in value:
                errors += _cel_errors(sub, value[key], old.get(key) if isinstance(old, dict) else None, f"{path}.{key}")
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            errors += _cel_errors(node["items"], item, None, f"{path}[{i}]")
    return errors


def validate(crd: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    schema = schema_of(crd)
    validator = jsonschema.Draft202012Validator(_to_jsonschema(schema))
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)]
    if errors:
        return errors
    return _cel_errors(schema, obj, old, "")
