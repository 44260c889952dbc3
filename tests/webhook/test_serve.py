"""End to end over real sockets: `roomctl sandbox serve --webhook-url` -> `roomctl serve`. With the
interval at an hour, only webhooks can explain a correction; a lost webhook is healed by the interval."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.webhook import sign
from tests.support.cli import cli_env
from tests.support.server import SandboxServer, free_port, run_sandbox
from tests.support.tokens import mint

BURST_ROOMS = 50


def room(name: str, rules: str = "", extra: str = "") -> str:
    return (f"---\napiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {{name: {name}}}\n"
            f"spec:\n  metadata: declared\n{extra}{rules}")


LISTENER = ("  participants:\n    - identity: \"*\"\n"
            "      permission: {canPublish: false, canSubscribe: true, canPublishData: false}\n")


MICROPHONE_ONLY = ("  participants:\n    - identity: \"*\"\n"
                   "      permission: {canPublish: true, canPublishSources: [MICROPHONE]}\n")
# Governs rooms nobody declared: webhooks route them through the same plan (plan_one_room).
POLICY = """apiVersion: roomctl.dev/v1alpha1
kind: RoomPolicy
metadata: {name: support}
spec:
  rooms: ["support-*"]
  roomMetadata: policed
  participants:
    - identity: "*"
      permission: {canPublish: false, canSubscribe: true}
