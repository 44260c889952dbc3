"""What the commands share: server options, the embedded sandbox, loading manifests, logging."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import math
import os
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..backends.errors import BackendError, InvalidServer
from ..backends.failures import parse_server_url, tls_verify
from ..backends.limiter import DEFAULT_CONCURRENCY
from ..backends.livekit import LiveKitBackend
from ..backends.plugnmeet import PlugNmeetBackend
from ..engine import Backends
from ..manifests import Inputs, ManifestError, escape_control
from ..model import API_VERSION
from ..plan import PlanRefused
from ..sandbox.defaults import DEFAULT_API_KEY, DEFAULT_API_SECRET, DEFAULT_PNM_KEY, DEFAULT_PNM_SECRET, EMBEDDED_URL

if TYPE_CHECKING:
    from ..serversfile import NamedServer

EMBEDDED_STATE = Path(".roomctl") / "sandbox.json"
EMBEDDED_LOCK = Path(".roomctl") / "sandbox.lock"


T = TypeVar("T")


def run_on_uvloop(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop where it is installed (a dependency off Windows): the commands that
    send requests in bulk (apply, delete) and serve. uvloop's event loop and sockets take 5-12 % less
    CPU a request than asyncio's own (0.103 -> 0.098 ms a CreateRoom with no added latency, 0.13 ->
    0.12 ms at 20 ms, as measured once the rest of the request path was lean); its import ~3 ms."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop
    except ImportError:
        pass
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


class UsageError(Exception):
    """Bad flags or environment: reported as one line, exit 1, no request made."""


def run_command(main: Coroutine[Any, Any, int], *, bulk: bool = False) -> int:
    """Run a command's coroutine; the errors every command shares become `error:` lines and exit 1:
    bad manifests (each issue, then the count), bad flags, a refused plan, a server error named by
    method and room. `bulk`: the commands that send requests in bulk run on uvloop (run_on_uvloop)."""
    try:
        return run_on_uvloop(main) if bulk else asyncio.run(main)
    except ManifestError as exc:
        return report_manifest_error(exc)
    except BackendError as exc:
        print_error(exc.describe())
        return 1
    except (UsageError, PlanRefused) as exc:
        print_error(exc)
        return 1


def _duration(text: str, zero_ok: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds, {'0 or more' if zero_ok else 'above 0'}")
    return value


def seconds(text: str) -> float:
    """A duration flag: a finite number above 0 (`nan` or `inf` would never time out)."""
    return _duration(text, zero_ok=False)


def seconds_or_zero(text: str) -> float:
    return _duration(text, zero_ok=True)


def check_url(url: str, where: str) -> str:
    """A server URL that can be dialled: http(s) or ws(s), a host, a port in range. Caught here, as a
    usage error, so it never surfaces as an OverflowError deep in the transport. Named with any
    user:password removed (backends/failures.py, the same check the clients make)."""
    try:
        parse_server_url(url)
    except InvalidServer as exc:
        raise UsageError(f"{where}: {exc}") from None
    return url


def add_server_options(parser: argparse.ArgumentParser, deadline: bool = True) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--url", help="LiveKit URL (env LIVEKIT_URL); none: the embedded sandbox")
    group.add_argument("--api-key", help="API key (env LIVEKIT_API_KEY)")
    group.add_argument("--api-secret-file", type=Path,
                       help="file holding the API secret (else env LIVEKIT_API_SECRET; never a plain flag)")
    group.add_argument("--servers", metavar="FILE",
                       help="named servers for spec.serverRef.name (env ROOMCTL_SERVERS; default ./roomctl.servers.yaml)")
    group.add_argument("--timeout", type=seconds, default=10.0,
                       help="seconds one request may take in all, a slow body included (default 10)")
    if deadline:
        group.add_argument("--deadline", type=seconds, default=DEFAULT_DEADLINE,
                           help=f"seconds the whole run may take; what is unfinished then is reported as failed "
                                f"(default {DEFAULT_DEADLINE:g})")
    group.add_argument("--ca-file", type=Path, help="PEM file of a CA to trust for the server's TLS certificate")
    group.add_argument("--insecure-skip-tls-verify", action="store_true",
                       help="do not verify the server's TLS certificate (insecure: for test servers only)")


DEFAULT_DEADLINE = 900.0


def bind_listen(host: str, port: int, flag: str) -> socket.socket:
    """The listening socket, bound before anything says "serving": a port in use (or a host that is
    not local) is one `error:` line naming the address and the cause, exit 1, never a uvicorn traceback."""
    where = f"{flag} {host}:{port}" if ":" not in host else f"{flag} [{host}]:{port}"
    try:
        info = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"{where}: cannot resolve the host ({exc.strerror})") from None
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UsageError(f"{where}: {(exc.strerror or str(exc)).lower()}") from None
    sock.setblocking(False)
    return sock


def tls_settings(args: argparse.Namespace) -> ssl.SSLContext | bool:
    insecure = bool(getattr(args, "insecure_skip_tls_verify", False))
    if insecure:
        print("roomctl: warning: TLS certificate verification is OFF (--insecure-skip-tls-verify): anyone on the path "
              "can read and change this traffic", file=sys.stderr)
    return tls_verify(getattr(args, "ca_file", None), insecure)


@asynccontextmanager
async def embedded_lock(deadline: float, quiet: bool) -> AsyncIterator[None]:
    """One run at a time on the embedded sandbox: the lock is held from loading the state file to
    saving it, so two runs never lose each other's updates. A second run waits (until its deadline)."""
    folder = EMBEDDED_LOCK.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"cannot use the embedded sandbox: {folder} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(EMBEDDED_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot lock the embedded sandbox ({EMBEDDED_LOCK}): {exc.strerror or exc}") from None
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise UsageError(f"the embedded sandbox ({EMBEDDED_STATE}) is in use by another roomctl run; "
                                     "gave up at the --deadline") from None
                if not told and not quiet:
                    print(f"roomctl: waiting for another roomctl run to finish with the embedded sandbox "
                          f"({EMBEDDED_LOCK})", file=sys.stderr)
                    told = True
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING
    if getattr(args, "quiet", False):
        level = logging.ERROR
    elif args.verbose == 1:
        level = logging.INFO
    elif args.verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # httpx logs every request at INFO with the URL only; that is the "request log" of -v.
    logging.getLogger("httpx").setLevel(logging.INFO if args.verbose >= 1 else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def note_skipped(inputs: Inputs, args: argparse.Namespace) -> str:
    """Foreign documents (a Kustomization, a Secret...): one stderr line each at -v; the summary text."""
    if args.verbose:
        for doc in inputs.foreign:
            print(f"roomctl: {doc}", file=sys.stderr)
    if not inputs.foreign:
        return ""
    return f"{inputs.skipped} document(s) of other tools skipped (not apiVersion {API_VERSION}; -v lists them)."


def skipped_json(inputs: Inputs) -> list[dict[str, object]]:
    """`skipped_documents` of the JSON output: other tools' documents that were not read as rooms."""
    return [{"file": d.file, "line": d.line or None, "apiVersion": d.api_version or None, "kind": d.kind or None}
            for d in inputs.foreign]


def print_error(text: object) -> None:
    """One `error:` line on stderr, control characters escaped: a server's message, a path or a name
    holding a newline or an ANSI sequence can neither forge another line nor drive the terminal."""
    print(f"error: {escape_control(str(text))}", file=sys.stderr)


def report_manifest_error(exc: ManifestError) -> int:
    for issue in exc.issues:
        print_error(issue)
    print(f"{len(exc.issues)} error(s); nothing was sent to the server.", file=sys.stderr)
    return 1


@dataclass(frozen=True)
class ServerSettings:
    url: str | None
    api_key: str
    api_secret: str

    def __repr__(self) -> str:
        return f"ServerSettings(url={self.url!r}, api_key={self.api_key!r})"


def server_settings(args: argparse.Namespace) -> ServerSettings:
    url = args.url or os.environ.get("LIVEKIT_URL") or None
    if url is None:
        return ServerSettings(None, DEFAULT_API_KEY, DEFAULT_API_SECRET)
    check_url(url, "--url" if args.url else "LIVEKIT_URL")
    key = args.api_key or os.environ.get("LIVEKIT_API_KEY")
    if not key:
        raise UsageError("no API key: set LIVEKIT_API_KEY or pass --api-key")
    if args.api_secret_file is not None:
        try:
            secret = args.api_secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            # The path is not echoed: whatever was given to a secret flag stays out of logs.
            raise UsageError(f"cannot read the --api-secret-file: {exc.strerror}") from None
    else:
        secret = os.environ.get("LIVEKIT_API_SECRET", "")
    if not secret:
        raise UsageError("no API secret: set LIVEKIT_API_SECRET or pass --api-secret-file")
    return ServerSettings(url, key, secret)


def wants_plugnmeet(inputs: Inputs, prune: bool) -> bool:
    """Talk to plugNmeet when PlugNmeetRooms are declared, or to prune a configured plugNmeet."""
    return bool(inputs.plugnmeet) or (prune and bool(os.environ.get("PLUGNMEET_URL")))


def first_pnm_source(inputs: Inputs) -> str:
    """file:line of the first PlugNmeetRoom: named when a real LiveKit has no plugNmeet to go with it."""
    return inputs.plugnmeet[0].source if inputs.plugnmeet else ""


def pnm_settings() -> ServerSettings | None:
    url = os.environ.get("PLUGNMEET_URL") or None
    if url is None:
        return None
    check_url(url, "PLUGNMEET_URL")
    key = os.environ.get("PLUGNMEET_API_KEY", "")
    secret = os.environ.get("PLUGNMEET_API_SECRET", "")
    if not key or not secret:
        raise UsageError("PLUGNMEET_URL is set: PLUGNMEET_API_KEY and PLUGNMEET_API_SECRET are needed too")
    return ServerSettings(url, key, secret)


def referenced_servers(inputs: Inputs) -> dict[str, str]:
    """The servers-file names the (selected) rooms point at, each with the manifest position of the
    first room that names it. A ref the CLI cannot follow is an error naming the manifest, never a
    silent run against the default server."""
    names: dict[str, str] = {}
    for room in inputs.livekit:
        ref = room.spec.server_ref
        if ref is None:
            continue
        if ref.name is None:
            raise UsageError(f"{room.source}: spec.serverRef has only secretName {ref.secret_name!r} (the operator's); "
                             "the CLI needs spec.serverRef.name, a server of roomctl.servers.yaml")
        names.setdefault(ref.name, room.source)
    for pnm_room in inputs.plugnmeet:
        if pnm_room.spec.server_ref is not None:
            raise UsageError(f"{pnm_room.source}: spec.serverRef on a PlugNmeetRoom is not supported by the CLI "
                             "(it uses PLUGNMEET_URL); remove it or use the operator")
    return names


def resolve_servers(args: argparse.Namespace, names: Mapping[str, str]) -> list[NamedServer]:
    """Each named server from the servers file, with its key and secret from the environment. An
    error names the manifest (file:line) whose spec.serverRef.name asked for the server."""
    if not names:
        return []
    from ..serversfile import DEFAULT_FILE, ServersFileError, load_servers_file  # only a run that names servers

    first = min(names, key=lambda n: names[n])
    try:
        servers = load_servers_file(getattr(args, "servers", None))
    except ServersFileError as exc:
        raise UsageError(f"{names[first]}: spec.serverRef.name {first!r}: {exc}") from None
    if servers is None:
        raise UsageError(f"{names[first]}: spec.serverRef.name {first!r}: no servers file "
                         f"(./{DEFAULT_FILE}, --servers FILE or ROOMCTL_SERVERS)")
    resolved = []
    for name in sorted(names):
        try:
            resolved.append(servers.resolve(name))
        except ServersFileError as exc:
            raise UsageError(f"{names[name]}: spec.serverRef.name {name!r}: {exc}") from None
    return resolved


@asynccontextmanager
async def open_backends(args: argparse.Namespace, concurrency: int = DEFAULT_CONCURRENCY,
                        plugnmeet: bool = False, servers: Mapping[str, str] | None = None,
                        pnm_source: str = "") -> AsyncIterator[Backends]:
    """LiveKit (and plugNmeet when asked), each real when configured, else the embedded sandbox
    (one shared instance, saved once, under a file lock). A real LiveKit with an unconfigured
    plugNmeet is an error: silently using the sandbox for half of the rooms would mislead."""
    deadline = time.monotonic() + getattr(args, "deadline", DEFAULT_DEADLINE)
    settings = server_settings(args)
    named_servers = resolve_servers(args, servers or {})
    pnm = pnm_settings() if plugnmeet else None
    if plugnmeet and pnm is None and settings.url is not None:
        where = f"{pnm_source}: " if pnm_source else ""
        raise UsageError(f"{where}a PlugNmeetRoom needs a plugNmeet server when LIVEKIT_URL is set: set PLUGNMEET_URL, "
                         "PLUGNMEET_API_KEY and PLUGNMEET_API_SECRET")
    embedded = settings.url is None or (plugnmeet and pnm is None)
    async with AsyncExitStack() as stack:
        sandbox = None
        if embedded:
            from ..sandbox import (  # only when used: ~0.1 s of imports
                EmbeddedTransport,
                Sandbox,
                SandboxConfig,
                SandboxStateError,
            )

            await stack.enter_async_context(embedded_lock(deadline, args.quiet))
            # The embedded sandbox sends webhooks too, when asked (env: there are no sandbox flags here).
            try:
                sandbox = Sandbox(SandboxConfig(state_file=EMBEDDED_STATE,
                                                webhook_url=os.environ.get("ROOMCTL_SANDBOX_WEBHOOK_URL") or None))
            except SandboxStateError as exc:
                raise UsageError(str(exc)) from None
            if not args.quiet:
                print(f"roomctl: no LIVEKIT_URL set; using the embedded sandbox ({EMBEDDED_STATE})", file=sys.stderr)
        real = settings.url is not None or pnm is not None or bool(named_servers)
        verify = tls_settings(args) if real else None
        if settings.url is None:
            assert sandbox is not None
            livekit = LiveKitBackend(EMBEDDED_URL, settings.api_key, settings.api_secret,
                                     transport=EmbeddedTransport(sandbox), timeout=args.timeout,
                                     concurrency=concurrency, deadline=deadline)
        else:
            livekit = LiveKitBackend(settings.url, settings.api_key, settings.api_secret, timeout=args.timeout,
                                     concurrency=concurrency, deadline=deadline, verify=verify)
        stack.push_async_callback(livekit.aclose)
        pnm_backend = None
        if plugnmeet:
            if pnm is None:
                assert sandbox is not None
                pnm_backend = PlugNmeetBackend(EMBEDDED_URL, DEFAULT_PNM_KEY, DEFAULT_PNM_SECRET,
                                               transport=EmbeddedTransport(sandbox))
            else:
                assert pnm.url is not None
                pnm_backend = PlugNmeetBackend(pnm.url, pnm.api_key, pnm.api_secret, verify=verify)
            stack.push_async_callback(pnm_backend.aclose)
        named: dict[str, LiveKitBackend] = {}
        for server in named_servers:
            named[server.name] = LiveKitBackend(server.url, server.api_key, server.api_secret, timeout=args.timeout,
                                                concurrency=concurrency, deadline=deadline, verify=verify)
            stack.push_async_callback(named[server.name].aclose)
        try:
            yield Backends(livekit, pnm_backend, named)
        finally:
            if sandbox is not None:
                await sandbox.webhooks.flush()  # what this run caused is delivered before the process ends
                await sandbox.webhooks.aclose()
                if sandbox.dirty:
                    try:
                        sandbox.save()
                    except SandboxStateError as exc:
                        raise UsageError(str(exc)) from None


@asynccontextmanager
async def open_backend(args: argparse.Namespace, concurrency: int = DEFAULT_CONCURRENCY) -> AsyncIterator[LiveKitBackend]:
    async with open_backends(args, concurrency) as backends:
        yield backends.livekit
