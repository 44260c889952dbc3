"""Targeting (--target globs, -l selectors), `roomctl delete` and Flux-style spec.suspend
(issue 13 item 2), against a served sandbox whose request counts by room prove what was touched."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import yaml

from reconciler.engine import select_inputs
from reconciler.manifests import load_inputs
from reconciler.observed import ObservedRoom, ObservedState
from reconciler.plan import PlanOptions, Selection, plan
from tests.support.cli import roomctl
from tests.support.server import SandboxServer
from tests.support.tokens import mint

FLEET = """\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: web-1, labels: {team: web, tier: gold}}
spec: {maxParticipants: 10, metadata: v1}
---
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: web-2, labels: {team: web}}
spec: {maxParticipants: 10, metadata: v1}
---
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: ops-1, labels: {team: ops, tier: gold}}
spec: {maxParticipants: 10, metadata: v1}
---
apiVersion: roomctl.dev/v1alpha1
kind: PlugNmeetRoom
metadata: {name: class-1, labels: {team: edu}}
spec:
  metadata: {roomTitle: Class}
"""


def fleet(tmp_path: Path, version: str = "v1") -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.replace("metadata: v1", f"metadata: {version}"))
    return path


def rooms_touched(sandbox: SandboxServer) -> set[str]:
    return set(sandbox.test_api("GET", "requests")["by_room"])


def test_target_glob_never_touches_other_rooms(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = fleet(tmp_path)
    assert roomctl(sandbox, "apply", str(path)).returncode == 0
    path = fleet(tmp_path, "v2")  # every room's metadata changes
    sandbox.test_api("DELETE", "requests")
    result = roomctl(sandbox, "apply", "--target", "web-*", str(path), "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(r["name"] for r in report["rooms"]) == ["web-1", "web-2"]
    assert rooms_touched(sandbox) == {"web-1", "web-2"}  # ops-1 and class-1: not even observed
    pending = json.loads(roomctl(sandbox, "diff", str(path), "-o", "json").stdout)
    assert {r["name"] for r in pending["rooms"] if r["status"] == "update"} == {"ops-1"}


def test_selector_over_labels_never_touches_other_rooms(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = fleet(tmp_path)
    sandbox.test_api("DELETE", "requests")
    result = roomctl(sandbox, "apply", "-l", "tier=gold", str(path))
    assert result.returncode == 0, result.stderr
    assert rooms_touched(sandbox) == {"web-1", "ops-1"}
    sandbox.test_api("DELETE", "requests")
    both = roomctl(sandbox, "diff", "-l", "team=web,tier=gold", "--target", "web-*", str(path), "-o", "json")
    assert [r["name"] for r in json.loads(both.stdout)["rooms"]] == ["web-1"]  # all labels and a target
    assert rooms_touched(sandbox) == {"web-1"}
    edu = roomctl(sandbox, "apply", "-l", "team=edu", str(path))
    assert edu.returncode == 0, edu.stderr
    assert rooms_touched(sandbox) == {"web-1", "class-1"}  # plugNmeet's getActiveRoomsInfo names no room
    nothing = roomctl(sandbox, "diff", "--target", "nope-*", str(path))
    assert nothing.returncode == 0 and "no declared room matches --target nope-*" in nothing.stderr
    bad = roomctl(sandbox, "diff", "-l", "team", str(path))
    assert bad.returncode == 1 and "KEY=VALUE" in bad.stderr


def test_targeted_prune_stays_inside_the_target(sandbox: SandboxServer, tmp_path: Path) -> None:
    for name in ("web-old", "ops-old"):
        sandbox_create(sandbox, name)
    path = fleet(tmp_path)
    result = roomctl(sandbox, "apply", "--target", "web-*", "--prune", "--prune-scope", "*", str(path), "-o", "json")
    assert result.returncode == 0, result.stderr
    deleted = {r["name"] for r in json.loads(result.stdout)["rooms"] if r["status"] == "delete"}
    assert deleted == {"web-old"}  # ops-old is in the prune scope but outside the target
    labelled = roomctl(sandbox, "diff", "-l", "team=ops", "--prune", "--prune-scope", "*", str(path), "-o", "json")
    assert json.loads(labelled.stdout)["summary"]["delete"] == 0  # undeclared rooms carry no labels


def sandbox_create(sandbox: SandboxServer, name: str) -> None:
    token = mint({"video": {"roomCreate": True}})
    response = httpx.post(f"{sandbox.url}/twirp/livekit.RoomService/CreateRoom", json={"name": name},
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


def test_selection_is_one_mechanism_for_a_single_room() -> None:
    """The engine's Selection is what a webhook uses for "this one room": glob characters in the
    name are literal there."""
    chosen = Selection.room("odd[1]*")
    assert chosen.covers("odd[1]*", None) and not chosen.covers("odd1x", None)
    assert Selection(labels=(("a", "b"),)).covers("x", {"a": "b", "c": "d"})
    assert not Selection(labels=(("a", "b"),)).covers("x", None)


SUSPENDED = """\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: paused}
spec:
  suspend: true
  maxParticipants: 3
  participants: [{identity: "*", permission: {canPublish: false}}]
