"""The HTTP layer under every real-server client: aiohttp's connection pool, with httpx's API where
a client wants it (plugNmeet, webhooks) and a leaner one for the Twirp client (`HttpClient`).

Why (bench/RESULTS.md, "Profile"): httpx's default transport (httpcore) cost 1.1-3.4 ms of CPU per
request on the benchmark machine, mostly pool bookkeeping (`_assign_requests_to_connections` polls
every connection's socket on each request) and a failed `import sniffio` per lock. The
`httpx-aiohttp` package's transport brings that to ~0.55 ms; this one, which reads the whole
(small, JSON) Twirp body at once instead of streaming it through an async generator, to ~0.27 ms,
next to plain aiohttp's ~0.14 ms. `HttpClient` then hands aiohttp plain (url, headers, body) and
reads a `Reply`: no httpx Request/Response (URL parsing, header normalisation, stream wrappers),
~0.23 -> ~0.15 ms (bench/RESULTS.md). Any httpx transport still plugs in (the embedded sandbox's).

Errors keep their phase: a failure while connecting (refused, DNS, TLS handshake, connect timeout)
is a ConnectError/ConnectTimeout — nothing reached the server; one after the request went out
(reset, disconnect, read timeout) is a read/protocol error — the server may have acted.
(httpx-aiohttp maps every aiohttp connection error to `ConnectTimeout`, which would make a reset
look "never sent".) They are this module's TransportError classes, named as httpx's (the failure
lines in failures.py read the names); as an httpx transport (`http_transport`) they are httpx's own.
The aiohttp exception stays the `__cause__`, so the OS error underneath can still be inspected.
httpx itself is not imported on the Twirp client's path over aiohttp (~20 ms of start-up).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from .limiter import REFUSED, AdaptiveLimiter, retry_after_seconds

if TYPE_CHECKING:  # httpx loads only where an httpx transport or client is used (~20 ms of a run's start-up)
    import httpx

KEEPALIVE_SECONDS = 30.0
USER_AGENT = "roomctl"
_REQUEST_LOG = logging.getLogger("httpx")


class TransportError(Exception):
    """No HTTP answer. Subclasses carry httpx's names (failures.transport_failure reads them)."""


class ConnectError(TransportError):
    """Refused, DNS, TLS handshake: nothing was sent."""


class ConnectTimeout(TransportError):
    """No connection in time: nothing was sent."""


class ReadTimeout(TransportError):
    """The request went out; no answer in time."""


class RemoteProtocolError(TransportError):
    """The server closed or garbled the answer."""


class ReadError(TransportError):
    """Reset or cut short after the request went out."""


class UnsupportedProtocol(TransportError):
    """Not an http(s) URL aiohttp can use."""


class InvalidURL(Exception):
    """A URL that does not parse (httpx.InvalidURL from an httpx transport)."""


def mapped_error(exc: BaseException) -> TransportError:
    """The transport error for an aiohttp/OS one, most specific first."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake: nothing was sent
        return ConnectError(text)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeout(text)
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return ReadTimeout(text)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return RemoteProtocolError(text)
    if isinstance(exc, aiohttp.InvalidURL):
        return UnsupportedProtocol(text)
    return ReadError(text)  # reset or cut short after the request went out


def env_proxy(url: str) -> str | None:
    """The proxy HTTPS_PROXY/HTTP_PROXY (and NO_PROXY) give for `url`, resolved once, as httpx
    would (aiohttp's own trust_env looks it up in a thread on every request)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # public, not in typeshed
    if not proxy or bypass(parts.hostname or "", proxies):
        return None
    return proxy


class Reply:
    """An HTTP answer read whole: what the Twirp client reads of it, under httpx.Response's names.
    `headers` look up case-insensitively (aiohttp's or httpx's own)."""

    __slots__ = ("content", "headers", "http_version", "status_code", "url")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes, url: str,
                 http_version: str = "HTTP/1.1") -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.url = url
        self.http_version = http_version

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def reason_phrase(self) -> str:
        try:
            return HTTPStatus(self.status_code).phrase
        except ValueError:
            return ""


# POST url, headers, body -> the whole answer (HttpClient's view of a transport).
Send = Callable[[str, dict[str, str], bytes], Awaitable[Reply]]


