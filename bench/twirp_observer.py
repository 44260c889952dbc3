"""Cost of the operator's per-call latency hook on the LiveKit client (TwirpClient.on_call).

Runs the same ListRooms loop against the in-process sandbox with and without the Prometheus
observer, interleaved in rounds so machine noise hits both, and prints the ratio."""

from __future__ import annotations

import argparse
import asyncio
import time

from reconciler.backends.livekit import LiveKitBackend
from reconciler.operator.metrics import observe_call
from reconciler.sandbox import DEFAULT_API_KEY, DEFAULT_API_SECRET, EMBEDDED_URL, EmbeddedTransport, Sandbox


async def loop(backend: LiveKitBackend, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await backend.list_rooms(["a", "b"])
    return time.perf_counter() - started


async def main(calls: int, rounds: int) -> None:
    sandbox = Sandbox()
    plain = LiveKitBackend(EMBEDDED_URL, DEFAULT_API_KEY, DEFAULT_API_SECRET, transport=EmbeddedTransport(sandbox))
    hooked = LiveKitBackend(EMBEDDED_URL, DEFAULT_API_KEY, DEFAULT_API_SECRET, transport=EmbeddedTransport(sandbox),
                            on_call=observe_call)
    await loop(plain, 200)
    await loop(hooked, 200)  # warm-up: tokens cached, connections made
    totals = {"plain": 0.0, "hooked": 0.0}
    for _ in range(rounds):
        totals["plain"] += await loop(plain, calls)
        totals["hooked"] += await loop(hooked, calls)
    n = calls * rounds
    for name, seconds in totals.items():
        print(f"{name}: {n} ListRooms in {seconds:.2f} s -> {seconds / n * 1e6:.0f} us/call")
    print(f"ratio hooked/plain = {totals['hooked'] / totals['plain']:.3f} (target <= 1.05)")
    await plain.aclose()
    await hooked.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
