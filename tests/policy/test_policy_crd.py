"""The generated roompolicies.roomctl.dev CRD: surface, the example validates, bad policies refused,
and the model refuses what only it can see (globs that match nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.crd import all_crds
from tests.support.crdcheck import schema_of, validate

ROOT = Path(__file__).resolve().parents[2]
POLICY_CRD = next(c for c in all_crds() if c["spec"]["names"]["kind"] == "RoomPolicy")


def policy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "roomctl.dev/v1alpha1", "kind": "RoomPolicy", "metadata": {"name": "p"},
            "spec": {"rooms": ["support-*"], **spec}}


def test_surface() -> None:
    spec = POLICY_CRD["spec"]
    assert POLICY_CRD["metadata"]["name"] == "roompolicies.roomctl.dev"
    assert spec["names"]["plural"] == "roompolicies" and spec["names"]["shortNames"] == ["lkpolicy", "lkpolicies"]
    assert "livekit" in spec["names"]["categories"] and spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Priority", "Rooms", "Changes", "Ready", "Synced", "Age"]
    status = schema_of(POLICY_CRD)["properties"]["status"]["properties"]
    assert {"observedGeneration", "matchedRooms", "lastEnforcedTime", "changesLastSweep", "conditions"} <= set(status)
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    # No room-name immutability rule: a policy owns no room.
    assert "immutable" not in yaml.safe_dump(POLICY_CRD)


def test_example_policies_validate() -> None:
    found = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        found += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "RoomPolicy"]
    assert [d["metadata"]["name"] for d in found] == ["support-calls"]
    for obj in found:
        assert validate(POLICY_CRD, obj) == [], obj["metadata"]["name"]


INVALID = {
    "no rooms": {**policy(), "spec": {"participants": []}},
    "empty rooms": policy(rooms=[]),
    "empty glob": policy(rooms=[""]),
    "string priority": policy(priority="1"),
    "float priority": policy(priority=1.5),
    "unknown field": policy(partcipants=[]),
    "bad ignore": policy(policy={"ignore": ["emptyTimeout"]}),
    "bad kind": policy(participants=[{"identity": "*", "kinds": ["ROBOT"]}]),
    "duplicate agents (CEL)": policy(agents=[{"agentName": "a"}, {"agentName": "a", "metadata": "x"}]),
    "no spec": {"apiVersion": "roomctl.dev/v1alpha1", "kind": "RoomPolicy", "metadata": {"name": "p"}},
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_policies_are_rejected(name: str) -> None:
    assert validate(POLICY_CRD, INVALID[name]) != []


def test_valid_edge_cases_pass_and_the_model_catches_the_rest() -> None:
    from pydantic import ValidationError

    from reconciler.model import RoomPolicyManifest

    assert validate(POLICY_CRD, policy(roomMetadata={"queue": "x"}, priority=-5,
                                       participants=[{"identity": "*", "attributes": {"gone": None}}])) == []
    # The CRD cannot see that an exclude covers every room; the model (and so the operator's status) does.
    hidden = policy(exclude=["*"])
    assert validate(POLICY_CRD, hidden) == []
    with pytest.raises(ValidationError, match="exclude covers every name"):
        RoomPolicyManifest.model_validate(hidden)
