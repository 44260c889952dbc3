"""Findings of a newcomer's first run through the README (a fresh clone): secrets on the command
line, tracebacks on a port in use, silently ignored flags, usage messages."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import roomctl
from tests.support.server import SandboxServer

SECRET = "Zk9sUperSecretValue123"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def taken_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.parametrize("args", [
    ("diff", "{ex}", "--api-secret", SECRET),
    ("diff", "{ex}", f"--api-secret={SECRET}"),
    ("apply", "--api-secret", SECRET, "{ex}"),
    ("validate", "{ex}", "--api-secret", SECRET),
    ("token", "r", "id", "-f", "{ex}", "--api-secret", SECRET),
    ("export", "--api-secret", SECRET),
])
def test_an_api_secret_flag_is_refused_without_showing_it(sandbox: SandboxServer, args: tuple[str, ...]) -> None:
    """argparse's prefix matching once read `--api-secret X` as `--api-secret-file X` and printed X."""
    result = roomctl(sandbox, *(a.format(ex=EXAMPLES) for a in args), process=True)
    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr
    assert "--api-secret-file" in result.stderr and "LIVEKIT_API_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert sandbox.counts() == {}


def test_no_abbreviated_flags_and_unknown_flag_values_are_not_echoed(sandbox: SandboxServer) -> None:
    result = roomctl(sandbox, "diff", str(EXAMPLES), "--api-secret-f", SECRET)
    assert result.returncode == 1 and SECRET not in result.stderr and "--api-secret-f" in result.stderr
    result = roomctl(sandbox, "diff", str(EXAMPLES), "--token", SECRET)
    assert result.returncode == 1 and SECRET not in result.stderr and "--token" in result.stderr
    # a secret file that cannot be read: its path is not echoed either
    result = roomctl(sandbox, "diff", str(EXAMPLES), "--api-secret-file", f"/nonexistent/{SECRET}")
    assert result.returncode == 1 and SECRET not in result.stderr and "--api-secret-file" in result.stderr


def test_an_unknown_flag_prints_the_subcommand_usage() -> None:
    result = roomctl(None, "validate", str(EXAMPLES), "-o", "json")
    assert result.returncode == 1
    assert result.stderr.startswith("usage: roomctl validate")
    assert "unrecognized arguments: -o" in result.stderr


def test_did_you_mean_for_a_mistyped_command_and_sandbox_names_its_subcommands() -> None:
    result = roomctl(None, "dif", "x")
    assert result.returncode == 1 and "did you mean 'diff'" in result.stderr
    result = roomctl(None, "sandbox")
    assert result.returncode == 1 and "sandbox_command" not in result.stderr and "serve" in result.stderr.splitlines()[-1]


