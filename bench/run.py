"""roomctl's performance benchmarks (issue 12), each measuring its contenders side by side in one run.

    python bench/run.py                 # all seven, full size (about 10 minutes)
    python bench/run.py --only 1,3      # some of them
    python bench/run.py --repeat 3      # rounds per comparison (interleaved; median and spread shown)
    python bench/run.py --quick         # small sizes, under a minute: the test suite's smoke check

Every contender gets a fresh `roomctl sandbox serve` (its own process and port), with
`--latency-ms 20` as a stand-in for a real network where the benchmark says so. Whole processes are
timed (start-up included) with wait4, which also gives their CPU time and peak RSS; request counts
come from the sandbox. Ratios are of medians; the spread of each is printed too. Targets are printed
as met / NOT met and never change the exit code: a machine shared with other work is noisy. The exit
code is 1 only when a benchmark did not work (a contender failed, or issued other requests than it
must).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    API_KEY,
    API_SECRET,
    ROOT,
    Run,
    SandboxProc,
    machine,
    run_process,
    sandbox,
    server_env,
    write_rooms,
)

PY = sys.executable
ROOMCTL = [PY, "-m", "reconciler"]
LATENCY = ("--latency-ms", "20")
CEILING = 64  # roomctl's default --concurrency; the floor runs at the same concurrency


class BenchError(Exception):
    """The benchmark did not work (not: a target was missed)."""


@dataclass
class Report:
    number: int
    title: str
    lines: list[str] = field(default_factory=list)
    targets: list[tuple[str, bool]] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.lines.append(text)
        print(f"  {text}", flush=True)

    def target(self, text: str, met: bool) -> None:
        self.targets.append((text, met))
        print(f"  target {'met    ' if met else 'NOT met'}: {text}", flush=True)


def spread(values: Sequence[float], unit: str = "s", digits: int = 2) -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f} {unit}"
    return f"{median:.{digits}f} {unit} (min {min(values):.{digits}f}, max {max(values):.{digits}f}, n={len(values)})"


def check(run: Run, what: str) -> Run:
    if run.rc != 0:
        tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
        raise BenchError(f"{what} exited {run.rc}: {' | '.join(tail)}")
    return run


def timed(argv: Sequence[str], box: SandboxProc, what: str) -> Run:
    box.reset_requests()
    run = check(run_process(argv, env=server_env(box.url), cwd=ROOT), what)
    run.requests = box.requests()
    return run


def limiter_line(run: Run) -> str:
    for line in run.stderr.splitlines():
        if "requests in flight peaked" in line:
            return line.split(": ", 1)[1]
    return "(no limiter line)"


def set_latency(box: SandboxProc, ms: float) -> None:
    box.test_api("/sandbox/faults", {"methods": {"*": {"latency_ms": ms}}} if ms else {}, method="PUT")


def seed_rooms(box: SandboxProc, folder: Path) -> None:
    """Create the rooms of `folder` (no latency configured yet): the state a benchmark starts from."""
    check(run_process([*ROOMCTL, "apply", str(folder), "-q"], env=server_env(box.url), cwd=ROOT), "seeding apply")


# ---- 1 -------------------------------------------------------------------------------------------
def cold_apply(report: Report, work: Path, quick: bool, repeat: int) -> None:
    count = 50 if quick else 1000
    folder = write_rooms(work / "cold", count)
    report.say(f"{count} rooms, cold apply, sandbox --latency-ms 20, fresh sandbox per contender, {repeat} round(s)")
    contenders: dict[str, Callable[[SandboxProc], list[str]]] = {
        "roomctl apply": lambda box: [*ROOMCTL, "apply", str(folder)],  # default settings
        f"floor (aiohttp, concurrency {CEILING})": lambda box: [PY, "bench/floor_aiohttp.py", box.url, str(count),
                                                                   str(CEILING)],
        "official SDK, sequential loop": lambda box: [PY, "bench/sdk_loop.py", box.url, "create", str(count)],
    }
    runs: dict[str, list[Run]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, argv in contenders.items():
            with sandbox(*LATENCY) as box:
                runs[name].append(timed(argv(box), box, name))
    expected = {"ListRooms": 1, "CreateRoom": count}
    for name, got in runs.items():
        walls, cpus = [r.wall for r in got], [r.cpu for r in got]
        report.say(f"{name:34s} wall {spread(walls)}; CPU {spread(cpus)}; requests {got[0].requests}")
        if name != "official SDK, sequential loop" and got[0].requests != expected:
            raise BenchError(f"{name} issued {got[0].requests}, expected {expected}")
    roomctl = statistics.median(r.wall for r in runs["roomctl apply"])
    floor = statistics.median(r.wall for r in runs[f"floor (aiohttp, concurrency {CEILING})"])
    sdk = statistics.median(r.wall for r in runs["official SDK, sequential loop"])
    per_round = [f"{s.wall / r.wall:.1f}x/{r.wall / f.wall:.2f}x" for r, f, s in
                 zip(runs["roomctl apply"], runs[f"floor (aiohttp, concurrency {CEILING})"],
                     runs["official SDK, sequential loop"], strict=True)]
    report.say(f"per round (SDK/roomctl, roomctl/floor): {', '.join(per_round)}")
    report.target(f"SDK loop / roomctl = {sdk / roomctl:.1f}x (>= 15x)", sdk / roomctl >= 15)
    report.target(f"roomctl / floor = {roomctl / floor:.2f}x (<= 1.3x)", roomctl / floor <= 1.3)


# ---- 2 -------------------------------------------------------------------------------------------
def rate_limit(report: Report, work: Path, quick: bool, repeat: int) -> None:
    count = 50 if quick else 1000
    folder = write_rooms(work / "limited", count)
    if quick:
        # The smoke version: random 429s with Retry-After 1 s instead of a minute-long window.
        faults: tuple[str, ...] = ("--throttle-rate", "0.06")
        report.say(f"{count} rooms, sandbox {' '.join((*LATENCY, *faults))} (quick: 429 + Retry-After at random)")
    else:
        faults = ("--rate-limit", "1000/min")
        report.say(f"{count} rooms, sandbox {' '.join((*LATENCY, *faults))}")
    with sandbox(*LATENCY, *faults) as box:
        run = run_process([*ROOMCTL, "apply", str(folder), "-v"], env=server_env(box.url), cwd=ROOT)
        run.requests = box.requests()
    summary = next((line for line in run.stdout.splitlines() if line.startswith("Apply complete")), "(no summary)")
    report.say(f"roomctl apply: wall {run.wall:.2f} s, CPU {run.cpu:.2f} s, exit {run.rc}; {summary}")
    report.say(f"requests seen by the server (refused ones included): {run.requests}")
    report.say(f"roomctl's limiter: {limiter_line(run)}")
    if run.rc != 0 or " 0 failed" not in summary:
        raise BenchError(f"apply under a rate limit failed actions: {summary}")
    if not quick:
        issued = count + 1  # ListRooms + one CreateRoom each
        minimum = 60.0 * ((issued - 1) // 1000)  # a 1,000-a-minute sliding window: request k*1000+1 waits k minutes
        report.target(f"no failed action, {run.wall:.1f} s = {run.wall / minimum:.3f}x the {minimum:.0f} s the limit "
                      "allows (<= 1.15x)", run.wall <= 1.15 * minimum)


# ---- 3 -------------------------------------------------------------------------------------------
def steady_state(report: Report, work: Path, quick: bool, repeat: int) -> None:
    count = 300 if quick else 10_000
    sample = 30 if quick else 1000
    folder = write_rooms(work / "steady", count)
    report.say(f"{count} rooms in sync, roomctl diff end to end, sandbox --latency-ms 20, {repeat} round(s)")
    with sandbox() as box:
        seed_rooms(box, folder)
        set_latency(box, 20)
        diffs = [timed([*ROOMCTL, "diff", str(folder)], box, "roomctl diff") for _ in range(repeat)]
        sdk = [timed([PY, "bench/sdk_loop.py", box.url, "check", str(sample)], box, "SDK check loop")
               for _ in range(repeat)]
    if "No changes" not in diffs[0].stdout:
        raise BenchError(f"diff of rooms in sync did not say 'No changes': {diffs[0].stdout[-200:]}")
    if "drifted 0" not in sdk[0].stdout:
        raise BenchError(f"the SDK loop saw drift: {sdk[0].stdout}")
    wall = statistics.median(r.wall for r in diffs)
    cpu = statistics.median(r.cpu for r in diffs)
    rss = max(r.rss_mb for r in diffs)
    requests = diffs[0].requests
    sdk_wall = statistics.median(r.wall for r in sdk) * count / sample
    report.say(f"roomctl diff: wall {spread([r.wall for r in diffs])}; CPU {spread([r.cpu for r in diffs])}; "
               f"peak RSS {rss:.0f} MB; requests {requests}")
    report.say(f"SDK loop (ListRooms with one name per room): {sample} rooms in "
               f"{spread([r.wall for r in sdk])} -> {sdk_wall:.1f} s for {count} (linear: one request per room)")
    others = {k: v for k, v in requests.items() if k != "ListRooms"}
    report.target(f"{requests.get('ListRooms', 0)} ListRooms for {count} rooms (<= {max(1, count // 1000)}), "
                  f"no other request ({others or 'none'})",
                  requests.get("ListRooms", 0) <= max(1, count // 1000) and not others)
    report.target(f"CPU {cpu:.2f} s (< 1.5 s)", cpu < 1.5)
    report.target(f"peak RSS {rss:.0f} MB (< 200 MB)", rss < 200)
    report.target(f"SDK loop / roomctl = {sdk_wall / wall:.0f}x (>= 20x)", sdk_wall / wall >= 20)


# ---- 4 -------------------------------------------------------------------------------------------
def participant_rooms(folder: Path, rooms: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    docs = [
        "apiVersion: roomctl.dev/v1alpha1\nkind: Room\n"
        f"metadata: {{name: live-{r:03d}, namespace: bench}}\n"
        "spec:\n  emptyTimeout: 3600\n  participants:\n"
        "    - identity: \"guest-*\"\n      permission: {canPublish: false}\n"
        for r in range(rooms)
    ]
    (folder / "live.yaml").write_text("---\n".join(docs), encoding="utf-8")
    return folder


async def join_all(url: str, rooms: int, per_room: int) -> int:
    """per_room participants in each room: a fifth are guests, half of those (10 %) publishing
    against the rule. Returns how many are out of policy."""
    import aiohttp
    import jwt

    def token(room: str, identity: str, publish: bool) -> str:
        now = int(time.time())
        video = {"roomJoin": True, "room": room, "canPublish": publish, "canSubscribe": True}
        return jwt.encode({"iss": API_KEY, "sub": identity, "nbf": now, "exp": now + 3600, "video": video},
                          API_SECRET, algorithm="HS256")

    jobs: list[str] = []
    out = 0
    guests = per_room // 5
    for r in range(rooms):
        for i in range(per_room):
            is_guest = i < guests
            publish = not is_guest or i < guests // 2
            out += is_guest and publish
            name = f"guest-{i}" if is_guest else f"member-{i}"
            jobs.append(token(f"live-{r:03d}", name, publish))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        todo = iter(jobs)

        async def worker() -> None:
            for tok in todo:
                async with session.post(f"{url}/sandbox/join", json={"token": tok}) as response:
                    if response.status != 200:
                        raise BenchError(f"join failed: {response.status} {await response.text()}")

        await asyncio.gather(*(worker() for _ in range(32)))
    return out


def participants(report: Report, work: Path, quick: bool, repeat: int) -> None:
    rooms, per_room = (5, 20) if quick else (100, 100)
    folder = participant_rooms(work / "participants", rooms)
    report.say(f"{rooms} live rooms x {per_room} participants, rule: guest-* may not publish, 10 % out of policy; "
               "sandbox --latency-ms 20, fresh sandbox per contender")
    results: dict[str, Run] = {}
    for name in ("roomctl apply", "official SDK, sequential loop"):
        with sandbox() as box:
            seed_rooms(box, folder)
            out = asyncio.run(join_all(box.url, rooms, per_room))
            set_latency(box, 20)
            argv = ([*ROOMCTL, "apply", str(folder), "-q"] if name == "roomctl apply"
                    else [PY, "bench/sdk_loop.py", box.url, "participants", str(rooms)])
            results[name] = timed(argv, box, name)
    expected = {"ListRooms": 1, "ListParticipants": rooms, "UpdateParticipant": out}
    for name, run in results.items():
        report.say(f"{name:30s} wall {run.wall:.2f} s; CPU {run.cpu:.2f} s; requests {run.requests}")
    got = results["roomctl apply"].requests
    if got != expected:
        raise BenchError(f"roomctl issued {got}, expected {expected}")
    ratio = results["official SDK, sequential loop"].wall / results["roomctl apply"].wall
    report.target(f"requests = 1 ListRooms + {rooms} ListParticipants + the {out} UpdateParticipant needed", True)
    report.say(f"SDK loop / roomctl = {ratio:.1f}x")


# ---- 5 -------------------------------------------------------------------------------------------
def scaling(report: Report, work: Path, quick: bool, repeat: int) -> None:
    sizes = (50, 150) if quick else (100, 1000, 10_000)
    report.say("no added latency (roomctl's own costs); fresh sandbox per N; whole process")
    report.say(f"{'N':>6} | {'apply wall':>10} | {'apply CPU':>9} | {'CPU/request':>11} | {'requests':>8} | "
               f"{'RSS':>6} | {'diff wall':>9} | {'diff CPU':>8} | {'diff req':>8} | {'diff RSS':>8}")
    per_request = 0.0
    for n in sizes:
        folder = write_rooms(work / f"scale-{n}", n)
        with sandbox() as box:
            apply = timed([*ROOMCTL, "apply", str(folder), "-q"], box, f"apply {n}")
            diff = timed([*ROOMCTL, "diff", str(folder), "-q"], box, f"diff {n}")
        issued, listed = apply.total_requests, diff.total_requests
        per_request = apply.cpu / issued * 1000
        report.say(f"{n:>6} | {apply.wall:>8.2f} s | {apply.cpu:>7.2f} s | {per_request:>8.3f} ms | {issued:>8} | "
                   f"{apply.rss_mb:>3.0f} MB | {diff.wall:>7.2f} s | {diff.cpu:>6.2f} s | {listed:>8} | "
                   f"{diff.rss_mb:>5.0f} MB")
        if apply.requests.get("CreateRoom") != n:
            raise BenchError(f"apply of {n} issued {apply.requests}")
    if not quick:
        report.target(f"cold apply of 10,000: CPU per request {per_request:.3f} ms (<= 0.8 ms)", per_request <= 0.8)


# ---- 6 -------------------------------------------------------------------------------------------
def operator_sweep(report: Report, work: Path, quick: bool, repeat: int) -> None:
    count = 300 if quick else 10_000
    folder = write_rooms(work / "sweep", count)
    report.say(f"{count} Room objects in the operator's index, in sync; one sweep (Reconciler.sweep, in-process)")
    with sandbox() as box:
        seed_rooms(box, folder)
        box.reset_requests()
        run = check(run_process([PY, "bench/operator_sweep.py", box.url, str(count), str(repeat)], cwd=ROOT),
                    "operator sweep")
        requests = box.requests()
    data = json.loads(run.stdout.strip().splitlines()[-1])
    cpus = data["cpu"]
    report.say(f"sweep CPU {spread(cpus)} (first sweep {cpus[0]:.2f} s); wall {spread(data['wall'])}; "
               f"outcomes {data['outcomes']}; requests over {len(cpus)} sweep(s): {requests}")
    per_sweep = requests.get("ListRooms", 0) / len(cpus)
    others = {k: v for k, v in requests.items() if k != "ListRooms"}
    report.target(f"{per_sweep:.0f} ListRooms per sweep of {count} (<= {max(1, count // 1000)}), no other request "
                  f"({others or 'none'})", per_sweep <= max(1, count // 1000) and not others)
    report.target(f"sweep CPU {max(cpus):.2f} s at most (< 2 s)", max(cpus) < 2)


# ---- 7 -------------------------------------------------------------------------------------------
def sandbox_throughput(report: Report, work: Path, quick: bool, repeat: int) -> None:
    requests = 1000 if quick else 10_000
    report.say(f"aiohttp client, {requests} CreateRoom, concurrency 32, against sandbox serve (no latency)")
    rates, cpus = [], []
    for _ in range(repeat):
        with sandbox() as box:
            run = check(run_process([PY, "bench/sandbox_load.py", box.url, str(requests), "32",
                                     str(box.proc.pid)], cwd=ROOT), "load client")
        data = json.loads(run.stdout.strip().splitlines()[-1])
        rates.append(data["rate"])
        cpus.append(data["server_cpu_us"])
    report.say(f"throughput {spread(rates, 'req/s', 0)}; server CPU per request {spread(cpus, 'us', 0)} "
               f"(-> {1e6 / statistics.median(cpus):.0f} req/s on one free core)")
    report.target(f"{statistics.median(rates):.0f} CreateRoom/s (>= 5,000)", statistics.median(rates) >= 5000)


def installed_like() -> str:
    """Time roomctl as a user runs it: `pip install` compiles every module's bytecode, and a checkout
    run without PYTHONDONTWRITEBYTECODE caches it on first use. This workplace sets that variable,
    so an editable checkout would compile all of reconciler's ~80 modules again on every run
    (~0.1 s of each process, which no user pays). Compile them once here, as the install does."""
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "reconciler")], check=True, stdout=subprocess.DEVNULL)
    dont_write = os.environ.get("PYTHONDONTWRITEBYTECODE")
    return (f"bytecode compiled first, as pip install does (PYTHONDONTWRITEBYTECODE={dont_write})" if dont_write
            else "bytecode compiled first, as pip install does")


BENCHMARKS: dict[int, tuple[str, Callable[[Report, Path, bool, int], None]]] = {
    1: ("Cold apply: roomctl vs the SDK loop vs the aiohttp floor", cold_apply),
    2: ("Adaptive concurrency under a rate limit", rate_limit),
    3: ("Steady state: roomctl diff of rooms in sync", steady_state),
    4: ("Participants: permission rules over live rooms", participants),
    5: ("Scaling table", scaling),
    6: ("Operator sweep", operator_sweep),
    7: ("The sandbox is never the bottleneck", sandbox_throughput),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke check")
    parser.add_argument("--only", help="comma-separated benchmark numbers (1-7)")
    parser.add_argument("--repeat", type=int, help="rounds per comparison (default 3, --quick 1)")
    args = parser.parse_args(argv)
    chosen = sorted(int(n) for n in args.only.split(",")) if args.only else sorted(BENCHMARKS)
    repeat = args.repeat or (1 if args.quick else 3)
    print(f"roomctl benchmarks{' (quick)' if args.quick else ''}: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"machine: {machine()}")
    print(f"roomctl: {installed_like()}")
    reports: list[Report] = []
    broken: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="roomctl-bench-") as tmp:
        for number in chosen:
            title, bench = BENCHMARKS[number]
            print(f"\n{number}. {title}", flush=True)
            report = Report(number, title)
            reports.append(report)
            try:
                bench(report, Path(tmp), args.quick, repeat)
            except BenchError as exc:
                broken.append(f"{number}: {exc}")
                print(f"  BROKEN: {exc}", flush=True)
    print(f"\nSummary ({time.monotonic() - started:.0f} s; machine load after: {machine().rsplit(', ', 1)[-1]})")
    for report in reports:
        for text, met in report.targets:
            print(f"  {report.number}. {'met    ' if met else 'NOT met'}  {text}")
    for line in broken:
        print(f"  BROKEN {line}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
