"""Benchmark: `roomctl sandbox serve` start-up time and CreateRoom throughput over loopback.

Targets (issue 2): starts in under 2 s; at least 1,000 CreateRoom/s with a concurrent client on a
2-core machine. Prints each measurement and its ratio to the target from one run.

    python bench/sandbox_serve.py [--requests 5000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time

import httpx
import jwt


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def token() -> str:
    now = int(time.time())
    return jwt.encode({"iss": "devkey", "sub": "", "nbf": now, "exp": now + 600, "video": {"roomCreate": True}},
                      "secret", algorithm="HS256")


async def hammer(url: str, requests: int, concurrency: int) -> float:
    # aiohttp (what the official SDK uses) as the load client: it costs less CPU per request than
    # httpx, and client and server share the machine's two cores.
    import aiohttp

    headers = {"Authorization": "Bearer " + token(), "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:
        queue = iter(range(requests))

        async def worker() -> None:
            for i in queue:
                async with client.post(f"{url}/twirp/livekit.RoomService/CreateRoom", headers=headers,
                                       data=b'{"name":"bench-%d","empty_timeout":3600}' % i) as r:
                    r.raise_for_status()
                    await r.read()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "sandbox", "serve", "--port", str(port), "-q"])
    try:
        while True:
            try:
                if httpx.get(url + "/", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.01)
            if time.perf_counter() - started > 30:
                raise SystemExit("sandbox did not start")
        startup = time.perf_counter() - started
        asyncio.run(hammer(url, 200, args.concurrency))  # warm-up (also names bench-0..199 again below)
        elapsed = asyncio.run(hammer(url, args.requests, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    rate = args.requests / elapsed
    print(f"startup: {startup:.2f} s (target < 2 s; ratio target/actual = {2 / startup:.1f}x)")
    print(f"CreateRoom: {args.requests} requests, concurrency {args.concurrency}, {elapsed:.2f} s -> "
          f"{rate:.0f} req/s (target >= 1000; ratio actual/target = {rate / 1000:.2f}x)")
    return 0 if startup < 2 and rate >= 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
