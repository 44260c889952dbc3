"""CustomResourceDefinitions generated from the pydantic models (DESIGN §6).

The API server only accepts *structural* schemas: every node typed, no `$ref`, no `anyOf` that
changes types, no `additionalProperties: false` (unknown fields are pruned instead). So the
models' JSON Schema is rewritten here rather than written twice by hand.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .model import RoomSpec
from .model.base import MAX_NAME_BYTES
from .model.plugnmeet import ROOM_ID_RE, PnmSpec
from .model.policy import RoomPolicySpec

GROUP = "roomctl.dev"
VERSION = "v1alpha1"
CATEGORY = "livekit"

# Keys of pydantic's JSON Schema that a structural schema must not carry, or that we do not want
# the API server to act on (defaults would be written into every stored object).
_DROPPED = {"title", "default", "$schema", "examples"}


def _resolve(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return _resolve({**target, **extra}, defs)
        return {k: _resolve(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def structural(node: dict[str, Any], *, map_value: bool = False) -> dict[str, Any]:
    """One JSON Schema node (refs already inlined) as a structural OpenAPI v3 node."""
    node = dict(node)
    allows_null = False
    if "anyOf" in node:
        given = node.pop("anyOf")
        while any("anyOf" in o for o in given):  # `JsonText | None` nests one union in another
            given = [inner for o in given for inner in o.get("anyOf", [o])]
        options = [o for o in given if o.get("type") != "null"]
        allows_null = len(options) < len(given)
        if sorted(o.get("type", "") for o in options) == ["object", "string"]:
            # "A string, or a mapping stored as JSON": structural schemas cannot say that with a type,
            # so the value is kept as given and the operator's model validation decides.
            texts = [o.get("description") for o in (node, *options) if o.get("description")]
            return {**({"description": texts[0]} if texts else {}), "x-kubernetes-preserve-unknown-fields": True}
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {len(options)} types structurally: {options}")
        node = {**options[0], **node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "additionalProperties":
            if value is False:
                continue  # structural schemas prune unknown fields; `false` is not allowed
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
                continue
            out[key] = structural(value, map_value=True)
        elif key == "properties":
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value)
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True  # a free-form mapping (e.g. egress)
    if "type" not in out:
        raise ValueError(f"untyped schema node: {node}")
    if allows_null and map_value:
        # A map value given as null means something (an attribute set to null deletes the key);
        # an optional field that is null is simply omitted, so only map values carry `nullable`.
        out["nullable"] = True
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(_resolve(raw, raw.get("$defs", {})))


def _condition_schema() -> dict[str, Any]:
    """metav1.Condition, as Kubernetes itself publishes it."""
    return {
        "type": "object",
        "description": "A metav1.Condition.",
        "required": ["type", "status", "lastTransitionTime", "reason", "message"],
        "properties": {
            "type": {"type": "string", "maxLength": 316,
                     "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                                r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "reason": {"type": "string", "maxLength": 1024, "minLength": 1,
                       "pattern": r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"},
            "message": {"type": "string", "maxLength": 32768},
        },
    }


def _conditions_schema() -> dict[str, Any]:
    return {
        "type": "array",
        "items": _condition_schema(),
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    }


def policy_status_schema() -> dict[str, Any]:
    """A RoomPolicy's status: what the last sweep found and did."""
    return {
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0,
                                   "description": "The metadata.generation the status describes."},
            "matchedRooms": {"type": "integer", "minimum": 0,
                             "description": "Live rooms the policy matched in the last sweep."},
            "changesLastSweep": {"type": "integer", "minimum": 0,
                                 "description": "Changes the policy's rules made in the last sweep."},
            "failuresLastSweep": {"type": "integer", "minimum": 0,
                                  "description": "Changes that failed in the last sweep (see events)."},
            "driftLastSweep": {"type": "integer", "minimum": 0,
                               "description": "Differences reported but not acted on (observeOnly, ignore)."},
            "lastEnforcedTime": {"type": "string", "format": "date-time",
                                 "description": "When the policy was last enforced by a sweep."},
            "conditions": _conditions_schema(),
        },
    }


