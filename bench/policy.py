"""Benchmark (issue 10): a RoomPolicy over 1,000 live undeclared rooms x 10 participants, 10 % of the
participants out of policy. Counts the requests of `roomctl apply` (expected: 1 ListRooms + 1,000
ListParticipants + exactly the 1,000 needed UpdateParticipant) and times it against what a user would
write without roomctl: a sequential loop over the official `livekit-api` SDK.

    python bench/policy.py [--rooms 1000] [--participants 10] [--out-of-policy 0.1] [--latency 0 --latency 0.02]

Each contender gets the same fleet on the same `roomctl sandbox serve` (re-joined between runs), and
each run is checked: after it, `roomctl diff` must be clean (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import jwt
from livekit import api

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import API_KEY, API_SECRET, ROOT, sandbox  # noqa: E402

POLICY = """\
apiVersion: roomctl.dev/v1alpha1
kind: RoomPolicy
metadata: {name: support-calls}
spec:
  rooms: ["support-*"]
  participants:
    - identity: "*"
      permission: {canPublishData: false}
"""


warnings.filterwarnings("ignore", message="The HMAC key")  # the sandbox's dev secret is short on purpose


def token(room: str, identity: str, data: bool) -> str:
    now = int(time.time())
    claims = {"iss": API_KEY, "sub": identity, "nbf": now, "exp": now + 3600,
              "video": {"roomJoin": True, "room": room, "canPublish": True, "canPublishData": data}}
    return jwt.encode(claims, API_SECRET, algorithm="HS256")


def fleet(rooms: int, participants: int, share: float, seed: int = 1) -> list[tuple[str, str, bool]]:
    """(room, identity, may publish data): `share` of all participants out of policy."""
    rng = random.Random(seed)
    everyone = [(f"support-{r:04d}", f"user-{p}") for r in range(rooms) for p in range(participants)]
    wrong = set(rng.sample(range(len(everyone)), round(len(everyone) * share)))
    return [(room, identity, i in wrong) for i, (room, identity) in enumerate(everyone)]


async def join_all(url: str, joins: list[tuple[str, str, bool]], concurrency: int = 32) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        queue = iter(joins)

        async def worker() -> None:
            for room, identity, data in queue:
                for attempt in range(5):  # a kept-alive connection the server closed meanwhile: again
                    try:
                        r = await client.post("/sandbox/join", json={"token": token(room, identity, data)})
                        break
                    except httpx.TransportError:
                        if attempt == 4:
                            raise
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def roomctl(url: str, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = dict(os.environ, LIVEKIT_URL=url, LIVEKIT_API_KEY=API_KEY, LIVEKIT_API_SECRET=API_SECRET, NO_COLOR="1")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=1800)
    return time.perf_counter() - started, result


async def sdk_loop(url: str) -> int:
    """The user's own script: list every room, then per matching room list participants and fix who
    is out of policy (overlaying the observed permission, as UpdateParticipant replaces it whole)."""
    lk = api.LiveKitAPI(url, API_KEY, API_SECRET)
    fixed = 0
    try:
        listed = await lk.room.list_rooms(api.ListRoomsRequest())
        for room in sorted(r.name for r in listed.rooms if r.name.startswith("support-")):
            people = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            for p in people.participants:
                if p.kind == api.ParticipantInfo.Kind.STANDARD and p.permission.can_publish_data:
                    permission = api.ParticipantPermission()
                    permission.CopyFrom(p.permission)
                    permission.can_publish_data = False
                    await lk.room.update_participant(api.UpdateParticipantRequest(
                        room=room, identity=p.identity, permission=permission))
                    fixed += 1
    finally:
        await lk.aclose()
    return fixed


def scenario(server: object, policy: Path, rooms: int, wrong: list[tuple[str, str, bool]], delay: float) -> None:
    """One comparison on the same fleet, the server answering room calls after `delay` seconds."""
    latency = {"latency_ms": delay * 1000}
    server.test_api("/sandbox/faults", {"methods": {"RoomService.ListParticipants": latency,  # type: ignore[attr-defined]
                                                    "RoomService.UpdateParticipant": latency}}, "PUT")
    print(f"-- room calls answered after {delay * 1000:.0f} ms (ListParticipants, UpdateParticipant: the "
          "server's latency, network round trip included)")
    server.reset_requests()  # type: ignore[attr-defined]
    seconds, diff = roomctl(server.url, "diff", str(policy), "-q")  # type: ignore[attr-defined]
    assert diff.returncode == 2, diff.stderr
    print(f"roomctl diff: {seconds:.2f} s, requests {server.requests()}")  # type: ignore[attr-defined]

    server.reset_requests()  # type: ignore[attr-defined]
    roomctl_seconds, applied = roomctl(server.url, "apply", str(policy), "-q")  # type: ignore[attr-defined]
    assert applied.returncode == 0, applied.stderr
    requests = server.requests()  # type: ignore[attr-defined]
    print(f"roomctl apply: {roomctl_seconds:.2f} s, requests {requests}")
    expected = {"ListRooms": 1, "ListParticipants": rooms, "UpdateParticipant": len(wrong)}
    print(f"  expected {expected}: {'exactly' if requests == expected else 'NOT'} as expected")
    _, clean = roomctl(server.url, "diff", str(policy), "-q")  # type: ignore[attr-defined]
    assert clean.returncode == 0, "diff after apply is not clean"

    asyncio.run(join_all(server.url, wrong))  # type: ignore[attr-defined]  # the same people out of policy again
    server.reset_requests()  # type: ignore[attr-defined]
    started = time.perf_counter()
    fixed = asyncio.run(sdk_loop(server.url))  # type: ignore[attr-defined]
    sdk_seconds = time.perf_counter() - started
    print(f"SDK loop (livekit-api, sequential): {sdk_seconds:.2f} s, fixed {fixed}, "
          f"requests {server.requests()}")  # type: ignore[attr-defined]
    _, clean = roomctl(server.url, "diff", str(policy), "-q")  # type: ignore[attr-defined]
    assert clean.returncode == 0, "diff after the SDK loop is not clean"
    print(f"ratio SDK loop / roomctl apply = {sdk_seconds / roomctl_seconds:.2f}x "
          "(roomctl's time includes process start-up, validation and the plan)")
    asyncio.run(join_all(server.url, wrong))  # type: ignore[attr-defined]  # ready for the next scenario


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--participants", type=int, default=10)
    parser.add_argument("--out-of-policy", type=float, default=0.1)
    parser.add_argument("--latency", type=float, action="append", default=[],
                        help="seconds the server takes per room call (repeatable; default: 0 and 0.02)")
    args = parser.parse_args()
    joins = fleet(args.rooms, args.participants, args.out_of_policy)
    wrong = [j for j in joins if j[2]]
    with tempfile.TemporaryDirectory() as tmp, sandbox() as server:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        started = time.perf_counter()
        asyncio.run(join_all(server.url, joins))
        print(f"fleet: {args.rooms} rooms x {args.participants} participants by joins in "
              f"{time.perf_counter() - started:.1f} s; {len(wrong)} out of policy")
        for delay in args.latency or [0.0, 0.02]:
            scenario(server, policy, args.rooms, wrong, delay)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
