"""What went wrong talking to a server, as one distinct line each: refused, DNS, TLS certificate, TLS
spoken to a plain-HTTP port, timeout, dropped connection, wrong path, a reply that is not JSON.

Mapped by walking the exception's cause chain for the OS/ssl error underneath, so the mapping does
not depend on which HTTP transport raised it (httpx's own, or one over aiohttp). Every message names
the server with any userinfo removed: a URL's user:password is never printed."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import BackendError, InvalidServer, TransportFailure

# ssl reasons meaning "the other end does not speak TLS" (an https:// URL on a plain-HTTP port).
NOT_TLS_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
                   "UNEXPECTED_RECORD", "wrong version number", "record layer failure")
# Exception class names of the connect phase (httpx, httpcore, aiohttp): nothing reached the server.
CONNECT_PHASE = ("ConnectError", "ConnectTimeout", "ClientConnectorError", "ClientConnectorCertificateError",
                 "ClientConnectorSSLError", "ClientSSLError", "ConnectionTimeoutError")


@dataclass(frozen=True)
class ServerURL:
    """A server URL split into what requests use (no userinfo) and what messages print (the same)."""

    base: str  # scheme://host[:port][/path], userinfo removed, ws(s) mapped to http(s), no trailing /
    host: str

    @property
    def display(self) -> str:
        return self.base


def redact(url: str) -> str:
    """The URL with any user:password@ removed (for messages about a URL that did not parse)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.rsplit("@", 1)[-1]
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rsplit('@', 1)[-1]}{slash}{path}"


def parse_server_url(url: str) -> ServerURL:
    """Validate before any request: scheme, host, port range. Raises InvalidServer (one line)."""
    shown = redact(url.strip())
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        detail = "port out of range (1-65535)" if "out of range" in str(exc) else "it does not parse"
        raise InvalidServer(f"invalid server URL {shown}: {detail}") from None
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("http", "https"):
        raise InvalidServer(f"invalid server URL {shown}: the scheme must be http, https, ws or wss")
    host = parts.hostname or ""
    if not host:
        raise InvalidServer(f"invalid server URL {shown}: no host")
    if port == 0:
        raise InvalidServer(f"invalid server URL {shown}: port out of range (1-65535)")
    hostport = f"[{host}]" if ":" in host else host
    netloc = f"{hostport}:{port}" if port is not None else hostport
    base = urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))
    return ServerURL(base, host)


def tls_verify(ca_file: Path | None = None, insecure: bool = False) -> ssl.SSLContext | bool:
    """Verification on by default; --ca-file adds a trusted CA; --insecure-skip-tls-verify turns it off.

    True by default: the transport then uses aiohttp's verifying context (ssl.create_default_context(),
    the system's CAs), which aiohttp builds once at import. Building another one here cost ~15 ms of
    every run's start-up, on http:// servers too."""
    if ca_file is None and not insecure:
        return True
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or "not a PEM certificate file"
            raise InvalidServer(f"cannot use --ca-file {ca_file}: {reason}") from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend([current.__cause__, current.__context__])
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for attribute in ("os_error", "certificate_error"):  # aiohttp keeps the cause here too
            found = getattr(current, attribute, None)
            if isinstance(found, BaseException):
                stack.append(found)


def transport_failure(exc: BaseException, server: str, timeout: float) -> TransportFailure:
    """One distinct line per kind of failure. `sent` is False only when the request surely never
    reached the server (so even a non-idempotent call may be retried)."""
    chain = list(_chain(exc))
    connect_phase = any(type(e).__name__ in CONNECT_PHASE for e in chain)
    # The innermost errors first: aiohttp's wrappers subclass the ssl errors without their fields.
    for e in sorted(chain, key=lambda x: type(x).__module__.startswith(("aiohttp", "httpx", "httpcore"))):
        if isinstance(e, ssl.SSLCertVerificationError):
            detail = getattr(e, "verify_message", "") or getattr(e, "reason", "") or "verification failed"
            return TransportFailure(f"TLS certificate of {server} not trusted: {detail} (trust its CA with "
                                    "--ca-file, or skip verification with --insecure-skip-tls-verify)", sent=False,
                                    retryable=False)
        if isinstance(e, ssl.SSLError):
            reason = str(getattr(e, "reason", "") or e)
            if any(marker in reason or marker in str(e) for marker in NOT_TLS_REASONS):
                return TransportFailure(f"TLS handshake with {server} failed: the port does not speak TLS "
                                        "(is the server plain http://?)", sent=False, retryable=False)
            return TransportFailure(f"TLS handshake with {server} failed: {reason}", sent=False)
        if isinstance(e, socket.gaierror):
            # "No such name" will not change in a second; a resolver that could not answer (EAI_AGAIN) may.
            return TransportFailure(f"cannot resolve the host of {server} (DNS): {e.strerror or e}", sent=False,
                                    retryable=e.errno == socket.EAI_AGAIN)
        if isinstance(e, ConnectionRefusedError):
            return TransportFailure(f"connection refused by {server}: nothing listens on that port", sent=False)
    names = {type(e).__name__ for e in chain}
    if names & {"ConnectTimeout", "ConnectionTimeoutError"}:
        return TransportFailure(f"timed out connecting to {server}", sent=False)
    if any(isinstance(e, TimeoutError) for e in chain) or any("Timeout" in n for n in names):
        return TransportFailure(f"no complete answer from {server} within {timeout:.3g}s (timed out)", sent=True)
    if connect_phase:
        os_error = next((e for e in chain if isinstance(e, OSError) and e.strerror), None)
        detail = str(os_error.strerror) if os_error is not None else type(exc).__name__
        return TransportFailure(f"cannot connect to {server}: {detail}", sent=False)
    if names & {"RemoteProtocolError", "ServerDisconnectedError", "ClientPayloadError"} or any(
            isinstance(e, ConnectionError) for e in chain) or names & {"ReadError", "WriteError"}:
        return TransportFailure(f"connection to {server} dropped before a complete answer", sent=True)
    return TransportFailure(f"no answer from {server}: {type(exc).__name__}", sent=True)


def not_twirp(server: str, path: str, status: int, content_type: str, product: str = "LiveKit") -> BackendError:
    """A reply that is not a Twirp answer: a web page, a proxy's 404, a wrong path in the URL."""
    shown = content_type.split(";")[0].strip() or "no content type"
    if status == 404:
        return BackendError(f"{server} answered HTTP 404 ({shown}) for {path}: not a LiveKit API endpoint; "
                            "check the URL (LiveKit serves /twirp/ at the server's root, not under a path)",
                            status=404)
    return BackendError(f"{server} answered HTTP {status} with {shown}, not JSON: is this a {product} server? "
                        "(check the URL)", status=status)