---
apiVersion: roomctl.dev/v1alpha1
kind: PlugNmeetRoom
metadata: {name: paused-class}
spec: {suspend: true, metadata: {roomTitle: Paused}}
"""


def test_suspended_rooms_are_reported_and_nothing_is_done(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SUSPENDED)
    sandbox.test_api("DELETE", "requests")
    diff = roomctl(sandbox, "diff", str(path))
    assert diff.returncode == 0, diff.stdout  # nothing pending
    assert 'room "paused"  suspended (spec.suspend: true; nothing done)' in diff.stdout
    assert "2 suspended (spec.suspend)" in diff.stdout
    applied = roomctl(sandbox, "apply", str(path), "-o", "json")
    assert applied.returncode == 0
    report = json.loads(applied.stdout)
    assert {r["status"] for r in report["rooms"]} == {"suspended"} and report["results"] == []
    counts = sandbox.counts()
    assert not any(k.endswith(("CreateRoom", ".create", "ListParticipants")) for k in counts), counts
    # A live room that is suspended: its rules are not enforced, it is not deleted.
    sandbox_create(sandbox, "paused")
    sandbox.test_api("POST", "join", {"token": mint({"sub": "p1", "video": {"roomJoin": True, "room": "paused",
                                                                              "canPublish": True}})})
    assert roomctl(sandbox, "apply", str(path)).returncode == 0
    assert roomctl(sandbox, "delete", "-f", str(path), "--occupied").returncode == 0
    assert "paused" in sandbox.test_api("GET", "requests")["by_room"]
    assert "RoomService.UpdateParticipant" not in sandbox.counts()
    assert "RoomService.DeleteRoom" not in sandbox.counts()


def test_suspend_in_the_pure_plan() -> None:
    manifest = Path(__file__).parent / "_suspend.yaml"
    try:
        manifest.write_text(SUSPENDED)
        inputs = load_inputs([str(manifest)])
    finally:
        manifest.unlink()
    observed = ObservedState({"paused": ObservedRoom("paused", "RM_1", 300, 20, 99, "", num_participants=1)})
    room = plan(inputs.livekit, observed, PlanOptions()).rooms[0]
    assert (room.status, room.actions, room.drifts, room.sid) == ("suspended", (), (), "RM_1")
    assert select_inputs(inputs, Selection(targets=("paused",))).livekit == inputs.livekit


DELETABLE = """\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: del-empty}
---
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: del-busy}
---
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: del-keep}
spec: {policy: {deletion: Orphan}}
---
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: del-never-created, labels: {x: y}}
spec: {policy: {lifecycle: OnDemand}}
---
apiVersion: roomctl.dev/v1alpha1
kind: PlugNmeetRoom
metadata: {name: del-class}
spec: {metadata: {roomTitle: Bye}}
"""


def test_delete_honours_policy_and_the_occupied_guard(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(DELETABLE)
    assert roomctl(sandbox, "apply", str(path)).returncode == 0
    sandbox_create(sandbox, "undeclared")
    joined = sandbox.test_api("POST", "join", {"token": mint({"sub": "u", "video": {"roomJoin": True,
                                                                                     "room": "del-busy"}})})
    assert joined["participant"]["identity"] == "u"
    dry = roomctl(sandbox, "delete", "-f", str(path), "--dry-run", "-o", "json")
    assert dry.returncode == 0
    status = {r["name"]: r["status"] for r in json.loads(dry.stdout)["rooms"]}
    assert status == {"del-empty": "delete", "del-busy": "drift", "del-keep": "drift",
                      "del-never-created": "absent", "del-class": "delete"}
    assert "RoomService.DeleteRoom" not in sandbox.counts()  # a dry run deletes nothing
    result = roomctl(sandbox, "delete", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert "not deleted: the room has 1 participant(s) (--occupied deletes it anyway)" in result.stdout
    assert "not deleted: policy.deletion is Orphan" in result.stdout
    assert sandbox.counts()["RoomService.DeleteRoom"] == 1 and sandbox.counts()["plugnmeet.endRoom"] == 1
    forced = roomctl(sandbox, "delete", "-f", str(path), "--occupied", "--target", "del-busy")
    assert forced.returncode == 0 and "disconnecting 1 participant" in forced.stdout
    assert rooms_names(sandbox) == ["del-keep", "undeclared"]  # Orphan kept, undeclared never touched


def rooms_names(sandbox: SandboxServer) -> list[str]:
    token = mint({"video": {"roomList": True}})
    response = httpx.post(f"{sandbox.url}/twirp/livekit.RoomService/ListRooms", json={},
                          headers={"Authorization": f"Bearer {token}"})
    return sorted(r["name"] for r in response.json().get("rooms", []))


def test_export_target_reads_only_the_targeted_rooms(sandbox: SandboxServer) -> None:
    for name in ("exp-a1", "exp-a2", "exp-b1"):
        sandbox_create(sandbox, name)
    sandbox.test_api("DELETE", "requests")
    result = roomctl(sandbox, "export", "--target", "exp-a*")
    assert result.returncode == 0, result.stderr
    assert "name: exp-a1" in result.stdout and "name: exp-a2" in result.stdout and "exp-b1" not in result.stdout
    assert "exp-b1" not in sandbox.test_api("GET", "requests")["by_room"]  # no ListDispatch for it


def test_targeting_restricts_what_room_policies_govern() -> None:
    """A --target run touches no live room outside it, even one a RoomPolicy matches; the
    observation does not even ask for its participants."""
    from reconciler.plan import what_to_observe
    from tests.plan.test_plan_policy import MUTE, policy
    from tests.plan.test_plan_rules import observed, participant, state

    policies = [policy("support", participants=[MUTE])]
    live = state(observed("support-1", participants=(participant("u1"),)),
                 observed("support-2", participants=(participant("u2"),)))
    chosen = Selection(targets=("support-2",))
    result = plan([], live, PlanOptions(selection=chosen), policies)
    assert [(a.room, a.target) for a in result.actions] == [("support-2", "u2")]
    want = what_to_observe([], policies, selection=chosen)
    assert not want.needs("support-1").participants and want.needs("support-2").participants


def test_target_with_a_room_policy_through_the_cli(sandbox: SandboxServer) -> None:
    """The CLI keeps the RoomPolicies when targeting, and they act on the targeted live room only."""
    fleet_file = Path(__file__).resolve().parents[2] / "examples" / "support-fleet.yaml"
    for room in ("support-1", "support-2"):
        sandbox.test_api("POST", "join", {"token": mint({"sub": f"banned-{room}",
                                                         "video": {"roomJoin": True, "room": room}})})
    sandbox.test_api("DELETE", "requests")
    result = roomctl(sandbox, "apply", "--target", "support-2", str(fleet_file), "-o", "json")
    assert result.returncode == 0, result.stderr
    removed = [(r["type"], r["room"]) for r in json.loads(result.stdout)["results"] if r["type"] == "RemoveParticipant"]
    assert removed == [("RemoveParticipant", "support-2")]
    assert "support-1" not in sandbox.test_api("GET", "requests")["by_room"]  # not even its participants listed


def test_export_selector_refreshes_the_labelled_rooms_from_the_server(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = fleet(tmp_path)
    assert roomctl(sandbox, "apply", str(path)).returncode == 0
    sandbox.test_api("DELETE", "requests")
    result = roomctl(sandbox, "export", "-f", str(path), "-l", "tier=gold")
    assert result.returncode == 0, result.stderr
    documents = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout)}
    assert set(documents) == {"web-1", "ops-1"}
    assert documents["web-1"]["metadata"]["labels"] == {"team": "web", "tier": "gold"}  # kept from the manifest
    assert rooms_touched(sandbox) == {"web-1", "ops-1"}
    refreshed = tmp_path / "refreshed.yaml"
    refreshed.write_text(result.stdout)
    assert roomctl(sandbox, "diff", "-l", "tier=gold", str(refreshed)).returncode == 0
    bare = roomctl(sandbox, "export", "-l", "tier=gold")
    assert bare.returncode == 1 and "labels, which live in manifests" in bare.stderr
