"""Issue 9.5: a trickling body is bounded by the total per-request timeout; with a share of
requests hanging, apply ends by its --deadline, names each timed-out action by method and room,
and exits 1. Real processes against real sockets (subprocess timeouts catch a hang)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.rawhttp import raw_server
from tests.support.server import SandboxServer
from tests.support.tokens import mint

ROOM = "apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {{name: {name}}}\nspec: {{metadata: {meta}}}\n"


def roomctl(*args: str, url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LIVEKIT_URL=url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret")
    return subprocess.run([sys.executable, "-m", "reconciler", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def write_rooms(path: Path, count: int, meta: str) -> Path:
    path.write_text("---\n".join(ROOM.format(name=f"dl-{i:02d}", meta=meta) for i in range(count)))
    return path


def test_a_body_that_trickles_in_is_cut_by_the_total_timeout(tmp_path: Path) -> None:
    """One byte a second of a 1,000-byte body: without a total bound this ran for 1,000 s."""
    manifest = write_rooms(tmp_path / "r.yaml", 1, "x")
    with raw_server("trickle") as server:
        result = roomctl("diff", "--timeout", "1.5", "--deadline", "6", str(manifest), url=server.url)
    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: ListRooms: ") and "timed out" in line, line


def test_hanging_requests_end_at_the_deadline_each_named_by_method_and_room(sandbox: SandboxServer,
                                                                           tmp_path: Path) -> None:
    rooms = 20
    assert roomctl("apply", "-q", str(write_rooms(tmp_path / "a.yaml", rooms, "old")), url=sandbox.url).returncode == 0
    # 70 % of UpdateRoomMetadata calls are never answered; every other call is.
    sandbox.test_api("PUT", "faults", {"methods": {"RoomService.UpdateRoomMetadata": {"hang_rate": 0.7,
                                                                                         "hang_seconds": 8}}})
    result = roomctl("apply", "--timeout", "1", "--deadline", "5", str(write_rooms(tmp_path / "b.yaml", rooms, "new")),
                     url=sandbox.url, timeout=90)
    sandbox.test_api("DELETE", "faults")
    assert result.returncode == 1, result.stderr
    failed = {line.split('"')[1] for line in result.stderr.splitlines()
              if line.startswith('error: UpdateRoomMetadata "dl-')}
    assert failed, result.stderr
    token = mint({"video": {"roomList": True}})
    listed = httpx.post(f"{sandbox.url}/twirp/livekit.RoomService/ListRooms", json={},
                        headers={"Authorization": f"Bearer {token}"}).json()["rooms"]
    updated = {room["name"] for room in listed if room.get("metadata") == "new"}
    # Every room was either updated or reported as failed (by method and room); none silently skipped.
    assert updated | failed == {f"dl-{i:02d}" for i in range(rooms)}
    assert not updated & failed
    assert "Traceback" not in result.stderr
