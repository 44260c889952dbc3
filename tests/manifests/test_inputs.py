"""What is read, and what happens when something cannot be: never act on a partial view (issue 9
item 3), foreign documents skipped and counted, each file read once, errors at the line a person
fixes (issue 13's manifest conventions)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.common import skipped_json
from reconciler.cli.main import main
from reconciler.manifests import ManifestError, load_inputs
from tests.support.server import SandboxServer
from tests.support.unreadable import run_roomctl

ROOM = "apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {{name: {name}}}\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def errors_of(paths: list[str]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_inputs(paths)
    return [str(i) for i in caught.value.issues]


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    """A sub-folder nobody may list (restored afterwards so pytest can clean up)."""
    secret = tmp_path / "rooms" / "secret"
    write(secret / "b.yaml", ROOM.format(name="b-one"))
    secret.chmod(0)
    yield secret
    secret.chmod(0o755)


def test_unreadable_folder_fails_the_whole_run(tmp_path: Path, locked: Path) -> None:
    write(tmp_path / "rooms" / "a.yaml", ROOM.format(name="a-one"))
    result = run_roomctl(["validate", str(tmp_path / "rooms")])
    assert result.returncode == 1, result
    assert f"error: {locked}: cannot read folder: Permission denied" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


def test_unreadable_folder_never_pruned(tmp_path: Path, sandbox: SandboxServer) -> None:
    """The reported case: `apply --prune --prune-scope '*-one'` deleted the room declared in a
    folder it could not read, exit 0. Now: exit 1, before any request, and the room is still there."""
    rooms = tmp_path / "rooms"
    write(rooms / "a.yaml", ROOM.format(name="a-one"))
    write(rooms / "secret" / "b.yaml", ROOM.format(name="b-one"))
    env = {"LIVEKIT_URL": sandbox.url, "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"}
    created = run_roomctl(["apply", str(rooms)], env=env)
    assert created.returncode == 0, created.stderr
    sandbox.test_api("DELETE", "requests")
    (rooms / "secret").chmod(0)
    try:
        result = run_roomctl(["apply", "--prune", "--prune-scope", "*-one", str(rooms)], env=env)
    finally:
        (rooms / "secret").chmod(0o755)
    assert result.returncode == 1, result
    assert "cannot read folder" in result.stderr
    assert sandbox.counts() == {}, "no request may be made when an input could not be read"
    check = run_roomctl(["diff", str(rooms)], env=env)
    assert check.returncode == 0, check.stdout + check.stderr  # both rooms still exist


def test_unreadable_file_dangling_link_and_fifo(tmp_path: Path) -> None:
    rooms = tmp_path / "rooms"
    write(rooms / "a.yaml", ROOM.format(name="a"))
    locked = write(rooms / "locked.yaml", ROOM.format(name="l"))
    locked.chmod(0)
    (rooms / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    os.mkfifo(rooms / "pipe.yaml")  # reading it would block forever
    try:
        result = run_roomctl(["validate", str(rooms)])
    finally:
        locked.chmod(0o644)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"error: {rooms / 'locked.yaml'}: cannot read: Permission denied" in lines
    assert f"error: {rooms / 'gone.yaml'}: cannot read: No such file or directory" in lines
    assert f"error: {rooms / 'pipe.yaml'}: not a regular file" in lines
    assert lines[-1] == "3 error(s); nothing was sent to the server."


def test_missing_path_and_empty_folder_have_no_fake_position(tmp_path: Path) -> None:
    assert errors_of([str(tmp_path / "nonexist.yaml")]) == [f"{tmp_path / 'nonexist.yaml'}: no such file or directory"]
    (tmp_path / "empty").mkdir()
    assert errors_of([str(tmp_path / "empty")]) == [
        f"{tmp_path / 'empty'}: no manifest files given (no *.yaml or *.yml found)"]


def test_file_larger_than_the_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:  # sparse: 50 MB on paper, nothing on disk
        handle.truncate(50 * 1024 * 1024)
    assert errors_of([str(big)]) == [f"{big}: file is 52428800 bytes; the limit is 10 MiB (the server's request limit)"]


def test_same_file_twice_is_read_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    room = write(tmp_path / "rooms" / "a.yaml", ROOM.format(name="a"))
    (tmp_path / "link.yaml").symlink_to(room)
    inputs = load_inputs([str(room), str(tmp_path / "rooms"), str(room), str(tmp_path / "link.yaml")])
    assert [r.name for r in inputs.livekit] == ["a"]


def test_foreign_documents_are_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "kustomization.yaml",
          "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [rooms.yaml]\n")
    write(tmp_path / "rooms.yaml", ROOM.format(name="a") + "---\napiVersion: v1\nkind: Secret\n"
          "metadata: {name: livekit}\nstringData: {apiSecret: x}\n")
    inputs = load_inputs([str(tmp_path)])
    assert [r.name for r in inputs.livekit] == ["a"]
    assert inputs.skipped == 2
    assert main(["validate", "-v", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "1 room(s) valid. 2 document(s) of other tools skipped" in out
    assert f"roomctl: {tmp_path / 'kustomization.yaml'}:1: skipped Kustomization (kustomize.config.k8s.io/v1beta1)" in err
    assert f"roomctl: {tmp_path / 'rooms.yaml'}:5: skipped Secret (v1)" in err
    assert "apiSecret" not in out + err


def test_foreign_documents_counted_in_diff_and_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "PLUGNMEET_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "rooms" / "kustomization.yaml",
          "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n")
    write(tmp_path / "rooms" / "a.yaml", ROOM.format(name="foreign-a"))
    assert main(["diff", "rooms"]) == 2
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == ("1 document(s) of other tools skipped (not apiVersion roomctl.dev/v1alpha1; "
                                    "-v lists them).")
    assert main(["diff", "-o", "json", "rooms"]) == 2
    plan = json.loads(capsys.readouterr().out)
    assert plan["skipped_documents"] == [{"file": "rooms/kustomization.yaml", "line": 1,
                                          "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}]
    assert main(["apply", "rooms"]) == 0
    assert "1 document(s) of other tools skipped" in capsys.readouterr().out
    assert main(["apply", "-o", "json", "rooms"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_documents"][0]["kind"] == "Kustomization"


def test_roomctl_group_typos_are_errors_not_skipped(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "apiVersion: roomctl.dev/v1\nkind: Room\nmetadata: {name: a}\n---\n"
          "apiVersion: roomctl.de/v1alpha1\nkind: Room\nmetadata: {name: b}\n")
    assert errors_of([str(tmp_path / "a.yaml")]) == [
        f"{tmp_path / 'a.yaml'}:1:1: apiVersion: unknown apiVersion 'roomctl.dev/v1' (expected 'roomctl.dev/v1alpha1')",
        f"{tmp_path / 'a.yaml'}:5:1: apiVersion: unknown apiVersion 'roomctl.de/v1alpha1' (expected 'roomctl.dev/v1alpha1')",
    ]


def test_document_markers_and_empty_documents_are_accepted(tmp_path: Path) -> None:
    """What `kubectl get -o yaml` and `helm template` print: leading/trailing `---`, empty documents."""
    text = "---\n# comment only\n---\n" + ROOM.format(name="a") + "---\n---\n" + ROOM.format(name="b") + "...\n---\n"
    inputs = load_inputs([str(write(tmp_path / "a.yaml", text))])
    assert [(r.name, r.line) for r in inputs.livekit] == [("a", 4), ("b", 9)]


def test_duplicate_room_is_reported_at_the_repeating_name(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", ROOM.format(name="x") + "spec:\n  name: same\n")
    write(tmp_path / "b.yaml", "# comment\n" + ROOM.format(name="y") + "spec:\n  emptyTimeout: 5\n  name: same\n")
    assert errors_of([str(tmp_path)]) == [
        f"{tmp_path / 'b.yaml'}:7:3: room 'same' is already declared at {tmp_path / 'a.yaml'}:1"]


def test_stdin_is_bounded(tmp_path: Path) -> None:
    result = run_roomctl(["validate", "-"], stdin=b"a: " + b"x" * (11 * 1024 * 1024) + b"\n")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "error: <stdin>: file is larger than 10 MiB (the server's request limit)"


def test_a_kubernetes_list_stands_for_its_items(tmp_path: Path) -> None:
    """`kubectl get -o yaml` wraps several objects in a v1 List: the roomctl documents inside are read
    (never skipped as another tool's), other items are skipped and counted, errors point inside."""
    text = ("apiVersion: v1\nkind: List\nitems:\n"
            "  - apiVersion: roomctl.dev/v1alpha1\n    kind: Room\n    metadata: {name: in-list}\n"
            "  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: c}\n")
    inputs = load_inputs([str(write(tmp_path / "list.yaml", text))])
    assert [(r.name, r.line) for r in inputs.livekit] == [("in-list", 4)]
    assert [(d.kind, d.line) for d in inputs.foreign] == [("ConfigMap", 7)]
    bad = write(tmp_path / "bad.yaml", text + "  - apiVersion: roomctl.dev/v1alpha1\n    kind: Room\n"
                "    metadata: {name: b, uid: x}\n")
    assert errors_of([str(bad)]) == [f"{bad}:12:25: metadata.uid: unknown field"]


def gitops_repo(root: Path) -> Path:
    """A GitOps repo as found in the wild: CI workflow, compose file, a Helm chart, the rooms."""
    write(root / ".github" / "workflows" / "ci.yml", "name: ci\non: [push]\njobs: {build: {runs-on: x}}\n")
    write(root / ".git" / "config.yaml", "core: {bare: false}\n")
    write(root / ".secrets.yaml", "emptyTimeout: oops\n")
    write(root / "docker-compose.yaml", "name: app\nservices:\n  web: {image: nginx}\n")
    write(root / "helm" / "roomctl" / "Chart.yaml", "apiVersion: v2\nname: roomctl\nversion: 1.0.0\n")
    write(root / "helm" / "roomctl" / "values.yaml", "image: {repository: x}\ningress: {enabled: false}\n")
    write(root / "helm" / "roomctl" / "templates" / "d.yaml", "{{- if .Values.x }}\nkind: {{ .Values.k }}\n")
    write(root / "rooms" / "lobby.yaml", "name: lobby\nemptyTimeout: 60\n")
    write(root / "rooms" / "hall.yaml", ROOM.format(name="hall"))
    return root


def test_a_gitops_repo_reads_only_the_rooms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Hidden folders and files are not walked, a Helm chart folder is skipped whole, a document with
    no apiVersion/kind and no RoomConfiguration field (docker-compose) is another tool's."""
    repo = gitops_repo(tmp_path / "repo")
    inputs = load_inputs([str(repo)])
    assert sorted(r.name for r in inputs.livekit) == ["hall", "lobby"]
    assert inputs.skipped == 2
    assert main(["validate", "-v", str(repo)]) == 0
    out, err = capsys.readouterr()
    assert "2 room(s) valid. 2 document(s) of other tools skipped" in out
    assert f"roomctl: {repo / 'helm' / 'roomctl'}: skipped Helm chart: holds Chart.yaml; not read" in err
    assert (f"roomctl: {repo / 'docker-compose.yaml'}:1: skipped a document: no apiVersion/kind and no "
            "RoomConfiguration field; not a roomctl document") in err
    assert ".github" not in err and ".git" not in err and ".secrets" not in err
    assert sorted(skipped_json(inputs), key=str) == sorted([
        {"file": str(repo / "helm" / "roomctl"), "line": None, "apiVersion": None, "kind": "Helm chart"},
        {"file": str(repo / "docker-compose.yaml"), "line": 1, "apiVersion": None, "kind": None}], key=str)
    # A Helm chart given as the folder itself is skipped too.
    assert [(d.file, d.kind) for d in load_inputs([str(repo / "helm" / "roomctl")]).foreign] == [
        (str(repo / "helm" / "roomctl"), "Helm chart")]


def test_a_hidden_path_given_explicitly_is_read(tmp_path: Path) -> None:
    repo = gitops_repo(tmp_path / "repo")
    assert errors_of([str(repo / ".secrets.yaml")]) == [
        f"{repo / '.secrets.yaml'}:1:1: name: required field is missing (no apiVersion/kind: read as a bare "
        "LiveKit RoomConfiguration)",
        f"{repo / '.secrets.yaml'}:1:1: emptyTimeout: Input should be a valid integer"]
    hidden = write(tmp_path / ".rooms" / "r.yaml", ROOM.format(name="hidden"))
    assert [r.name for r in load_inputs([str(hidden.parent)]).livekit] == ["hidden"]


def test_a_bare_document_with_a_room_configuration_key_is_checked_strictly(tmp_path: Path) -> None:
    """One RoomConfiguration field (or one typo away from one) makes it a bare config: a typo is an
    error with a did-you-mean, and the first error of the document says how it was read."""
    bare = write(tmp_path / "lobby.yaml", "name: lobby\nemptyTimout: 60\n---\nname: b\nmaxParticipants: x\n"
                 "max_participant: 3\n")
    assert errors_of([str(bare)]) == [
        f"{bare}:2:1: emptyTimout: unknown field (did you mean 'emptyTimeout'?) (no apiVersion/kind: read as a "
        "bare LiveKit RoomConfiguration)",
        f"{bare}:5:1: maxParticipants: Input should be a valid integer (no apiVersion/kind: read as a bare "
        "LiveKit RoomConfiguration)",
        f"{bare}:6:1: max_participant: unknown field (did you mean 'maxParticipants'?)"]


def test_errors_are_in_line_order_within_a_file_and_files_in_read_order(tmp_path: Path) -> None:
    room = ("apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {name: r}\nspec:\n  emptyTimeout: x\n"
            "  syncStream: true\n  tags: {a: [1]}\n  maxParticipant: 3\n")
    write(tmp_path / "b.yaml", room)
    write(tmp_path / "a.yaml", room.replace("name: r", "name: s"))
    issues = errors_of([str(tmp_path / "b.yaml"), str(tmp_path)])
    positions = [i.split(": ")[0] for i in issues]
    expected = [f"{tmp_path / f}:{line}" for f in ("b.yaml", "a.yaml")
                for line in ("5:3", "6:3", "7:10", "8:3")]
    assert positions == expected, issues
