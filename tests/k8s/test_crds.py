"""The generated CRDs: committed copies current, structural, and validating what they should."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.crd import all_crds, crd_files
from tests.support.crdcheck import schema_of, validate

ROOT = Path(__file__).resolve().parents[2]
ROOM_CRD = next(c for c in all_crds() if c["spec"]["names"]["kind"] == "Room")
PNM_CRD = next(c for c in all_crds() if c["spec"]["names"]["kind"] == "PlugNmeetRoom")
FORBIDDEN_KEYS = {"$ref", "$defs", "title", "anyOf", "oneOf", "allOf", "definitions", "const"}


@pytest.mark.parametrize("folder", ["crds", "helm/roomctl/crds"])
def test_committed_crds_are_the_generated_ones(folder: str) -> None:
    generated = crd_files()
    committed = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / folder).glob("*.yaml")}
    assert committed == generated, f"{folder}/ is stale: run `roomctl crds --write crds --write helm/roomctl/crds`"


def _nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for key, sub in node.get("properties", {}).items():
        found += _nodes(sub, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        found += _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _nodes(node["additionalProperties"], f"{path}{{}}")
    return found


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    nodes = _nodes(schema_of(crd))
    assert len(nodes) > 20
    for path, node in nodes:
        # Untyped only where Kubernetes allows it: a value kept as given (metadata: string or mapping).
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True, f"{path} has no type"
        assert not FORBIDDEN_KEYS & set(node), f"{path}: {FORBIDDEN_KEYS & set(node)}"
        assert node.get("additionalProperties") is not False, path
        assert node.get("format") not in {"uint32", "uint64", "uint"}, path
        if node.get("type") == "integer" and path.split(".")[-1] in {"emptyTimeout", "departureTimeout",
                                                                  "maxParticipants", "minPlayoutDelay"}:
            assert node["minimum"] >= 0, path
    text = yaml.safe_dump(crd)
    assert "$ref" not in text and "additionalProperties: false" not in text


ROOM_OWNING_CRDS = [c for c in all_crds() if c["spec"]["names"]["kind"] != "RoomPolicy"]  # tests/policy: RoomPolicy


@pytest.mark.parametrize("crd", ROOM_OWNING_CRDS, ids=lambda c: c["metadata"]["name"])
def test_crd_surface(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    version = spec["versions"][0]
    assert spec["scope"] == "Namespaced" and spec["group"] == "roomctl.dev" and version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert "livekit" in spec["names"]["categories"] and spec["names"]["shortNames"]
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Room", "Ready", "Synced", "Participants", "Age"]
    synced = next(c for c in version["additionalPrinterColumns"] if c["name"] == "Synced")
    assert synced["jsonPath"] == '.status.conditions[?(@.type=="Synced")].status'
    status = schema_of(crd)["properties"]["status"]["properties"]
    assert {"observedGeneration", "roomSid", "numParticipants", "lastSyncTime", "drift", "conditions"} <= set(status)
    condition = status["conditions"]["items"]
    assert condition["required"] == ["type", "status", "lastTransitionTime", "reason", "message"]
    assert set(condition["properties"]) == {"type", "status", "observedGeneration", "lastTransitionTime",
                                            "reason", "message"}
    assert condition["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def _example_objects(kind: str) -> list[dict[str, Any]]:
    docs = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == kind]
    return docs


def test_every_example_room_is_valid() -> None:
    examples = _example_objects("Room")
    assert len(examples) >= 5
    for obj in examples:
        assert validate(ROOM_CRD, obj) == [], obj["metadata"]["name"]


def room(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "roomctl.dev/v1alpha1", "kind": "Room", "metadata": {"name": "r"}, "spec": spec}


INVALID = {
    "negative timeout": room(emptyTimeout=-5),
    "zero emptyTimeout": room(emptyTimeout=0),
    "string timeout": room(departureTimeout="60"),
    "float participants": room(maxParticipants=1.5),
    "unknown field": room(emptyTimout=60),
    "snake_case in a CR": room(empty_timeout=60),
    "bad lifecycle": room(policy={"lifecycle": "Forever"}),
    "bad ignore field": room(policy={"ignore": ["egress"]}),
    "agent without a name": room(agents=[{"metadata": "x"}]),
    "permission not a bool": room(participants=[{"identity": "*", "permission": {"canPublish": "yes"}}]),
    "bad participant kind": room(participants=[{"kinds": ["ROBOT"]}]),
    "duplicate agent names (CEL)": room(agents=[{"agentName": "a"}, {"agentName": "a", "metadata": "x"}]),
    "min > max playout (CEL)": room(minPlayoutDelay=500, maxPlayoutDelay=100),
    "no spec": {"apiVersion": "roomctl.dev/v1alpha1", "kind": "Room", "metadata": {"name": "r"}},
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_rooms_are_rejected(name: str) -> None:
    assert validate(ROOM_CRD, INVALID[name]) != []


def test_valid_edge_cases_pass() -> None:
    assert validate(ROOM_CRD, room(minPlayoutDelay=500, maxPlayoutDelay=0)) == []
    assert validate(ROOM_CRD, room(participants=[{"identity": "*", "attributes": {"gone": None}}])) == []
    assert validate(ROOM_CRD, room(egress={"room": {"roomName": "x", "anything": [1, 2]}})) == []


def test_room_name_is_immutable() -> None:
    old = room(name="alpha")
    assert validate(ROOM_CRD, room(name="alpha", metadata="x"), old=old) == []
    assert any("immutable" in e for e in validate(ROOM_CRD, room(name="beta"), old=old))
    assert any("immutable" in e for e in validate(ROOM_CRD, room(), old=old))
    assert any("immutable" in e for e in validate(ROOM_CRD, room(name="x"), old=room()))


def test_both_kinds_are_generated() -> None:
    names = {c["spec"]["names"]["kind"]: c["spec"]["names"] for c in all_crds()}
    assert set(names) == {"Room", "PlugNmeetRoom", "RoomPolicy"}
    assert names["PlugNmeetRoom"]["plural"] == "plugnmeetrooms" and names["PlugNmeetRoom"]["shortNames"] == [
        "pnmroom", "pnmrooms"]
    assert PNM_CRD["metadata"]["name"] == "plugnmeetrooms.roomctl.dev"


def test_every_example_plugnmeet_room_is_valid() -> None:
    examples = _example_objects("PlugNmeetRoom")
    assert [e["metadata"]["name"] for e in examples if e["metadata"]["name"] == "physics-101"]  # classroom.yaml
    for obj in examples:
        assert validate(PNM_CRD, obj) == [], obj["metadata"]["name"]


def pnm(name: str = "physics", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"roomTitle": "Physics"}, **spec}
    return {"apiVersion": "roomctl.dev/v1alpha1", "kind": "PlugNmeetRoom", "metadata": {"name": name},
            "spec": body}


PNM_INVALID = {
    "room id with a dot": pnm(roomId="a.b"),
    "room id with a space": pnm(roomId="a b"),
    "room id with a slash": pnm(roomId="a/b"),
    "non-ASCII room id": pnm(roomId="h\u00e9llo"),
    "empty room id": pnm(roomId=""),
    "room id over 256 characters": pnm(roomId="a" * 257),
    "reserved user_ prefix (CEL)": pnm(roomId="user_42"),
    "reserved -FIELD_ (CEL)": pnm(roomId="x-FIELD_y"),
    "name with a dot and no roomId (CEL)": pnm(name="physics.101"),
    "no roomTitle": {**pnm(), "spec": {"metadata": {}}},
    "empty roomTitle": {**pnm(), "spec": {"metadata": {"roomTitle": ""}}},
    "no metadata": {**pnm(), "spec": {"emptyTimeout": 60}},
    "zero emptyTimeout": pnm(emptyTimeout=0),
    "string maxParticipants": pnm(maxParticipants="40"),
    "unknown feature": {**pnm(), "spec": {"metadata": {"roomTitle": "P", "roomFeatures": {"allowTeleport": True}}}},
    "bad recreate policy": pnm(policy={"recreate": "Sometimes"}),
    "too many breakout rooms": {**pnm(), "spec": {"metadata": {"roomTitle": "P", "roomFeatures": {
        "breakoutRoomFeatures": {"allowedNumberRooms": 17}}}}},
    "serverRef without a name": pnm(serverRef={}),
}


@pytest.mark.parametrize("name", sorted(PNM_INVALID))
def test_invalid_plugnmeet_rooms_are_rejected(name: str) -> None:
    assert validate(PNM_CRD, PNM_INVALID[name]) != []


def test_the_models_refuse_what_the_crd_refuses() -> None:
    """The CRD's room-id rules are the model's (check_room_id), not a second opinion."""
    from pydantic import ValidationError

    from reconciler.model.plugnmeet import PlugNmeetRoomManifest

    for name in ("room id with a dot", "reserved user_ prefix (CEL)", "reserved -FIELD_ (CEL)", "room id over 256 characters",
                 "name with a dot and no roomId (CEL)", "non-ASCII room id"):
        with pytest.raises(ValidationError):
            PlugNmeetRoomManifest.model_validate(PNM_INVALID[name])
    assert validate(PNM_CRD, pnm(roomId="Physics_101-a")) == [] and validate(PNM_CRD, pnm(roomId="a" * 256)) == []
    assert validate(PNM_CRD, pnm(name="physics.101", roomId="physics-101")) == []


def test_plugnmeet_room_id_is_immutable() -> None:
    old = pnm(roomId="alpha")
    assert validate(PNM_CRD, pnm(roomId="alpha", emptyTimeout=60), old=old) == []
    assert any("immutable" in e for e in validate(PNM_CRD, pnm(roomId="beta"), old=old))
    assert any("immutable" in e for e in validate(PNM_CRD, pnm(), old=old))