def status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0,
                                   "description": "The metadata.generation the status describes."},
            "roomName": {"type": "string", "description": "The room's name on the server."},
            "roomSid": {"type": "string", "description": "The live room's sid; a new sid means it was re-created."},
            "numParticipants": {"type": "integer", "minimum": 0},
            "lastSyncTime": {"type": "string", "format": "date-time",
                             "description": "When the operator last compared the room with its spec."},
            "drift": {
                "type": "array",
                "description": "Differences reported but not acted on, each with its reason.",
                "items": {
                    "type": "object",
                    "required": ["field", "reason"],
                    "properties": {
                        "field": {"type": "string"},
                        "observed": {"type": "string"},
                        "desired": {"type": "string"},
                        "reason": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
            },
            "conditions": _conditions_schema(),
        },
    }


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    name_field: str  # the spec field naming the server-side room (immutable)
    # Rules the model states in validators rather than in its JSON Schema: (root schema, spec schema).
    extra_rules: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    # A kind that owns no single room (RoomPolicy) brings its own status, columns and description.
    status: Callable[[], dict[str, Any]] = status_schema
    columns: Callable[[], list[dict[str, Any]]] | None = None
    description: str = ""


def _room_spec_schema(spec: dict[str, Any], name_field: str) -> dict[str, Any]:
    rules = spec.setdefault("x-kubernetes-validations", [])
    if name_field:
        rules.append({
            "rule": f"(has(self.{name_field}) ? self.{name_field} : '') == "
                    f"(has(oldSelf.{name_field}) ? oldSelf.{name_field} : '')",
            "message": f"spec.{name_field} is immutable: it names the room on the server; create a new object instead",
        })
    props = spec["properties"]
    if "minPlayoutDelay" in props:
        rules.append({
            "rule": "!has(self.minPlayoutDelay) || !has(self.maxPlayoutDelay) || self.maxPlayoutDelay == 0 "
                    "|| self.minPlayoutDelay <= self.maxPlayoutDelay",
            "message": "minPlayoutDelay must not be greater than maxPlayoutDelay",
        })
    if "serverRef" in props:  # model.base.ServerRef: at least one of the two
        props["serverRef"].setdefault("x-kubernetes-validations", []).append({
            "rule": "has(self.secretName) || has(self.name)",
            "message": "serverRef needs name (the CLI's servers file) and/or secretName (the operator)",
        })
    if "agents" in props:
        props["agents"].setdefault("x-kubernetes-validations", []).append({
            "rule": "self.all(a, self.exists_one(b, b.agentName == a.agentName))",
            "message": "agent names must be unique",
        })
    return spec


def _pnm_room_id_rules(root: dict[str, Any], spec: dict[str, Any]) -> None:
    """plugNmeet's room-id rules (model.plugnmeet.check_room_id), so `kubectl apply` refuses what the
    server would: the regex as a pattern, the reserved shapes as CEL. Without spec.roomId the object's
    name is the room id; a Kubernetes name can only break the regex with a dot."""
    room_id = spec["properties"]["roomId"]
    room_id["pattern"] = ROOM_ID_RE.pattern
    room_id["maxLength"] = MAX_NAME_BYTES  # also bounds the CEL rule's cost
    room_id.setdefault("x-kubernetes-validations", []).append({
        "rule": "!self.startsWith('user_') && !self.contains('-FIELD_')",
        "message": "a room id starting with 'user_' or containing '-FIELD_' is reserved by plugNmeet",
    })
    root.setdefault("x-kubernetes-validations", []).append({
        "rule": "has(self.spec.roomId) || !self.metadata.name.contains('.')",
        "message": "metadata.name is the room id when spec.roomId is not set, and a room id cannot contain "
                   "'.' (^[a-zA-Z0-9-_]+$): set spec.roomId",
    })


