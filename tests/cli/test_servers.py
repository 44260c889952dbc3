"""spec.serverRef.name and the servers file (issue 13 item 3): one run spans two served sandboxes,
each room goes to its own server, an unknown server is refused before any request, and never
silently the default server (CLI and operator)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.operator.decide import CredentialsError, RoomObject
from reconciler.operator.servers import Credentials, ServerPool, server_key
from tests.support.cli import roomctl
from tests.support.server import SandboxServer, run_sandbox
from tests.support.tokens import mint

ROOMS = """\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: home-room}
spec: {maxParticipants: 5}
---
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: eu-room}
spec:
  maxParticipants: 7
  serverRef: {name: eu}
"""


@pytest.fixture(scope="module")
def second_sandbox() -> Iterator[SandboxServer]:
    with run_sandbox("--api-key", "eukey") as server:
        yield server


def servers_file(folder: Path, url: str) -> Path:
    path = folder / "roomctl.servers.yaml"
    path.write_text(f"servers:\n  eu:\n    url: {url}\n    apiKeyEnv: EU_KEY\n    apiSecretEnv: EU_SECRET\n")
    return path


def test_server_ref_routes_each_room_to_its_server(sandbox: SandboxServer, second_sandbox: SandboxServer,
                                                   tmp_path: Path) -> None:
    second_sandbox.reset()
    manifest = tmp_path / "rooms.yaml"
    manifest.write_text(ROOMS)
    servers_file(tmp_path, second_sandbox.url)
    env = {"EU_KEY": "eukey", "EU_SECRET": "secret"}
    diff = roomctl(sandbox, "diff", str(manifest), cwd=tmp_path, **env)  # ./roomctl.servers.yaml
    assert diff.returncode == 2, diff.stderr
    assert diff.stdout.index("Server (default):") < diff.stdout.index('room "home-room"')
    assert diff.stdout.index("Server eu:") < diff.stdout.index('room "eu-room"')
    applied = roomctl(sandbox, "apply", str(manifest), "-o", "json", cwd=tmp_path, **env)
    assert applied.returncode == 0, applied.stderr
    servers = {r["name"]: r["server"] for r in json.loads(applied.stdout)["rooms"]}
    assert servers == {"home-room": None, "eu-room": "eu"}
    assert set(sandbox.test_api("GET", "requests")["by_room"]) == {"home-room"}
    assert set(second_sandbox.test_api("GET", "requests")["by_room"]) == {"eu-room"}
    clean = roomctl(sandbox, "diff", str(manifest), "--servers", str(tmp_path / "roomctl.servers.yaml"), **env)
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_unknown_or_unresolvable_server_ref_is_refused_before_any_request(
        sandbox: SandboxServer, second_sandbox: SandboxServer, tmp_path: Path) -> None:
    second_sandbox.reset()
    manifest = tmp_path / "rooms.yaml"
    manifest.write_text(ROOMS.replace("name: eu}", "name: us}"))
    nofile = roomctl(sandbox, "apply", str(manifest), cwd=tmp_path)
    assert nofile.returncode == 1 and "no servers file" in nofile.stderr
    assert f"error: {manifest}:6: spec.serverRef.name 'us': " in nofile.stderr  # the manifest that asked
    servers_file(tmp_path, second_sandbox.url)
    unknown = roomctl(sandbox, "apply", str(manifest), cwd=tmp_path, EU_KEY="eukey", EU_SECRET="secret")
    assert unknown.returncode == 1
    assert f"error: {manifest}:6: spec.serverRef.name 'us': no server 'us' in roomctl.servers.yaml (known: eu)" \
        in unknown.stderr
    manifest.write_text(ROOMS)
    no_secret = roomctl(sandbox, "apply", str(manifest), cwd=tmp_path, EU_KEY="eukey")
    assert no_secret.returncode == 1 and "set EU_SECRET" in no_secret.stderr
    assert f"error: {manifest}:6: spec.serverRef.name 'eu': " in no_secret.stderr
    manifest.write_text(ROOMS.replace("serverRef: {name: eu}", "serverRef: {secretName: livekit-eu}"))
    operator_only = roomctl(sandbox, "apply", str(manifest), cwd=tmp_path)
    assert operator_only.returncode == 1 and "only secretName 'livekit-eu'" in operator_only.stderr
    assert sandbox.counts() == {} and second_sandbox.counts() == {}  # nothing was sent anywhere
    (tmp_path / "roomctl.servers.yaml").write_text("servers:\n  eu:\n    url: ftp://x\n    apiKeyEnv: A\n"
                                                   "    apiSecretEnv: B\n")
    manifest.write_text(ROOMS)
    bad = roomctl(sandbox, "apply", str(manifest), cwd=tmp_path)
    assert bad.returncode == 1 and "roomctl.servers.yaml:3:" in bad.stderr and "servers.eu.url" in bad.stderr


async def test_operator_refuses_a_cli_only_server_ref() -> None:
    pool = ServerPool(Credentials("http://default", "k", "s"), lambda: None)
    obj = RoomObject("ns", "r", {"serverRef": {"name": "eu"}})
    assert server_key("ns", obj.spec) != server_key("ns", {})  # never grouped with the default server
    with pytest.raises(CredentialsError, match=r"needs spec\.serverRef\.secretName"):
        await pool.credentials(obj)


def test_saved_plan_spans_servers_and_notices_a_change_on_either(
        sandbox: SandboxServer, second_sandbox: SandboxServer, tmp_path: Path) -> None:
    second_sandbox.reset()
    manifest = tmp_path / "rooms.yaml"
    manifest.write_text(ROOMS)
    servers_file(tmp_path, second_sandbox.url)
    env = {"EU_KEY": "eukey", "EU_SECRET": "secret"}
    plan_file = tmp_path / "plan.json"
    assert roomctl(sandbox, "diff", str(manifest), "--out", str(plan_file), cwd=tmp_path, **env).returncode == 2
    saved = json.loads(plan_file.read_text())["servers"]
    assert saved[""]["url"] == sandbox.url and saved["eu"]["url"] == second_sandbox.url
    assert [a["room"] for a in saved["eu"]["actions"]] == ["eu-room"]
    # Out of band, on the second server only: the room the plan would create appears.
    token = mint({"video": {"roomCreate": True}}, key="eukey")
    created = httpx.post(f"{second_sandbox.url}/twirp/livekit.RoomService/CreateRoom", json={"name": "eu-room"},
                         headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 200
    sandbox.test_api("DELETE", "requests")
    refused = roomctl(sandbox, "apply", str(plan_file), cwd=tmp_path, **env)
    assert refused.returncode == 1 and "server eu: room 'eu-room' exists now" in refused.stderr
    assert "RoomService.CreateRoom" not in sandbox.counts()  # nothing written on the other server either
    assert roomctl(sandbox, "diff", str(manifest), "--out", str(plan_file), cwd=tmp_path, **env).returncode == 2
    applied = roomctl(sandbox, "apply", str(plan_file), cwd=tmp_path, **env)
    assert applied.returncode == 0, applied.stderr
    assert roomctl(sandbox, "diff", str(manifest), cwd=tmp_path, **env).returncode == 0


def test_token_for_a_room_on_a_named_server_is_signed_with_that_servers_key(
        sandbox: SandboxServer, second_sandbox: SandboxServer, tmp_path: Path) -> None:
    import jwt

    second_sandbox.reset()
    manifest = tmp_path / "rooms.yaml"
    manifest.write_text(ROOMS)
    servers_file(tmp_path, second_sandbox.url)
    result = roomctl(sandbox, "token", "eu-room", "guest-1", "-f", str(manifest), cwd=tmp_path,
                     EU_KEY="eukey", EU_SECRET="secret")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "eukey"
    joined = httpx.post(f"{second_sandbox.url}/sandbox/join", json={"token": token})
    assert joined.status_code == 200, joined.text
    unknown = roomctl(sandbox, "token", "eu-room", "guest-1", "-f", str(manifest), cwd=tmp_path)
    assert unknown.returncode == 1 and "set EU_KEY and EU_SECRET" in unknown.stderr
