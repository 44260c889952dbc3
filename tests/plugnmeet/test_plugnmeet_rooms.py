"""PlugNmeetRoom end to end: the CLI against the sandbox's plugNmeet API on a loopback socket."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import SandboxServer

KEY, SECRET = "plugnmeet", "secret"


def roomctl(sandbox: SandboxServer, *args: str, secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LIVEKIT_URL=sandbox.url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret",
               PLUGNMEET_URL=sandbox.url, PLUGNMEET_API_KEY=KEY, PLUGNMEET_API_SECRET=secret, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def signed(sandbox: SandboxServer, method: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = httpx.post(f"{sandbox.url}/auth/room/{method}", content=body,
                   headers={"Content-Type": "application/json", "API-KEY": KEY, "HASH-SIGNATURE": sig})
    result: dict[str, Any] = r.json()
    return result


def active(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    reply = signed(sandbox, "getActiveRoomsInfo", {})
    return {r["room_info"]["room_id"]: r["room_info"] for r in reply.get("rooms") or []}


def classroom(tmp_path: Path, *, welcome: str = "hello", recreate: str = "Never", features: str = "",
              name: str = "physics") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""apiVersion: roomctl.dev/v1alpha1
kind: PlugNmeetRoom
metadata: {{name: {name}}}
spec:
  emptyTimeout: 1800
  metadata:
    roomTitle: Physics
    welcomeMessage: {welcome}
    roomFeatures: {{{features}}}
    defaultLockSettings: {{lockMicrophone: true}}
  policy: {{recreate: {recreate}}}
""")
    return path


def test_create_then_in_sync(sandbox: SandboxServer, tmp_path: Path) -> None:
    path = classroom(tmp_path)
    first = roomctl(sandbox, "apply", str(path))
    assert first.returncode == 0, first.stderr
    room = active(sandbox)["physics"]
    served = json.loads(room["metadata"])
    assert served["welcome_message"] == "hello" and served["default_lock_settings"]["lock_microphone"] is True
    assert served["extra_data"]["roomctl.dev/spec-hash"]
    again = roomctl(sandbox, "diff", str(path))
    assert again.returncode == 0 and "No changes" in again.stdout, again.stdout


def test_edited_welcome_message_never_is_drift_if_empty_recreates(sandbox: SandboxServer, tmp_path: Path) -> None:
    assert roomctl(sandbox, "apply", str(classroom(tmp_path))).returncode == 0
    old_sid = active(sandbox)["physics"]["sid"]
    never = roomctl(sandbox, "diff", str(classroom(tmp_path, welcome="bonjour")))
    assert never.returncode == 0, never.stdout  # drift not acted on: exit 0 (2 with --fail-on-drift)
    assert "welcomeMessage" in never.stdout and "policy.recreate is Never" in never.stdout
    assert roomctl(sandbox, "apply", str(classroom(tmp_path, welcome="bonjour"))).returncode == 0
    assert active(sandbox)["physics"]["sid"] == old_sid  # nothing ended

    path = classroom(tmp_path, welcome="bonjour", recreate="IfEmpty")
    plan = json.loads(roomctl(sandbox, "diff", str(path), "-o", "json").stdout)
    (room,) = plan["rooms"]
    assert room["status"] == "recreate" and room["kind"] == "PlugNmeetRoom"
    applied = roomctl(sandbox, "apply", str(path))
    assert applied.returncode == 0, applied.stderr
    now = active(sandbox)["physics"]
    assert now["sid"] != old_sid and json.loads(now["metadata"])["welcome_message"] == "bonjour"
    assert roomctl(sandbox, "diff", str(path)).returncode == 0


def test_default_true_boolean_ends_as_drift_after_exactly_one_recreate(sandbox: SandboxServer,
                                                                         tmp_path: Path) -> None:
    assert roomctl(sandbox, "apply", str(classroom(tmp_path, recreate="IfEmpty"))).returncode == 0
    before = sandbox.counts()
    path = classroom(tmp_path, recreate="IfEmpty", features="allowWebcams: false")
    assert roomctl(sandbox, "apply", str(path)).returncode == 0  # the one re-create
    for _ in range(2):  # and then never again
        diff = roomctl(sandbox, "diff", str(path))
        assert diff.returncode == 0, diff.stdout
        assert "allowWebcams" in diff.stdout and "does not honour it" in diff.stdout
        assert roomctl(sandbox, "apply", str(path)).returncode == 0
    after = sandbox.counts()
    assert after.get("plugnmeet.create", 0) - before.get("plugnmeet.create", 0) == 1
    assert after.get("plugnmeet.endRoom", 0) - before.get("plugnmeet.endRoom", 0) == 1
    assert roomctl(sandbox, "diff", "--fail-on-drift", str(path)).returncode == 2


