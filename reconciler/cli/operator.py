"""`roomctl operator`: the Kubernetes operator (kopf) reconciling Room and PlugNmeetRoom objects."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from .common import UsageError, print_error
from .serve import parse_listen


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("operator", help="run the Kubernetes operator for Room and PlugNmeetRoom objects", parents=[common])
    parser.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                        help="watch this namespace (repeatable; globs allowed); default: all namespaces")
    parser.add_argument("--sync-interval", type=float, default=60.0, metavar="SECONDS",
                        help="drift sweep interval: one ListRooms per server per interval (default 60)")
    parser.add_argument("--status-refresh", type=float, default=300.0, metavar="SECONDS",
                        help="rewrite an unchanged status (lastSyncTime) at most this often (default 300)")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", metavar="URL",
                        help="liveness endpoint (default http://0.0.0.0:8080/healthz; '' disables)")
    parser.add_argument("--metrics-port", type=int, default=9090, help="Prometheus /metrics port (0 disables)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per LiveKit request (default 10)")
    parser.add_argument("--webhook-listen", default="", metavar="HOST:PORT",
                        help="serve LiveKit webhooks at http://HOST:PORT/webhook (default: off)")
    parser.add_argument("--webhook-queue-size", type=int, default=1000, metavar="N",
                        help="rooms waiting for a webhook reaction before /webhook answers 503 (default 1000)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..operator.handlers import OperatorConfig, kube_config_problem
    from ..operator.handlers import run as run_operator
    from ..operator.servers import PLUGNMEET, credentials_from_env

    try:
        if args.sync_interval < 1:
            raise UsageError("--sync-interval must be at least 1 second")
        webhook_listen = parse_listen(args.webhook_listen, "--webhook-listen") if args.webhook_listen else None
        if args.webhook_queue_size < 1:
            raise UsageError("--webhook-queue-size must be at least 1")
        try:
            default = credentials_from_env()
        except OSError as exc:
            raise UsageError(f"cannot read LIVEKIT_API_SECRET_FILE: {exc.strerror}") from None
        try:
            plugnmeet = credentials_from_env(kind=PLUGNMEET)
        except OSError as exc:
            raise UsageError(f"cannot read PLUGNMEET_API_SECRET_FILE: {exc.strerror}") from None
        # Fail fast, in one line: kopf itself would retry its login forever, a traceback each time.
        problem = kube_config_problem()
        if problem:
            raise UsageError(problem)
    except UsageError as exc:
        print_error(exc)
        return 1
    log = logging.getLogger("roomctl.operator")
    if default is None:
        log.warning("no LIVEKIT_URL: only Rooms with spec.serverRef.secretName can be reconciled")
    if plugnmeet is None:
        log.info("no PLUGNMEET_URL: only PlugNmeetRooms with spec.serverRef.secretName can be reconciled")
    config = OperatorConfig(
        namespaces=tuple(args.namespace),
        sync_interval=args.sync_interval,
        status_refresh=args.status_refresh,
        liveness_endpoint=args.liveness or None,
        metrics_port=args.metrics_port or None,
        default_credentials=default,
        plugnmeet_credentials=plugnmeet,
        request_timeout=args.timeout,
        webhook_listen=webhook_listen,
        webhook_queue_size=args.webhook_queue_size,
    )
    from ..operator.kubelog import readable_kopf_retries
    from .entry import long_running

    long_running()  # a controller runs for weeks: CPython's own garbage collection (cli/entry.py)

    with contextlib.suppress(KeyboardInterrupt), readable_kopf_retries():
        asyncio.run(run_operator(config))
    return 0
