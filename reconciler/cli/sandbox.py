"""`roomctl sandbox serve`: the sandbox on a real socket."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..sandbox.defaults import DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_PNM_KEY, DEFAULT_PNM_SECRET
from .common import UsageError, bind_listen, print_error, seconds_or_zero

if TYPE_CHECKING:
    from ..sandbox import Sandbox


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    sandbox = sub.add_parser("sandbox", help="the in-memory LiveKit + plugNmeet server", parents=[common])
    actions = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="SUBCOMMAND")
    serve = actions.add_parser("serve", help="serve the sandbox on a socket", parents=[common])
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=port_number, default=7880)
    serve.add_argument("--state", type=Path, help="persist state to this JSON file (atomic writes)")
    serve.add_argument("--api-key", default=DEFAULT_API_KEY, help="LiveKit API key (default: devkey)")
    serve.add_argument(
        "--api-secret", default=None, help="LiveKit API secret (default: the dev secret); prefer the env ROOMCTL_SANDBOX_API_SECRET"
    )
    serve.add_argument("--pnm-api-key", default=DEFAULT_PNM_KEY)
    serve.add_argument("--pnm-api-secret", default=None,
                       help="plugNmeet API secret (default: the dev secret); prefer the env ROOMCTL_SANDBOX_PNM_API_SECRET")
    serve.add_argument("--routed-delay", type=seconds_or_zero, default=0.0,
                       help="seconds a routed call on a missing room waits before 503 (real server: ~15)")
    serve.add_argument("--latency-ms", metavar="N[:JITTER]", help="added latency per request")
    serve.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 503")
    serve.add_argument("--throttle-rate", type=float, default=0.0, help="share answered 429 + Retry-After")
    serve.add_argument("--reset-rate", type=float, default=0.0, help="share of connections dropped")
    serve.add_argument("--hang-rate", type=float, default=0.0, help="share of requests never answered")
    serve.add_argument("--lose-rate", type=float, default=0.0,
                       help="share of requests carried out whose answer is then dropped (a lost response)")
    serve.add_argument("--rate-limit", metavar="N/min", help="429 resource_exhausted beyond N requests a minute")
    serve.add_argument("--webhook-url", metavar="URL",
                       help="POST LiveKit webhooks here, signed like the real server (room_started/finished, "
                            "participant_joined/left, track_published)")
    serve.add_argument("--webhook-api-key", metavar="KEY", help="the API key that signs webhooks (default: --api-key)")
    serve.set_defaults(run=run_serve)


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range (0-65535)")
    return value


def build_sandbox(args: argparse.Namespace) -> Sandbox:
    import os

    from ..sandbox import Sandbox, SandboxConfig
    from ..sandbox.faults import Fault, parse_latency, parse_rate_limit

    secret = args.api_secret or os.environ.get("ROOMCTL_SANDBOX_API_SECRET") or DEFAULT_API_SECRET
    pnm_secret = args.pnm_api_secret or os.environ.get("ROOMCTL_SANDBOX_PNM_API_SECRET") or DEFAULT_PNM_SECRET
    sandbox = Sandbox(
        SandboxConfig(
            api_keys={args.api_key: secret},
            pnm_api_key=args.pnm_api_key,
            pnm_api_secret=pnm_secret,
            state_file=args.state,
            webhook_url=args.webhook_url,
            webhook_api_key=args.webhook_api_key,
        )
    )
    sandbox.livekit.options.routed_delay = args.routed_delay
    try:
        latency, jitter = parse_latency(args.latency_ms) if args.latency_ms else (0.0, 0.0)
    except ValueError:
        raise UsageError(f"--latency-ms {args.latency_ms!r}: use N or N:JITTER in milliseconds (e.g. 50:10)") from None
    for name in RATES:
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} {value:g}: give a share between 0 and 1")
    fault = Fault.from_dict({"latency_ms": latency, "jitter_ms": jitter, **{name: getattr(args, name) for name in RATES}})
    if fault != Fault():
        sandbox.faults.per_method["*"] = fault
    if args.rate_limit:
        try:
            sandbox.faults.rate_limit_per_min = parse_rate_limit(args.rate_limit)
        except ValueError:
            raise UsageError(f"--rate-limit {args.rate_limit!r}: use N/min (e.g. 600/min)") from None
    return sandbox


RATES = ("error_rate", "throttle_rate", "reset_rate", "hang_rate", "lose_rate")


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..sandbox import SandboxStateError

    try:
        sandbox = build_sandbox(args)
        listening = bind_listen(args.host, args.port, "--port")  # before "serving on": a port in use is one line
    except (ValueError, SandboxStateError, UsageError) as exc:
        print_error(exc)
        return 1
    level = "info" if args.verbose else "warning"
    # No proxy-header middleware (nothing sits in front of a test server) and no Server header (Go's
    # net/http, which livekit-server uses, sends none): less work per request.
    config = uvicorn.Config(sandbox, host=args.host, port=args.port, log_level=level, lifespan="on",
                            access_log=args.verbose > 1, proxy_headers=False, server_header=False)
    server = uvicorn.Server(config)
    if not args.quiet:
        print(
            f"roomctl sandbox: LiveKit and plugNmeet on http://{args.host}:{args.port} "
            f"(LiveKit key {args.api_key}, plugNmeet key {args.pnm_api_key}); not a real server",
            file=sys.stderr,
            flush=True,
        )
    from .entry import long_running

    long_running()  # a server: CPython's own garbage collection (cli/entry.py)
    with listening:
        server.run(sockets=[listening])
    return 0