def _printer_columns() -> list[dict[str, Any]]:
    def condition(type_: str, field: str) -> str:
        return f'.status.conditions[?(@.type=="{type_}")].{field}'

    return [
        {"name": "Room", "type": "string", "jsonPath": ".status.roomName"},
        {"name": "Ready", "type": "string", "jsonPath": condition("Ready", "status")},
        {"name": "Synced", "type": "string", "jsonPath": condition("Synced", "status")},
        {"name": "Participants", "type": "integer", "jsonPath": ".status.numParticipants"},
        {"name": "Reason", "type": "string", "priority": 1, "jsonPath": condition("Ready", "reason")},
        {"name": "Sid", "type": "string", "priority": 1, "jsonPath": ".status.roomSid"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def _policy_printer_columns() -> list[dict[str, Any]]:
    def condition(type_: str, field: str) -> str:
        return f'.status.conditions[?(@.type=="{type_}")].{field}'

    return [
        {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority"},
        {"name": "Rooms", "type": "integer", "jsonPath": ".status.matchedRooms"},
        {"name": "Changes", "type": "integer", "jsonPath": ".status.changesLastSweep"},
        {"name": "Ready", "type": "string", "jsonPath": condition("Ready", "status")},
        {"name": "Synced", "type": "string", "jsonPath": condition("Synced", "status")},
        {"name": "Reason", "type": "string", "priority": 1, "jsonPath": condition("Synced", "reason")},
        {"name": "Enforced", "type": "date", "priority": 1, "jsonPath": ".status.lastEnforcedTime"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def crd(kind: Kind) -> dict[str, Any]:
    spec = _room_spec_schema(model_schema(kind.spec_model), kind.name_field)
    if not spec["x-kubernetes-validations"]:
        del spec["x-kubernetes-validations"]
    spec["description"] = spec.get("description") or f"The desired {kind.kind}."
    root: dict[str, Any] = {
        "type": "object",
        "description": kind.description or f"roomctl {kind.kind}: one object owns one room on the server.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": kind.status(),
        },
    }
    if kind.extra_rules is not None:
        kind.extra_rules(root, spec)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "roomctl"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": (kind.columns or _printer_columns)(),
                "schema": {"openAPIV3Schema": root},
            }],
        },
    }


ROOM = Kind("Room", "rooms", ("lkroom", "lkrooms"), RoomSpec, "name")
PLUGNMEET_ROOM = Kind("PlugNmeetRoom", "plugnmeetrooms", ("pnmroom", "pnmrooms"), PnmSpec, "roomId",
                      _pnm_room_id_rules)
ROOM_POLICY = Kind("RoomPolicy", "roompolicies", ("lkpolicy", "lkpolicies"), RoomPolicySpec, "",
                   status=policy_status_schema, columns=_policy_printer_columns,
                   description="roomctl RoomPolicy: participant rules, agents and room metadata for every live "
                               "room whose name matches, declared or not. Never creates or deletes rooms.")
KINDS: tuple[Kind, ...] = (ROOM, PLUGNMEET_ROOM, ROOM_POLICY)
PLURALS: dict[str, str] = {kind.kind: kind.plural for kind in KINDS}


def all_crds() -> list[dict[str, Any]]:
    return [crd(kind) for kind in KINDS]


HEADER = "# Generated by `roomctl crds` from reconciler/model/. Do not edit; regenerate.\n"


def crd_files() -> dict[str, str]:
    """File name -> YAML text, exactly as committed under crds/ and helm/roomctl/crds/."""
    import yaml  # local: only this export path needs the dumper

    return {
        f"{doc['metadata']['name']}.yaml": HEADER + yaml.safe_dump(doc, sort_keys=False, width=1000)
        for doc in all_crds()
    }
