"""Benchmark: how long a too-broad join keeps its rights, with webhooks vs interval sweeps only (issue 11).

    python bench/webhook_latency.py [--joins 1000] [--rooms 50] [--rate 50] [--latency-ms 20] [--sweep-interval 5]

For each mode a fresh `roomctl sandbox serve --latency-ms N` (every Twirp call delayed N ms, as a
network would) and a fresh `roomctl serve` enforcing one rule on every room ("*": canPublish false):

- webhooks: the sandbox POSTs its webhooks to `roomctl serve --interval 1h`, so only webhooks act;
- sweep-only: no webhooks, `roomctl serve --interval S`: the full run every S seconds is all there is.

Joins are issued open-loop at --rate per second across --rooms rooms, each with a token granting
canPublish. Latency per join = when the sandbox applied the UpdateParticipant that took the right
away (`permission_changed_at`, sandbox clock = wall clock) minus when `/sandbox/join` returned to
the client. Target (issue 11): p99 < 250 ms with webhooks. Prints p50/p95/p99/max per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import API_KEY, API_SECRET, ROOT, free_port, sandbox  # noqa: E402

RULE = ('  participants:\n    - identity: "*"\n'
        "      permission: {canPublish: false, canSubscribe: true, canPublishData: false}\n")


def manifests(folder: Path, rooms: int) -> Path:
    path = folder / "rooms.yaml"
    path.write_text("".join(f"---\napiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {{name: bench-{i:03d}}}\n"
                            f"spec:\n{RULE}" for i in range(rooms)))
    return path


def join_token(room: str, identity: str) -> str:
    now = int(time.time())
    claims = {"iss": API_KEY, "sub": identity, "nbf": now, "exp": now + 3600,
              "video": {"roomJoin": True, "room": room, "canPublish": True, "canPublishData": True}}
    return jwt.encode(claims, API_SECRET, algorithm="HS256")


def start_serve(sandbox_url: str, path: Path, port: int, interval: str) -> subprocess.Popen[bytes]:
    env = {"LIVEKIT_URL": sandbox_url, "LIVEKIT_API_KEY": API_KEY, "LIVEKIT_API_SECRET": API_SECRET,
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "serve", str(path), "--listen", f"127.0.0.1:{port}",
                             "--interval", interval, "-q"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("roomctl serve did not become ready")
        time.sleep(0.05)


async def run_joins(url: str, joins: int, rooms: int, rate: float) -> list[tuple[str, str, float]]:
    """Open loop: join i starts at i/rate seconds, whatever earlier joins are doing."""
    people = [(f"bench-{i % rooms:03d}", f"p{i:05d}") for i in range(joins)]
    tokens = [join_token(r, p) for r, p in people]
    returned: list[tuple[str, str, float]] = []
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            async with session.post(f"{url}/sandbox/join", json={"token": tokens[i]}) as response:
                await response.read()
                done = time.time()
                if response.status != 200:
                    raise SystemExit(f"join failed: HTTP {response.status}")
            returned.append((*people[i], done))

        await asyncio.gather(*(one(i) for i in range(joins)))
    return returned


async def enforced_at(url: str, joined: list[tuple[str, str, float]], timeout: float) -> list[float]:
    """Each join's latency, once every participant's permission was changed (waits up to `timeout`)."""
    deadline = time.monotonic() + timeout
    latencies: dict[int, float] = {}
    async with aiohttp.ClientSession() as session:
        gate = asyncio.Semaphore(16)

        async def check(i: int) -> None:
            room, identity, returned = joined[i]
            async with gate, session.post(f"{url}/sandbox/participant",
                                          json={"room": room, "identity": identity}) as response:
                found = await response.json()
            changed = found.get("permission_changed_at")
            if changed is not None and not found["participant"]["permission"]["can_publish"]:
                latencies[i] = changed - returned

        while len(latencies) < len(joined):
            await asyncio.gather(*(check(i) for i in range(len(joined)) if i not in latencies))
            if len(latencies) < len(joined):
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {len(latencies)}/{len(joined)} joins were ever enforced")
                await asyncio.sleep(0.5)
    return [latencies[i] for i in range(len(joined))]


def measure(mode: str, args: argparse.Namespace, folder: Path) -> list[float]:
    path = manifests(folder, args.rooms)
    port = free_port()
    extra = ["--latency-ms", str(args.latency_ms)]
    if mode == "webhooks":
        extra += ["--webhook-url", f"http://127.0.0.1:{port}/webhook"]
    interval = "1h" if mode == "webhooks" else f"{args.sweep_interval}s"
    with sandbox(*extra) as box:
        serve = start_serve(box.url, path, port, interval)
        try:
            joined = asyncio.run(run_joins(box.url, args.joins, args.rooms, args.rate))
            return asyncio.run(enforced_at(box.url, joined, timeout=60 + 3 * args.sweep_interval))
        finally:
            serve.terminate()
            serve.wait(timeout=30)


def summary(mode: str, latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    ms = [1000 * v for v in (cuts[49], cuts[94], cuts[98], max(latencies))]
    return f"{mode:>10}: n={len(latencies)} p50 {ms[0]:.0f} ms, p95 {ms[1]:.0f} ms, p99 {ms[2]:.0f} ms, max {ms[3]:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--rate", type=float, default=50.0, help="joins per second (open loop)")
    parser.add_argument("--latency-ms", type=int, default=20, help="added to every Twirp call by the sandbox")
    parser.add_argument("--sweep-interval", type=int, default=5, help="seconds between full runs, sweep-only mode")
    parser.add_argument("--mode", choices=("both", "webhooks", "sweep"), default="both")
    args = parser.parse_args()
    modes = ["webhooks", "sweep"] if args.mode == "both" else [args.mode]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            results[mode] = measure(mode, args, Path(tmp))
            print(summary(mode, results[mode]), flush=True)
    if "webhooks" in results:
        p99 = statistics.quantiles(results["webhooks"], n=100, method="inclusive")[98]
        verdict = "met" if p99 < 0.25 else "NOT met"
        print(f"target p99 < 250 ms with webhooks: {verdict} (ratio target/actual = {0.25 / p99:.2f}x)")


if __name__ == "__main__":
    main()
