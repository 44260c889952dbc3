"""`roomctl serve`'s loop, outside Kubernetes: level- plus edge-triggered enforcement.

Level: a full run (the same observe + plan + execute as `apply`) at start, every interval and after
each good manifest edit. Edge: each LiveKit webhook, through the shared receiver, becomes a run of
just its room (`engine.plan_one_room`: the same pure decision) and the same executor. Full runs
take the RunGate alone, room runs share it: the two never act on one room at once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .backends.errors import BackendError
from .engine import DEFAULT_SERVER, Backends, make_combined_plan, plan_one_room, server_of
from .execute import ActionResult, Results, execute, execute_combined
from .manifests import Inputs, ManifestError, load_inputs
from .plan import Plan, PlanOptions, PlanRefused, RoomPlan
from .plan.core import PARTICIPANT_ACTIONS
from .webhook.metrics import WebhookMetrics
from .webhook.receiver import EventQueue, Receiver, RoomWork, RunGate

log = logging.getLogger("roomctl.serve")

WATCH_SECONDS = 1.0  # how often the manifests' files are checked for an edit


class ServeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.webhook = WebhookMetrics(registry)
        self.reconcile = Histogram("roomctl_reconcile_duration_seconds",
                                   "Full reconcile runs (observe, plan, execute), by trigger.", ["trigger"],
                                   registry=registry, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.reconcile_failures = Counter("roomctl_reconcile_failures_total",
                                          "Full runs that could not observe or plan, by trigger.", ["trigger"],
                                          registry=registry)
        self.actions = Counter("roomctl_actions_total", "Plan actions performed, by kind, result and trigger.",
                               ["kind", "result", "trigger"], registry=registry)
        self.drift = Gauge("roomctl_drift", "Drift entries not applied, by room, as of the room's last run.",
                           ["room"], registry=registry)
        self.reloads = Counter("roomctl_manifest_reloads_total", "Manifest re-reads after an edit, by result.",
                               ["result"], registry=registry)
        self.manifests_valid = Gauge("roomctl_manifests_valid",
                                     "1 when the files on disk are the state being enforced; 0 after a bad edit "
                                     "(the last good state is still enforced).", registry=registry)


def _fingerprint(paths: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    """What changes when a manifest is edited, added or removed (the same files `load_inputs` reads)."""
    found: list[tuple[str, int, int]] = []
    for raw in paths:
        path = Path(raw)
        files = (sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))
                 if path.is_dir() else [path])
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                found.append((str(file), -1, -1))
                continue
            found.append((str(file), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def _audit(result: ActionResult, why: str) -> None:
    """The audit trail of `roomctl serve`: one line per action performed (INFO) or failed (WARNING):
    why (the run's trigger or the webhook events), what, on which room and participant or dispatch,
    which fields (names only: values may be long or private), what asked for it, and the outcome."""
    action = result.action
    what = f"{action.kind} room {action.room!r}"
    if action.target:
        what += f" {'participant' if action.kind in PARTICIPANT_ACTIONS else 'dispatch'} {action.target!r}"
    fields = sorted({change.field for change in action.changes})
    if fields:
        what += f" ({', '.join(fields)})"
    if action.source:
        what += f" for {action.source}"
    if result.ok:
        log.info("%s: %s: done%s", why, what, f" ({result.note})" if result.note else "")
    else:
        log.warning("%s: %s: failed: %s", why, what, result.error)


def webhook_keys(backends: Backends) -> tuple[dict[str, str], dict[str, str]]:
    """(API key -> secret, API key -> server) for every LiveKit server of the run: a webhook is
    verified with its signer's secret and reacted to on that server (the default one first)."""
    secrets: dict[str, str] = {}
    servers: dict[str, str] = {}
    for server, backend in [(DEFAULT_SERVER, backends.livekit), *sorted(backends.named.items())]:
        key = backend.tokens.api_key
        if key not in secrets:
            secrets[key] = backend.tokens.api_secret
            servers[key] = server
    return secrets, servers


@dataclass
class Enforcer:
    paths: Sequence[str]
    backends: Backends
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    options: PlanOptions = field(default_factory=PlanOptions)
    concurrency: int = 16
    queue_capacity: int = 1000
    workers: int = 32
    report: Callable[[str], None] = print
    inputs: Inputs | None = None
    ready: bool = False
    full_runs: int = 0

    def __post_init__(self) -> None:
        self.keys, self.servers = webhook_keys(self.backends)
        for backend in (self.backends.livekit, *self.backends.named.values()):
            # Room runs arrive at LiveKit's pace: never fewer calls in flight than runs at once.
            backend.twirp.limiter.hold_at_least(self.workers)
        self.metrics = ServeMetrics(self.registry)
        self.gate = RunGate()
        self.queue = EventQueue(self.react, capacity=self.queue_capacity, workers=self.workers, gate=self.gate,
                                metrics=self.metrics.webhook)
        self.receiver = Receiver(self.keys, self.queue, self.metrics.webhook)
        self._seen = _fingerprint(self.paths)
        self._last_error = ""

    # ---- manifests ----------------------------------------------------------------------------
    def load(self) -> bool:
        """Read the manifests. A bad edit keeps the last good state and reports each problem once."""
        self._seen = _fingerprint(self.paths)
        try:
            inputs = load_inputs(self.paths)
        except ManifestError as exc:
            return self._rejected([str(issue) for issue in exc.issues])
        problems = self._unservable(inputs)
        if problems:
            return self._rejected(problems)
        self.inputs = inputs
        if self._last_error:
            self.report("manifests are valid again")
        self._last_error = ""
        self.metrics.reloads.labels("ok").inc()
        self.metrics.manifests_valid.set(1)
        return True

    def _unservable(self, inputs: Inputs) -> list[str]:
        """What valid manifests ask of servers this process did not open at start (restart to add them)."""
        problems = []
        for room in inputs.livekit:
            server = server_of(room)
            if server != DEFAULT_SERVER and server not in self.backends.named:
                problems.append(f"{room.source}: spec.serverRef: server {server!r} was not opened when "
                                "roomctl serve started (servers are read at start: restart to add one)")
        if inputs.plugnmeet and self.backends.plugnmeet is None:
            problems.append(f"{inputs.plugnmeet[0].source}: PlugNmeetRoom documents need a plugNmeet server, "
                            "which roomctl serve did not open at start (restart to add one)")
        return problems

    def _rejected(self, problems: Sequence[str]) -> bool:
        text = "\n".join(f"error: {problem}" for problem in problems)
        if text != self._last_error:
            kept = "; the last good manifests stay in force" if self.inputs is not None else ""
            self.report(f"{text}\n{len(problems)} error(s) in the manifests{kept}")
            self._last_error = text
        self.metrics.reloads.labels("error").inc()
        self.metrics.manifests_valid.set(0)
        return False

    def edited(self) -> bool:
        return _fingerprint(self.paths) != self._seen

    # ---- runs ---------------------------------------------------------------------------------
    def _count(self, results: Results, trigger: str, why: str) -> None:
        for result in results.results:
            self.metrics.actions.labels(str(result.action.kind), "ok" if result.ok else "failed", trigger).inc()
            _audit(result, why)

    def _drift(self, rooms: Sequence[RoomPlan]) -> None:
        for room in rooms:
            self.metrics.drift.labels(room.name).set(len(room.drifts))

    async def reconcile_all(self, trigger: str) -> Results | None:
        """The safety net: everything the manifests declare, like `apply`. None: it could not run."""
        if self.inputs is None:
            return None
        inputs = self.inputs
        async with self.gate.exclusive():
            started = time.monotonic()
            try:
                combined = await make_combined_plan(self.backends, inputs, self.options)
                results = await execute_combined(combined, self.backends, concurrency=self.concurrency)
            except (BackendError, PlanRefused) as exc:
                self.metrics.reconcile_failures.labels(trigger).inc()
                log.warning("%s run failed: %s", trigger, exc)
                return None
            finally:
                self.metrics.reconcile.labels(trigger).observe(time.monotonic() - started)
        self.metrics.drift.clear()
        self._drift(combined.merged.rooms)
        self._count(results, trigger, f"{trigger} run")
        self.full_runs += 1
        self.ready = True
        return results

    async def react(self, work: RoomWork) -> None:
        """One room's coalesced webhook events: observe that room, plan it, execute (runs under the gate)."""
        inputs = self.inputs
        webhook = self.metrics.webhook
        try:
            server = self.servers.get(work.api_key)
            if inputs is None or server is None:
                webhook.runs.labels("no_action").inc()
                return
            # Only the rooms declared on the server that sent it (RoomPolicies govern the default server).
            scoped = Inputs([d for d in inputs.livekit if server_of(d) == server], [],
                            inputs.policies if server == DEFAULT_SERVER else [])
            backend = self.backends.for_server(server)
            room_plan = await plan_one_room(backend, scoped, work.room)
            if room_plan is None or not room_plan.actions:
                webhook.runs.labels("no_action").inc()  # counted, never logged at INFO
                log.debug("webhook %s for %r: nothing to do", dict(work.events), work.room)
                if room_plan is not None:
                    self._drift([room_plan])
                return
            results = await execute(Plan((room_plan,)), backend, concurrency=self.concurrency)
            self._drift([room_plan])
            self._count(results, "webhook", "webhook " + ", ".join(
                event + (f" x{count}" if count > 1 else "") for event, count in sorted(work.events.items())))
            webhook.runs.labels("acted" if results.ok else "failed").inc()
        except BackendError as exc:
            webhook.runs.labels("failed").inc()
            log.warning("webhook run for %r failed: %s (the next full run covers it)", work.room, exc)
        finally:
            done = time.monotonic()
            for received in work.received:
                webhook.latency.observe(done - received)

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Full run now, then on every edit and every interval, until `stop`; a run in progress finishes."""
        await self.reconcile_all("start")
        next_full = time.monotonic() + interval
        while not stop.is_set():
            timeout = max(0.0, min(WATCH_SECONDS, next_full - time.monotonic()))
            try:
                await asyncio.wait_for(stop.wait(), timeout)
                break
            except TimeoutError:
                pass
            if self.edited() and self.load():
                await self.reconcile_all("reload")
                next_full = time.monotonic() + interval
            elif time.monotonic() >= next_full:
                await self.reconcile_all("interval")
                next_full = time.monotonic() + interval
