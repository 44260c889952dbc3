"""Benchmark 6's worker: the operator's sweep over COUNT Room objects (the ones bench/common.py's
write_rooms declares, already in sync on the server), through the operator's own Reconciler and
ServerPool. Prints one JSON line: CPU and wall seconds per sweep, and the outcomes of the last.

    python bench/operator_sweep.py URL COUNT SWEEPS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

from reconciler.operator.decide import RoomObject
from reconciler.operator.reconciler import Reconciler
from reconciler.operator.servers import Credentials, ServerPool


def objects(count: int) -> list[RoomObject]:
    return [
        RoomObject("bench", f"room-{i:05d}",
                   {"emptyTimeout": 3600, "departureTimeout": 60, "maxParticipants": 50,
                    "metadata": {"team": "bench", "index": i, "rev": "v1"}},
                   generation=1, uid=f"uid-{i}")
        for i in range(count)
    ]


def synced_reason(status: dict[str, object]) -> str:
    for condition in status.get("conditions") or []:  # type: ignore[attr-defined]
        if condition.get("type") == "Synced":
            return str(condition.get("reason"))
    return "?"


async def main(url: str, count: int, sweeps: int) -> None:
    pool = ServerPool(Credentials(url, "devkey", "secret"), lambda: None)
    reconciler = Reconciler(pool)
    index = objects(count)
    cpu, wall = [], []
    outcomes: Counter[str] = Counter()
    for _ in range(sweeps):
        c0, w0 = time.process_time(), time.perf_counter()
        done = await reconciler.sweep(index)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        outcomes = Counter(synced_reason(outcome.status) for _, outcome in done)
    await pool.aclose()
    print(json.dumps({"cpu": cpu, "wall": wall, "outcomes": dict(outcomes)}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