def test_wrong_secret_gives_one_clear_error(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = roomctl(sandbox, "diff", str(classroom(tmp_path)), secret="not-the-secret")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "PLUGNMEET_API_SECRET" in lines[0], result.stderr
    assert "not-the-secret" not in result.stdout + result.stderr


def test_prune_never_ends_a_room_outside_the_scope(sandbox: SandboxServer, tmp_path: Path) -> None:
    for room_id in ("class-old", "office-hours"):
        assert signed(sandbox, "create", {"room_id": room_id, "metadata": {"room_title": room_id,
                                                                           "room_features": {}}})["status"]
    path = classroom(tmp_path, name="class-new")
    result = roomctl(sandbox, "apply", str(path), "--prune", "--prune-scope", "class-*")
    assert result.returncode == 0, result.stderr
    assert set(active(sandbox)) == {"class-new", "office-hours"}


def test_mixed_folder_is_one_plan(sandbox: SandboxServer, tmp_path: Path) -> None:
    classroom(tmp_path)
    (tmp_path / "lk.yaml").write_text("apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {name: lk-room}\n")
    result = roomctl(sandbox, "diff", str(tmp_path))
    assert result.returncode == 2
    assert '+ room "lk-room"' in result.stdout and '+ plugNmeet room "physics"' in result.stdout
    assert "Plan: 2 to create" in result.stdout


@pytest.mark.parametrize("bad", ["upper", "reserialized"])
def test_sandbox_verifies_the_signature_like_the_server(sandbox: SandboxServer, bad: str) -> None:
    payload = {"room_id": "x"}
    body = json.dumps(payload, separators=(",", ":")).encode()
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    if bad == "upper":
        sig = sig.upper()  # the server compares lowercase hex in constant time
    else:
        body = json.dumps(payload).encode()  # same JSON, different bytes: the signature no longer matches
    r = httpx.post(f"{sandbox.url}/auth/room/isRoomActive", content=body,
                   headers={"Content-Type": "application/json", "API-KEY": KEY, "HASH-SIGNATURE": sig})
    assert r.status_code == 401 and r.json()["status_code"] == "INVALID_TOKEN_OR_SIGNATURE"


def test_token_for_a_plugnmeet_room_comes_from_get_join_token(sandbox: SandboxServer, tmp_path: Path) -> None:
    import jwt

    path = classroom(tmp_path)
    assert roomctl(sandbox, "apply", str(path)).returncode == 0
    result = roomctl(sandbox, "token", "physics", "student-7", "-f", str(path), "--name", "Ada")
    assert result.returncode == 0, result.stderr
    assert "disconnects a user already online" in result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["room_id"] == "physics" and claims["user_id"] == "student-7" and claims["name"] == "Ada"
    assert sandbox.counts().get("plugnmeet.getJoinToken") == 1


def livekit_rooms(sandbox: SandboxServer, create: tuple[str, ...] = ()) -> set[str]:
    import asyncio

    from reconciler.backends.livekit import LiveKitBackend

    async def run() -> set[str]:
        backend = LiveKitBackend(sandbox.url, "devkey", "secret")
        try:
            for name in create:
                await backend.create_room({"name": name})
            return {r.name for r in await backend.list_rooms()}
        finally:
            await backend.aclose()

    return asyncio.run(run())


def test_prune_with_only_plugnmeet_rooms_never_empties_livekit(sandbox: SandboxServer, tmp_path: Path) -> None:
    # `physics` on LiveKit is the room plugNmeet itself runs the class in; `lk-other` belongs to no manifest kind.
    livekit_rooms(sandbox, create=("physics", "lk-other"))
    assert signed(sandbox, "create", {"room_id": "stale", "metadata": {"room_title": "s", "room_features": {}}})
    result = roomctl(sandbox, "apply", str(classroom(tmp_path)), "--prune", "--prune-scope", "*")
    assert result.returncode == 0, result.stderr
    assert set(active(sandbox)) == {"physics"}  # the undeclared plugNmeet room in scope was ended
    assert livekit_rooms(sandbox) == {"physics", "lk-other"}  # no LiveKit room declared: LiveKit not pruned

    (tmp_path / "lk.yaml").write_text("apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {name: lk-room}\n")
    mixed = roomctl(sandbox, "apply", str(tmp_path), "--prune", "--prune-scope", "*")
    assert mixed.returncode == 0, mixed.stderr
    # LiveKit is pruned now (it has a declared room), but never the room a PlugNmeetRoom declares.
    assert livekit_rooms(sandbox) == {"physics", "lk-room"}
