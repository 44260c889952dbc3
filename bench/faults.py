"""The fault soak of issue 9.1 over several seeds: how many applies each needs to converge.

    python bench/faults.py                  # 10 seeds, 500 rooms (100 with participants and an agent)
    python bench/faults.py --seeds 3 --rooms 200 --busy 40

Each seed gets the same scenario as tests/net/test_fault_soak.py (tests/support/soak.py): a fresh
`roomctl sandbox serve`, 20 % 503, 5 % connection resets, 5 % 429 (Retry-After 1), 5 % lost answers,
20 ms latency on every Twirp call, and `roomctl apply` repeated until it exits 0 (at most 3 runs);
then, faults off, a diff (must be clean) and a read-back (one dispatch per agent, guests' permissions
applied). The sandbox's fault draws are seeded; the client's retry jitter and timing are not, so a
seed is a scenario, not a replay. Exit 1 if any seed fails to converge or ends wrong.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.server import run_sandbox
from tests.support.soak import FAULT_MIX, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--busy", type=int, default=100)
    args = parser.parse_args()
    print(f"fault mix on every call: {FAULT_MIX}; {args.rooms} rooms, {args.busy} with 2 participants + an agent")
    converged: collections.Counter[str] = collections.Counter()
    ok = True
    with tempfile.TemporaryDirectory() as work:
        for seed in range(1, args.seeds + 1):
            with run_sandbox() as sandbox:
                started = time.monotonic()
                outcome = run_soak(sandbox, Path(work), rooms=args.rooms, busy=args.busy, seed=seed)
            right = (outcome.converged_after is not None and outcome.diff_exit == 0
                     and set(outcome.dispatch_counts.values()) == {1} and outcome.wrong_permissions == 0)
            ok = ok and right
            converged[str(outcome.converged_after or "never")] += 1
            print(f"seed {seed:2d}: apply exits {outcome.runs} (s: {', '.join(f'{s:.1f}' for s in outcome.seconds)}); "
                  f"diff after: {outcome.diff_exit}; dispatches per agent: {sorted(set(outcome.dispatch_counts.values()))}; "
                  f"wrong permissions: {outcome.wrong_permissions}; {time.monotonic() - started:.0f} s in all"
                  + ("" if right else "  <- WRONG"), flush=True)
    print("converged after N applies: " + ", ".join(f"{n}: {converged[n]}" for n in sorted(converged)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