def test_serve_on_a_port_in_use_is_one_line(taken_port: int, tmp_path: Path) -> None:
    result = roomctl(None, "serve", str(EXAMPLES), "--listen", f"127.0.0.1:{taken_port}", "--interval", "1h",
                     cwd=tmp_path, process=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: --listen 127.0.0.1:{taken_port}: address already in use"
    assert "Traceback" not in result.stderr and "webhooks at" not in result.stderr
    assert not (tmp_path / ".roomctl" / "sandbox.json").exists()  # nothing was applied before the bind failed


def test_sandbox_serve_on_a_port_in_use_is_one_line_and_never_says_serving(taken_port: int, tmp_path: Path) -> None:
    result = roomctl(None, "sandbox", "serve", "--host", "127.0.0.1", "--port", str(taken_port), cwd=tmp_path,
                     process=True)
    assert result.returncode == 1
    assert result.stderr == f"error: --port 127.0.0.1:{taken_port}: address already in use\n"


@pytest.mark.parametrize(("flags", "message"), [
    (("--error-rate", "2"), "--error-rate 2: give a share between 0 and 1"),
    (("--latency-ms", "10:abc"), "--latency-ms '10:abc'"),
    (("--rate-limit", "x/min"), "--rate-limit 'x/min'"),
])
def test_sandbox_flag_errors_name_the_flag(flags: tuple[str, str], message: str, tmp_path: Path) -> None:
    result = roomctl(None, "sandbox", "serve", "--port", "0", *flags, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(f"error: {message}")


def test_serve_listen_port_out_of_range_says_so() -> None:
    result = roomctl(None, "serve", str(EXAMPLES), "--listen", "127.0.0.1:99999")
    assert result.returncode == 1 and "port 99999 is out of range" in result.stderr


def test_serve_has_no_deadline_flag() -> None:
    result = roomctl(None, "serve", str(EXAMPLES), "--deadline", "5")
    assert result.returncode == 1 and "unrecognized arguments: --deadline" in result.stderr


ROOM = """\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: nc-hall}
spec: {maxParticipants: 5}
"""


def test_diff_out_into_a_missing_folder_is_one_line(sandbox: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "rooms.yaml").write_text(ROOM)
    result = roomctl(sandbox, "diff", str(tmp_path / "rooms.yaml"), "--out", str(tmp_path / "nodir" / "p.json"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: cannot write the plan to {tmp_path}/nodir/p.json: no such folder"


def test_diff_out_inside_a_manifest_folder_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    folder = tmp_path / "rooms"
    folder.mkdir()
    (folder / "hall.yaml").write_text(ROOM)
    result = roomctl(sandbox, "diff", str(folder), "--out", str(folder / "plan.json"))
    assert result.returncode == 1 and "inside the manifest path" in result.stderr
    assert not (folder / "plan.json").exists() and sandbox.counts() == {}


def test_a_saved_plan_with_other_paths_or_on_stdin_is_refused(sandbox: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "rooms.yaml").write_text(ROOM)
    plan = tmp_path / "plan.json"
    assert roomctl(sandbox, "diff", "rooms.yaml", "--out", str(plan), cwd=tmp_path).returncode == 2
    sandbox.reset()
    result = roomctl(sandbox, "apply", str(plan), "rooms.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "cannot be combined with other paths" in result.stderr, result.stderr
    result = roomctl(sandbox, "apply", "-", cwd=tmp_path, stdin=plan.read_text(), process=True)
    assert result.returncode == 1 and "cannot be read from stdin" in result.stderr, result.stderr
    # run from elsewhere: the plan's relative paths are explained
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = roomctl(sandbox, "apply", str(plan), cwd=elsewhere)
    assert result.returncode == 1 and "relative to the folder `roomctl diff --out` ran in" in result.stderr
    assert sandbox.counts() == {}


def test_an_empty_recreate_does_not_say_disconnecting_0(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(ROOM.replace("spec: {", "spec: {policy: {recreate: IfEmpty}, "))
    assert roomctl(sandbox, "apply", str(path)).returncode == 0
    path.write_text(ROOM.replace("maxParticipants: 5", "maxParticipants: 8").replace(
        "spec: {", "spec: {policy: {recreate: IfEmpty}, "))
    result = roomctl(sandbox, "diff", str(path))
    assert result.returncode == 2 and '-/+ room "nc-hall"  must be re-created  (' in result.stdout, result.stdout
    assert "disconnecting" not in result.stdout


@pytest.mark.parametrize("flag", [("--prune-scope", "x-*"), ("--allow-empty",), ("--prune-occupied",)])
def test_prune_flags_without_prune_are_usage_errors(sandbox: SandboxServer, tmp_path: Path,
                                                    flag: tuple[str, ...]) -> None:
    (tmp_path / "rooms.yaml").write_text(ROOM)
    result = roomctl(sandbox, "apply", str(tmp_path / "rooms.yaml"), *flag)
    assert result.returncode == 1 and f"{flag[0]} only apply with --prune" in result.stderr
    assert sandbox.counts() == {}


def test_validate_counts_policies_and_delete_says_what_it_did(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = roomctl(None, "validate", str(EXAMPLES / "support-fleet.yaml"))
    assert result.returncode == 0 and result.stdout.startswith("0 room(s) and 1 room policy(ies) valid.")
    (tmp_path / "rooms.yaml").write_text(ROOM)
    assert roomctl(sandbox, "apply", str(tmp_path / "rooms.yaml")).returncode == 0
    dry = roomctl(sandbox, "delete", "-f", str(tmp_path / "rooms.yaml"), "--dry-run")
    assert dry.returncode == 0 and "Dry run (--dry-run): nothing was deleted." in dry.stdout
    assert roomctl(sandbox, "delete", "-f", str(tmp_path / "rooms.yaml")).returncode == 0
    again = roomctl(sandbox, "delete", "-f", str(tmp_path / "rooms.yaml"))
    assert again.returncode == 0 and "Nothing to delete." in again.stdout and "No changes" not in again.stdout


def test_a_real_livekit_with_a_plugnmeet_room_and_no_plugnmeet_names_the_room(sandbox: SandboxServer) -> None:
    result = roomctl(sandbox, "diff", str(EXAMPLES), PLUGNMEET_URL="")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {EXAMPLES}/classroom.yaml:") and "PLUGNMEET_URL" in line, line
    assert sandbox.counts() == {}


EGRESS_ROOM = """\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: nc-rec, labels: {team: media}}
spec:
  maxParticipants: 9
  tags: {cost: media}
  policy: {lifecycle: Persistent, recreate: IfEmpty}
  participants:
    - identity: "guest-*"
      permission: {canPublish: false}
  egress:
    room:
      fileOutputs: [{filepath: "rec/x.mp4", s3: {accessKey: AK, secret: SHH-TOP-SECRET, bucket: b}}]
"""


def test_export_refresh_keeps_what_the_server_cannot_return(sandbox: SandboxServer, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "rec.yaml"
    path.write_text(EGRESS_ROOM)
    assert roomctl(sandbox, "apply", str(path)).returncode == 0
    result = roomctl(sandbox, "export", "-f", str(path))
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    spec = doc["spec"]
    assert doc["metadata"]["labels"] == {"team": "media"}
    assert spec["policy"] == {"lifecycle": "Persistent", "recreate": "IfEmpty"}  # not reset to OnDemand/Never
    assert spec["tags"] == {"cost": "media"} and spec["egress"]["room"]["fileOutputs"][0]["filepath"] == "rec/x.mp4"
    assert spec["participants"][0]["identity"] == "guest-*"
    assert spec["maxParticipants"] == 9 and "metadata" not in spec  # no `metadata: ''` added
    path.write_text(result.stdout)  # written back over the manifest: still in sync
    assert roomctl(sandbox, "diff", str(path)).returncode == 0
    # adoption without -f is unchanged: the adopted policy, nothing the server cannot return
    adopted = yaml.safe_load(roomctl(sandbox, "export", "nc-rec").stdout)
    assert adopted["spec"]["policy"] == {"lifecycle": "OnDemand", "recreate": "Never"} and "egress" not in adopted["spec"]


def test_small_cli_conventions(sandbox: SandboxServer, tmp_path: Path) -> None:
    from tests.cli.test_conventions import _bash_complete

    bash = roomctl(None, "completion", "bash").stdout
    assert "AGENT" in _bash_complete(bash, "roomctl", "token", "--kind", "")
    (tmp_path / "rooms.yaml").write_text(ROOM)
    token = roomctl(sandbox, "token", "nc-hall", "me", "--filename", str(tmp_path / "rooms.yaml"))
    assert token.returncode == 0, token.stderr
    assert "--filename" in roomctl(None, "token", "--help").stdout
    warned = roomctl(sandbox, "diff", str(EXAMPLES), "--target", "support-12*")
    assert "no declared room matches --target support-12*; only live rooms that a RoomPolicy governs " \
           "(support-calls) can be planned" in warned.stderr, warned.stderr


def test_a_dispatch_removal_quotes_the_agent_like_a_creation() -> None:
    from reconciler.plan import Action, ActionKind, FieldChange
    from reconciler.render import _action_lines

    removal = Action(ActionKind.DELETE_DISPATCH, "r", (FieldChange("agent", "bot (replaced: its settings changed)", None),),
                     {}, target="AD_1")
    assert _action_lines(removal) == [("-", 'agent dispatch "bot" (replaced: its settings changed) (AD_1)')]


def test_token_ttl_for_a_plugnmeet_room_is_refused(sandbox: SandboxServer) -> None:
    result = roomctl(sandbox, "token", "physics-101", "s1", "-f", str(EXAMPLES / "classroom.yaml"), "--ttl", "5h")
    assert result.returncode == 1 and "is a PlugNmeetRoom" in result.stderr and "drop --ttl" in result.stderr
    assert sandbox.counts() == {}
