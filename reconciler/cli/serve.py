"""`roomctl serve`: enforce the manifests continuously, next to the server (docker compose, a VM).
The loop is `reconciler/serve.py`; this module parses flags, opens the backends, serves HTTP and
turns SIGTERM/SIGINT into a graceful stop (in-flight actions finish, then exit 0)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import re
import signal
import socket
import sys
from collections.abc import Iterator

from ..backends.limiter import DEFAULT_CONCURRENCY
from ..manifests import Inputs, load_inputs
from .common import (
    UsageError,
    add_server_options,
    bind_listen,
    first_pnm_source,
    open_backends,
    referenced_servers,
    run_command,
)

KEEP_ALIVE_SECONDS = 95
DRAIN_SECONDS = 10.0  # on SIGTERM, how long queued webhook reactions may still run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("serve", parents=[common],
                            help="enforce the manifests continuously: webhooks plus a periodic full run")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="manifest files or folders (re-read on change)")
    parser.add_argument("--listen", default="0.0.0.0:8080", metavar="HOST:PORT",
                        help="where /webhook, /healthz, /readyz and /metrics are served (default 0.0.0.0:8080)")
    parser.add_argument("--interval", default="60s", metavar="DURATION",
                        help="full reconcile every DURATION, the safety net for lost webhooks: 30s, 5m, 1h "
                             "(default 60s)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"most actions in flight at once (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--queue-size", type=int, default=1000, metavar="N",
                        help="rooms waiting for a webhook reaction before /webhook answers 503 (default 1000)")
    add_server_options(parser, deadline=False)  # a long-running process has no run deadline
    parser.set_defaults(run=run)


def parse_duration(text: str, flag: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not match:
        raise UsageError(f"{flag} {text!r}: use a number with ms, s, m or h (e.g. 60s)")
    seconds = float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    if seconds < 0.1:
        raise UsageError(f"{flag} {text!r}: at least 100ms")
    return seconds


def parse_listen(text: str, flag: str = "--listen") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"{flag} {text!r}: use HOST:PORT (e.g. 0.0.0.0:8080)")
    if not 0 <= int(port) <= 65535:
        raise UsageError(f"{flag} {text!r}: port {int(port)} is out of range (0-65535)")
    return host.strip("[]") or "0.0.0.0", int(port)


@contextlib.contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _serve(args: argparse.Namespace) -> int:
    if "-" in args.paths:
        raise UsageError("serve re-reads its manifests: give files or folders, not -")
    interval = parse_duration(args.interval, "--interval")
    host, port = parse_listen(args.listen)
    if args.concurrency < 1 or args.queue_size < 1:
        raise UsageError("--concurrency and --queue-size must be at least 1")
    inputs = load_inputs(args.paths)  # bad input at start: the usual one-line errors, exit 1, no request
    if not args.quiet:
        # An unattended process: its audit trail (one line per action) is on by default, without -v's
        # request log. Rejected webhooks are WARNINGs (rate-limited) in `roomctl.webhook`.
        logging.getLogger("roomctl.serve").setLevel(min(logging.INFO, logging.getLogger().getEffectiveLevel()))
    # A long-running process has no run deadline (each request still has --timeout).
    args.deadline = math.inf

    listening = bind_listen(host, port, "--listen")  # before any request: a port in use is one line, exit 1
    with contextlib.closing(listening):
        return await _enforce(args, inputs, interval, listening)


async def _enforce(args: argparse.Namespace, inputs: Inputs, interval: float, listening: socket.socket) -> int:
    import uvicorn

    from ..serve import Enforcer
    from ..webhook.app import QuietServer, WebhookApp
    from .entry import long_running

    def report(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    async with open_backends(args, concurrency=args.concurrency, plugnmeet=bool(inputs.plugnmeet),
                             servers=referenced_servers(inputs),
                             pnm_source=first_pnm_source(inputs)) as backends:
        enforcer = Enforcer(args.paths, backends, report=report, concurrency=args.concurrency,
                            queue_capacity=args.queue_size)
        enforcer.inputs = inputs
        enforcer.metrics.manifests_valid.set(1)
        long_running()  # from here on a server: CPython's own garbage collection (cli/entry.py)
        app = WebhookApp(enforcer.receiver, ready=lambda: enforcer.ready, registry=enforcer.registry)
        # Keep-alive longer than uvicorn's 5 s: LiveKit's Go client reuses connections for up to 90 s,
        # and a connection closed under it costs a retry (1 s) of that webhook.
        server = QuietServer(uvicorn.Config(app, log_level="warning", lifespan="off",
                                            access_log=False, timeout_keep_alive=KEEP_ALIVE_SECONDS))
        stop = asyncio.Event()
        with _stop_on_signals(asyncio.get_running_loop(), stop):
            enforcer.queue.start()
            serving = asyncio.create_task(server.serve(sockets=[listening]), name="roomctl serve http")
            while not server.started and not serving.done():
                await asyncio.sleep(0.01)
            if serving.done():
                raise UsageError(f"cannot listen on {args.listen}")
            if not args.quiet:
                report(f"roomctl serve: {len(inputs.livekit)} room(s), {len(inputs.policies)} policy(ies); "
                       f"webhooks at http://{args.listen}/webhook; full run every {args.interval}")
            running = asyncio.create_task(enforcer.run(interval, stop), name="roomctl serve loop")
            await asyncio.wait([running, serving], return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            server.should_exit = True  # stop taking webhooks first; LiveKit retries, the next full run heals
            await serving
            await running  # a full run in progress finishes
            await enforcer.queue.stop(DRAIN_SECONDS)  # so do webhook reactions already queued
            running.result()
    if not args.quiet:
        report("roomctl serve: stopped")
    return 0


def run(args: argparse.Namespace) -> int:
    return run_command(_serve(args), bulk=True)