"""


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def metric(self, name: str, **labels: str) -> float:
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            if line.startswith(want + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stderr(self) -> str:
        return self.log.read_text()


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stop(serve: Serve) -> int:
    serve.process.send_signal(signal.SIGTERM)
    try:
        return serve.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        serve.process.kill()
        raise


def join(sandbox_url: str, room_name: str, identity: str, **video: Any) -> dict[str, Any]:
    token = mint({"sub": identity, "video": {"roomJoin": True, "room": room_name, "canPublish": True, **video}})
    response = httpx.post(f"{sandbox_url}/sandbox/join", json={"token": token})
    assert response.status_code == 200, response.text
    participant: dict[str, Any] = response.json()["participant"]
    return participant


def permission(sandbox_url: str, room_name: str, identity: str) -> dict[str, Any]:
    response = httpx.post(f"{sandbox_url}/sandbox/participant", json={"room": room_name, "identity": identity})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["participant"]["permission"]
    return found


def twirp(sandbox_url: str, method: str, body: dict[str, Any], grant: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{sandbox_url}/twirp/livekit.RoomService/{method}", json=body,
                          headers={"Authorization": "Bearer " + mint({"video": grant})})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxServer, Serve, Path]]:
    """One sandbox that sends webhooks to one `roomctl serve` with a one-hour interval."""
    folder = tmp_path_factory.mktemp("serve")
    manifests = folder / "rooms"
    manifests.mkdir()
    (manifests / "town.yaml").write_text(room("town", LISTENER) + room("lobby") + room("studio", MICROPHONE_ONLY))
    (manifests / "support.yaml").write_text(POLICY)
    (manifests / "burst.yaml").write_text("".join(room(f"burst-{i:02d}", LISTENER) for i in range(BURST_ROOMS)))
    port = free_port()
    with run_sandbox("--webhook-url", f"http://127.0.0.1:{port}/webhook") as sandbox:
        serve = _start_on(sandbox.url, [str(manifests)], folder / "serve.log", port, "--interval", "1h")
        try:
            yield sandbox, serve, manifests
        finally:
            if serve.process.poll() is None:
                serve.process.kill()
                serve.process.wait()


def _start_on(sandbox_url: str, paths: list[str], log: Path, port: int, *extra: str) -> Serve:
    env = cli_env(None, LIVEKIT_URL=sandbox_url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret")
    handle = log.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "reconciler", "serve", *paths, "--listen", f"127.0.0.1:{port}",
                                *extra], env=env, stderr=handle, stdout=handle)
    serve = Serve(process, f"http://127.0.0.1:{port}", log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"roomctl serve exited {process.returncode}: {log.read_text()}")
        try:
            return httpx.get(f"{serve.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, 20, "roomctl serve to be ready")
    return serve


def test_a_too_broad_join_is_corrected_by_the_webhook_alone(world: tuple[SandboxServer, Serve, Path]) -> None:
    sandbox, serve, _ = world
    joined = join(sandbox.url, "town", "bob", canPublishData=True)
    assert joined["permission"]["can_publish"] is True  # what the token granted
    fixed = wait_until(lambda: (p := permission(sandbox.url, "town", "bob"))["can_publish"] is False and p, 10,
                       "bob's permission to be enforced")
    assert fixed["can_publish_data"] is False and fixed["can_subscribe"] is True
    # No periodic run happened (one hour): the start run, then webhooks only.
    assert serve.metric("roomctl_reconcile_duration_seconds_count", trigger="interval") == 0
    assert serve.metric("roomctl_reconcile_duration_seconds_count", trigger="start") == 1
    assert serve.metric("roomctl_webhook_runs_total", result="acted") >= 1
    assert serve.metric("roomctl_webhook_events_total", event="participant_joined", result="accepted") >= 1
    assert serve.metric("roomctl_enforcement_latency_seconds_count") >= 1
    assert serve.metric("roomctl_actions_total", kind="UpdateParticipant", result="ok", trigger="webhook") >= 1
    assert serve.metric("roomctl_drift", room="town") == 0
    assert "secret" not in serve.stderr()
    # The audit trail at default verbosity: why, what, room, participant, fields, provenance, outcome;
    # no request log (that is -v), no raw PyJWT warning (the dev secret is 6 bytes).
    log = wait_until(lambda: "participant 'bob'" in serve.stderr() and serve.stderr(), 10, "bob's audit line")
    line = next(ln for ln in log.splitlines() if "participant 'bob'" in ln)
    # The join created the room: room_started and participant_joined may coalesce into one run, and
    # the trigger names every event that run was for.
    assert re.match(r"INFO roomctl\.serve: webhook [^:]*(participant_joined|room_started)[^:]*: "
                    r"UpdateParticipant room 'town' participant 'bob' \(", line), line
    assert "canPublish" in line and line.endswith(": done"), line
    assert "start run: " in log  # the first full run's actions are listed too
    assert "HTTP Request" not in log and "InsecureKeyLengthWarning" not in log and "jwt" not in log


def test_an_undeclared_room_a_policy_matches_is_governed_on_start_and_join(
        world: tuple[SandboxServer, Serve, Path]) -> None:
    sandbox, serve, _ = world
    join(sandbox.url, "support-7", "erin")  # the join creates the room: room_started, participant_joined
    wait_until(lambda: permission(sandbox.url, "support-7", "erin")["can_publish"] is False, 10,
               "the policy's rule to be enforced")

    def policed() -> bool:
        rooms = twirp(sandbox.url, "ListRooms", {"names": ["support-7"]}, {"roomList": True})["rooms"]
        return bool(rooms) and rooms[0]["metadata"] == "policed"

    wait_until(policed, 10, "the policy's room metadata")
    assert serve.metric("roomctl_reconcile_duration_seconds_count", trigger="interval") == 0
    assert serve.metric("roomctl_actions_total", kind="UpdateRoomMetadata", result="ok", trigger="webhook") >= 1


def test_a_persistent_room_deleted_out_of_band_is_back(world: tuple[SandboxServer, Serve, Path]) -> None:
    sandbox, serve, _ = world
    before = twirp(sandbox.url, "ListRooms", {"names": ["lobby"]}, {"roomList": True})["rooms"][0]["sid"]
    twirp(sandbox.url, "DeleteRoom", {"room": "lobby"}, {"roomCreate": True})

    def recreated() -> bool:
        rooms = twirp(sandbox.url, "ListRooms", {"names": ["lobby"]}, {"roomList": True})["rooms"]
        return bool(rooms) and rooms[0]["sid"] != before and rooms[0]["metadata"] == "declared"

    wait_until(recreated, 10, "lobby to be created again")
    assert serve.metric("roomctl_reconcile_duration_seconds_count", trigger="interval") == 0
    assert serve.metric("roomctl_actions_total", kind="CreateRoom", result="ok", trigger="webhook") == 1


def test_a_track_the_rule_forbids_gets_the_permission_enforced_again(
        world: tuple[SandboxServer, Serve, Path]) -> None:
    sandbox, serve, _ = world
    sandbox.test_api("PUT", "webhooks", {"drop": True})  # participant_joined is lost on the way
    try:
        join(sandbox.url, "studio", "frank")
    finally:
        sandbox.test_api("PUT", "webhooks", {"drop": False})
    published = httpx.post(f"{sandbox.url}/sandbox/publish", json={"room": "studio", "identity": "frank",
                                                                   "type": "VIDEO", "source": "CAMERA"})
    assert published.status_code == 200  # the token allowed every source

    def enforced() -> bool:
        found = httpx.post(f"{sandbox.url}/sandbox/participant", json={"room": "studio", "identity": "frank"})
        participant = found.json()["participant"]
        return (participant["permission"]["can_publish_sources"] == ["MICROPHONE"]
                and not [t for t in participant["tracks"] if t["source"] == "CAMERA"])

    wait_until(enforced, 10, "the camera permission to be taken away (and the track with it)")
    assert serve.metric("roomctl_webhook_events_total", event="track_published", result="accepted") >= 1
    assert serve.metric("roomctl_reconcile_duration_seconds_count", trigger="interval") == 0


def test_forged_webhooks_are_refused_on_the_socket(world: tuple[SandboxServer, Serve, Path]) -> None:
    _, serve, _ = world
    body = b'{"event":"room_finished", "room":{"name":"lobby"}, "id":"EV_forged"}'
    forged = httpx.post(f"{serve.url}/webhook", content=body,
                        headers={"Authorization": sign(body, "devkey", "guessed", time.time())})
    assert (forged.status_code, forged.text) == (401, "unauthorized\n")
    assert serve.metric("roomctl_webhook_rejected_total", reason="bad_signature") == 1
    again = httpx.post(f"{serve.url}/webhook", content=body,
                       headers={"Authorization": sign(body, "devkey", "guessed", time.time())})
    assert again.status_code == 401
    # One WARNING per reason (rate-limited: the second is counted, not logged), no token or body content.
    warned = [ln for ln in serve.stderr().splitlines() if "webhook rejected" in ln]
    assert len(warned) == 1 and warned[0].startswith("WARNING roomctl.webhook: webhook rejected (401 bad_signature)")
    assert "EV_forged" not in serve.stderr() and forged.request.headers["Authorization"] not in serve.stderr()


def test_a_burst_of_500_joins_across_50_rooms_converges_without_duplicate_requests(
        world: tuple[SandboxServer, Serve, Path]) -> None:
    sandbox, serve, _ = world
    sandbox.test_api("DELETE", "requests")
    people = [(f"burst-{i % BURST_ROOMS:02d}", f"p{i:03d}") for i in range(500)]

    async def burst() -> None:
        gate = asyncio.Semaphore(32)
        async with httpx.AsyncClient(base_url=sandbox.url) as client:
            async def one(room_name: str, identity: str) -> None:
                token = mint({"sub": identity, "video": {"roomJoin": True, "room": room_name, "canPublish": True}})
                async with gate:
                    response = await client.post("/sandbox/join", json={"token": token})
                assert response.status_code == 200

            await asyncio.gather(*(one(r, i) for r, i in people))

    asyncio.run(burst())

    def converged() -> bool:
        for i in range(BURST_ROOMS):
            listed = twirp(sandbox.url, "ListParticipants", {"room": f"burst-{i:02d}"},
                           {"roomAdmin": True, "room": f"burst-{i:02d}"})["participants"]
            if len(listed) != 10 or any(p["permission"]["can_publish"] for p in listed):
                return False
        return True

    wait_until(converged, 25, "the burst to converge")
    time.sleep(0.3)  # late reactions (still queued) would show up as extra requests now
    counts = sandbox.counts()
    # Exactly one UpdateParticipant per participant: never a second request for the same state.
    assert counts.get("RoomService.UpdateParticipant") == 500
    assert serve.metric("roomctl_reconcile_duration_seconds_count", trigger="interval") == 0
    assert serve.metric("roomctl_webhook_events_total", event="participant_joined", result="queue_full") == 0


def test_a_bad_edit_keeps_the_last_good_state_and_reports_it(world: tuple[SandboxServer, Serve, Path]) -> None:
    sandbox, serve, manifests = world
    broken = manifests / "zz-broken.yaml"
    broken.write_text(room("late") + "  emptyTimeout: soon\n")
    wait_until(lambda: "zz-broken.yaml:" in serve.stderr(), 10, "the error to be reported")
    line = next(ln for ln in serve.stderr().splitlines() if "zz-broken.yaml:" in ln)
    assert line.startswith("error: ") and "emptyTimeout" in line
    assert serve.metric("roomctl_manifests_valid") == 0
    assert "last good manifests stay in force" in serve.stderr()
    # Still enforcing the last good rules, and the broken file's room was never created.
    join(sandbox.url, "town", "carol")
    wait_until(lambda: permission(sandbox.url, "town", "carol")["can_publish"] is False, 10, "carol corrected")
    assert twirp(sandbox.url, "ListRooms", {"names": ["late"]}, {"roomList": True})["rooms"] == []
    broken.write_text(room("late"))
    wait_until(lambda: twirp(sandbox.url, "ListRooms", {"names": ["late"]}, {"roomList": True})["rooms"], 10,
               "the fixed file's room to be created")
    assert serve.metric("roomctl_manifests_valid") == 1
    assert serve.metric("roomctl_reconcile_duration_seconds_count", trigger="reload") >= 1
    broken.unlink()


def test_sigterm_finishes_and_exits_0(world: tuple[SandboxServer, Serve, Path]) -> None:
    _, serve, _ = world
    assert stop(serve) == 0
    assert "roomctl serve: stopped" in serve.stderr()


def test_a_lost_webhook_is_healed_by_the_interval(sandbox: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "rooms.yaml").write_text(room("quiet", LISTENER))
    port = free_port()
    sandbox.test_api("PUT", "webhooks", {"url": f"http://127.0.0.1:{port}/webhook", "drop": True})
    try:
        # serve has no run deadline (no --deadline flag), so a run long after start still works.
        serve = _start_on(sandbox.url, [str(tmp_path / "rooms.yaml")], tmp_path / "serve.log", port,
                          "--interval", "1s")
        try:
            time.sleep(1.2)
            join(sandbox.url, "quiet", "dana")
            wait_until(lambda: permission(sandbox.url, "quiet", "dana")["can_publish"] is False, 10,
                       "the interval run to correct dana")
            assert sandbox.test_api("GET", "webhooks")["dropped_by_test"] >= 1
            assert serve.metric("roomctl_webhook_events_total", event="participant_joined", result="accepted") == 0
            assert serve.metric("roomctl_actions_total", kind="UpdateParticipant", result="ok", trigger="interval") == 1
            # Later interval runs have nothing to do: nothing more at INFO.
            runs = serve.metric("roomctl_reconcile_duration_seconds_count", trigger="interval")
            wait_until(lambda: serve.metric("roomctl_reconcile_duration_seconds_count", trigger="interval") >= runs + 2,
                       10, "two more interval runs")
            info = [ln for ln in serve.stderr().splitlines() if ln.startswith("INFO")]
            assert [ln.split(": ")[1] for ln in info] == ["start run", "interval run"], info  # create, then dana
        finally:
            assert stop(serve) == 0
    finally:
        sandbox.test_api("PUT", "webhooks", {"url": None, "drop": False})


def test_bad_manifests_at_start_exit_1_before_any_request(sandbox: SandboxServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(room("x") + "  maxParticipants: many\n")
    sandbox.test_api("DELETE", "requests")
    env = cli_env(sandbox)
    done = subprocess.run([sys.executable, "-m", "reconciler", "serve", str(bad), "--listen",
                           f"127.0.0.1:{free_port()}"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {bad}:") and "maxParticipants" in done.stderr
    assert sandbox.counts() == {}


def test_webhooks_from_a_named_server_act_on_that_server_only(sandbox: SandboxServer, tmp_path: Path) -> None:
    """A webhook is verified with its signer's key and reacted to on that key's server, against only
    the rooms declared there: a room of the same name on the default server is never touched."""
    port = free_port()
    servers = tmp_path / "servers.yaml"
    servers.write_text("servers:\n  eu:\n    url: URL\n    apiKeyEnv: EU_KEY\n    apiSecretEnv: EU_SECRET\n")
    rooms = tmp_path / "rooms.yaml"
    rooms.write_text(room("town", LISTENER) + room("eu-room", LISTENER, "  serverRef: {name: eu}\n"))
    with run_sandbox("--api-key", "eukey", "--api-secret", "eusecret",
                     "--webhook-url", f"http://127.0.0.1:{port}/webhook") as eu:
        servers.write_text(servers.read_text().replace("URL", eu.url))
        env = cli_env(None, LIVEKIT_URL=sandbox.url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret",
                      EU_KEY="eukey", EU_SECRET="eusecret")
        log = tmp_path / "serve.log"
        with log.open("wb") as handle:
            process = subprocess.Popen([sys.executable, "-m", "reconciler", "serve", str(rooms), "--servers",
                                        str(servers), "--listen", f"127.0.0.1:{port}", "--interval", "1h"],
                                       env=env, stderr=handle, stdout=handle)
        serve = Serve(process, f"http://127.0.0.1:{port}", log)
        try:
            wait_until(lambda: _ready(serve), 20, "roomctl serve to be ready")
            def eu_token(room_name: str, identity: str) -> str:
                return mint({"sub": identity, "video": {"roomJoin": True, "room": room_name, "canPublish": True}},
                            key="eukey", secret="eusecret")

            for room_name, identity in (("eu-room", "gus"), ("town", "hal")):
                response = httpx.post(f"{eu.url}/sandbox/join", json={"token": eu_token(room_name, identity)})
                assert response.status_code == 200, response.text
            wait_until(lambda: permission(eu.url, "eu-room", "gus")["can_publish"] is False, 10, "gus corrected on eu")
            wait_until(lambda: serve.metric("roomctl_webhook_runs_total", result="no_action") >= 1, 10,
                       "the eu town event to be handled")
            time.sleep(0.3)
            assert permission(eu.url, "town", "hal")["can_publish"] is True  # town is declared on the default only
            assert eu.counts().get("RoomService.UpdateParticipant") == 1
            assert serve.metric("roomctl_webhook_rejected_total", reason="unknown_key") == 0
        finally:
            assert stop(serve) == 0


def _ready(serve: Serve) -> bool:
    if serve.process.poll() is not None:
        raise AssertionError(f"roomctl serve exited {serve.process.returncode}: {serve.stderr()}")
    try:
        return httpx.get(f"{serve.url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
