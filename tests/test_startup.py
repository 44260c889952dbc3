"""What a command's start-up does not pay for: validators of kinds it does not read (pydantic's
defer_build). No timing here; what is built is observable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOM = """apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: lobby}
spec: {emptyTimeout: 60, metadata: {team: a}}
"""

PROBE = """
import json, sys
from pydantic import BaseModel
import reconciler.cli.main, reconciler.manifests, reconciler.serversfile
import reconciler.model.base, reconciler.model.room, reconciler.model.policy, reconciler.model.plugnmeet

def built():
    # The models of the kinds a Room run does not read, and which of them have a validator.
    models = {cls for mod in (reconciler.model.policy, reconciler.model.plugnmeet, reconciler.serversfile)
              for cls in vars(mod).values()
              if isinstance(cls, type) and issubclass(cls, BaseModel) and cls.__module__ == mod.__name__}
    models.add(reconciler.model.room.BareRoomConfiguration)
    return sorted(c.__name__ for c in models if c.__pydantic_complete__), len(models)

at_import, count = built()
spec_at_import = reconciler.model.room.RoomSpec.__pydantic_complete__  # plan's empty spec is built on use
fields = sorted(reconciler.model.policy.RoomPolicyManifest.model_fields)
inputs = reconciler.manifests.load_inputs([sys.argv[1]])
after_rooms, _ = built()
print(json.dumps({"import": at_import, "spec": spec_at_import, "count": count, "fields": fields, "rooms": after_rooms,
                  "name": inputs.livekit[0].name, "metadata": inputs.livekit[0].spec.metadata}))
"""


def test_validators_are_built_only_for_the_kinds_a_run_reads(tmp_path: Path) -> None:
    folder = tmp_path / "rooms"
    folder.mkdir()
    (folder / "room.yaml").write_text(ROOM, encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert seen["count"] > 20  # the walk found the models
    assert seen["import"] == []  # importing the CLI builds none of them
    assert seen["spec"] is False  # nor RoomSpec's own validator (RoomManifest's includes it)
    assert seen["fields"] == ["api_version", "kind", "metadata", "spec"]  # fields are known without a build
    assert seen["rooms"] == []  # nor does reading Rooms
    assert (seen["name"], seen["metadata"]) == ("lobby", '{"team":"a"}')


def test_a_deferred_model_validates_dumps_and_describes_itself_as_before() -> None:
    from reconciler.model.policy import RoomPolicyManifest

    doc = {"apiVersion": "roomctl.dev/v1alpha1", "kind": "RoomPolicy", "metadata": {"name": "p"},
           "spec": {"rooms": ["support-*"], "roomMetadata": {"b": 1, "a": 2}}}
    policy = RoomPolicyManifest.model_validate(doc)
    assert policy.spec.room_metadata == '{"a":2,"b":1}'
    assert policy.model_dump(by_alias=True)["spec"]["rooms"] == ["support-*"]
    schema = RoomPolicyManifest.model_json_schema()
    assert schema["required"] == ["apiVersion", "kind", "metadata", "spec"]


def test_the_cli_does_not_load_what_only_some_commands_use() -> None:
    lazy = ("reconciler.crd", "reconciler.sandbox.faults", "reconciler.savedplan", "reconciler.cli.saved",
            "reconciler.serversfile", "reconciler.execute", "google.protobuf")
    probe = f"import sys, reconciler.cli.main; print(sorted(m for m in {lazy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
