"""Load client for benchmark 7: CreateRoom from aiohttp (what the official SDK uses) at a fixed
concurrency; prints the rate and, given the server's pid, the server's CPU per request (from
/proc, so the cost is known even when the machine is shared and the rate is not).

    python bench/sandbox_load.py URL REQUESTS CONCURRENCY [SERVER_PID]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiohttp
import jwt


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def hammer(url: str, requests: int, concurrency: int, prefix: str) -> float:
    now = int(time.time())
    token = jwt.encode({"iss": "devkey", "sub": "", "nbf": now, "exp": now + 600, "video": {"roomCreate": True}},
                       "secret", algorithm="HS256")
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        todo = iter(range(requests))

        async def worker() -> None:
            for i in todo:
                async with session.post(f"{url}/twirp/livekit.RoomService/CreateRoom", headers=headers,
                                        data=b'{"name":"%s-%d","empty_timeout":3600}' % (prefix.encode(), i)) as r:
                    r.raise_for_status()
                    await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def main() -> None:
    url, requests, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pid = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    asyncio.run(hammer(url, min(500, requests), concurrency, "warm"))
    before = cpu_seconds(pid) if pid else 0.0
    elapsed = asyncio.run(hammer(url, requests, concurrency, "load"))
    server_us = (cpu_seconds(pid) - before) / requests * 1e6 if pid else 0.0
    print(json.dumps({"rate": requests / elapsed, "seconds": elapsed, "server_cpu_us": server_us}))


if __name__ == "__main__":
    main()