class AiohttpPool:
    """One aiohttp session (created on first use, inside the running loop). `sender()` posts plain
    (url, headers, body) and gives a Reply, with no httpx Request or Response built: those and their
    URL parsing were a third of the Twirp client's CPU a request (bench/RESULTS.md). As an httpx
    transport (plugNmeet, webhooks: httpx.AsyncClient) see `http_transport`."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True, max_connections: int = 32,
                 proxy: str | None = None) -> None:
        self.ssl: ssl.SSLContext | bool = verify  # True: aiohttp's own verifying context, built once at import
        self.max_connections = max_connections
        self.proxy = proxy
        self.session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def client_timeout(self, connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
        key = (connect, read, pool)
        timeout = self._timeouts.get(key)
        if timeout is None:
            # connect covers waiting for a pooled connection too (httpx's "pool" timeout).
            timeout = aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)
            self._timeouts[key] = timeout
        return timeout

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=self.ssl,
                                             keepalive_timeout=KEEPALIVE_SECONDS)
            # No cookies (LiveKit sets none) and no default headers: callers send their own.
            self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                                 skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"))
        return self.session

    async def request(self, method: str, url: str, headers: Mapping[str, str] | list[tuple[str, str]],
                      content: bytes | None, timeout: aiohttp.ClientTimeout) -> tuple[aiohttp.ClientResponse, bytes]:
        """The response (released) and its whole body; a TransportError (aiohttp's as its cause)."""
        try:
            async with self._session().request(method, url, data=content, headers=headers, allow_redirects=False,
                                               auto_decompress=False, timeout=timeout,
                                               proxy=self.proxy) as response:
                return response, await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise mapped_error(exc) from exc

    def sender(self, connect: float | None, read: float | None, pool: float | None) -> Send:
        """POST with these timeouts: (url, headers, body) -> Reply."""
        bound = self.client_timeout(connect, read, pool)

        async def send(url: str, headers: dict[str, str], content: bytes) -> Reply:
            response, body = await self.request("POST", url, headers, content, bound)
            return Reply(response.status, response.headers, body, url)

        return send

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def http_pool(url: str, *, max_connections: int, verify: ssl.SSLContext | bool = True) -> AiohttpPool:
    """The pool for a real server (the one place it is built: TLS settings, pool size, proxy)."""
    return AiohttpPool(verify=verify, max_connections=max_connections, proxy=env_proxy(url))


def http_transport(url: str, *, max_connections: int, verify: ssl.SSLContext | bool = True) -> httpx.AsyncBaseTransport:
    """The same pool as an httpx transport, for httpx.AsyncClient users (plugNmeet, webhooks)."""
    from .aiohttp_httpx import AiohttpTransport

    return AiohttpTransport(verify=verify, max_connections=max_connections, proxy=env_proxy(url))


def httpx_sender(transport: httpx.AsyncBaseTransport, connect: float | None, read: float | None,
                 pool: float | None) -> Send:
    """Any other httpx transport (the embedded sandbox's, a test's) behind the same (url, headers,
    body), its errors as this module's (the httpx one as the cause)."""
    import httpx

    extensions = {"timeout": {"connect": connect, "read": read, "write": read, "pool": pool}}
    ours = {cls.__name__: cls for cls in (ConnectError, ConnectTimeout, ReadTimeout, RemoteProtocolError, ReadError,
                                          UnsupportedProtocol)}

    async def send(url: str, headers: dict[str, str], content: bytes) -> Reply:
        try:
            request = httpx.Request("POST", url, content=content, headers=headers, extensions=extensions)
            response = await transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise ours.get(type(exc).__name__, TransportError)(str(exc) or type(exc).__name__) from exc
        except httpx.InvalidURL as exc:
            raise InvalidURL(str(exc)) from exc
        return Reply(response.status_code, response.headers, response.content, url, response.http_version)

    return send


class HttpClient:
    """What the Twirp client needs of an HTTP client: `post` a body, get the whole answer, through
    an AdaptiveLimiter (backends/limiter.py) when given one, each attempt bounded once admitted.
    Neither httpx.AsyncClient (URL merging, cookie jar, auth and redirect flows, event hooks: ~0.1 ms
    of CPU a request) nor, over aiohttp, httpx Requests and Responses at all. Any httpx transport
    still plugs in (the embedded sandbox's included). Timeouts in seconds (None: none): connect,
    read (each read of the answer), pool (waiting for a pooled connection, and connecting)."""

    def __init__(self, transport: AiohttpPool | httpx.AsyncBaseTransport, *, connect: float | None = 5.0,
                 read: float | None = None, pool: float | None = None, limiter: AdaptiveLimiter | None = None) -> None:
        self.transport = transport
        self.limiter = limiter
        self._send = (transport.sender(connect, read, pool) if isinstance(transport, AiohttpPool)
                      else httpx_sender(transport, connect, read, pool))

    async def post(self, url: str, *, content: bytes, headers: dict[str, str], bound: float | None = None,
                   deadline: float | None = None) -> Reply:
        """`headers` are sent as given. Once admitted by the limiter the attempt may take `bound`
        seconds; nothing (the wait for admission included) runs past `deadline`, a time.monotonic()
        instant. Expiry raises TimeoutError; the time spent waiting for admission is not counted in
        `bound` (a Retry-After pause or a paced turn is not the server being slow)."""
        limiter = self.limiter
        # One timeout scope per attempt: the deadline (if any) while waiting for admission, then
        # the attempt's own bound, never past the deadline.
        async with asyncio.timeout(None if deadline is None else deadline - time.monotonic()) as scope:
            started = 0.0 if limiter is None else await limiter.acquire()
            try:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    bound = left if bound is None else min(bound, left)
                if bound is not None:
                    scope.reschedule(asyncio.get_running_loop().time() + max(0.0, bound))
                reply = await self._send(url, headers, content)
            except BaseException:
                if limiter is not None:
                    limiter.release(started, None)
                raise
        if limiter is not None:
            status = reply.status_code
            limiter.release(started, status, retry_after_seconds(reply.headers) if status in REFUSED else None)
        if _REQUEST_LOG.isEnabledFor(logging.INFO):  # -v: the request log httpx's client would write
            _REQUEST_LOG.info('HTTP Request: POST %s "%s %d %s"', url, reply.http_version, reply.status_code,
                              reply.reason_phrase)
        return reply

    async def aclose(self) -> None:
        if self.limiter is not None:
            self.limiter.log_stats()
        await self.transport.aclose()
