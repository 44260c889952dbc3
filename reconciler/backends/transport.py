"""The HTTP transport under every real-server client: httpx's API over aiohttp's connection pool.

Why (bench/RESULTS.md, "Profile"): httpx's default transport (httpcore) cost 1.1-3.4 ms of CPU per
request on the benchmark machine, mostly pool bookkeeping (`_assign_requests_to_connections` polls
every connection's socket on each request) and a failed `import sniffio` per lock. The
`httpx-aiohttp` package's transport brings that to ~0.55 ms; this one, which reads the whole
(small, JSON) Twirp body at once instead of streaming it through an async generator, to ~0.27 ms,
next to plain aiohttp's ~0.14 ms. Callers keep the httpx API, and the embedded sandbox still plugs
in as an httpx transport of its own.

Errors keep their phase: a failure while connecting (refused, DNS, TLS handshake, connect timeout)
is an httpx connect error — nothing reached the server; one after the request went out (reset,
disconnect, read timeout) is a read/protocol error — the server may have acted. (httpx-aiohttp maps
every aiohttp connection error to `ConnectTimeout`, which would make a reset look "never sent".)
The aiohttp exception stays the `__cause__`, so the OS error underneath can still be inspected.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx

KEEPALIVE_SECONDS = 30.0
USER_AGENT = "roomctl"
_REQUEST_LOG = logging.getLogger("httpx")


def mapped_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx error for an aiohttp/OS one, most specific first."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake: nothing was sent
        return httpx.ConnectError(text, request=request)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout(text, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(text, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(text, request=request)
    return httpx.ReadError(text, request=request)  # reset or cut short after the request went out


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


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (created on first use, inside the running loop) behind httpx."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True, max_connections: int = 32,
                 proxy: str | None = None) -> None:
        self.ssl: ssl.SSLContext | bool = verify  # True: aiohttp's own verifying context, built once at import
        self.max_connections = max_connections
        self.proxy = proxy
        self.session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout", {})
        key = (given.get("connect"), given.get("read"), given.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            # connect covers waiting for a pooled connection too (httpx's "pool" timeout).
            timeout = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1], connect=key[2])
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=self.ssl,
                                             keepalive_timeout=KEEPALIVE_SECONDS)
            # No cookies (LiveKit sets none) and no default headers: httpx already sent its own.
            self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                                 skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"))
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            async with self.session.request(request.method, str(request.url), data=request.content or None,
                                            headers=headers, allow_redirects=False, auto_decompress=False,
                                            timeout=self._timeout(request), proxy=self.proxy) as response:
                body = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise mapped_error(exc, request) from exc
        return httpx.Response(response.status, headers=response.raw_headers, content=body, request=request,
                              extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def http_transport(url: str, *, max_connections: int, verify: ssl.SSLContext | bool = True) -> httpx.AsyncBaseTransport:
    """The transport for a real server (the one place it is built: TLS settings, pool size, proxy)."""
    return AiohttpTransport(verify=verify, max_connections=max_connections, proxy=env_proxy(url))


class HttpClient:
    """The slice of httpx.AsyncClient the Twirp client uses (`post`, `aclose`), handing httpx
    Requests straight to the transport. Skipping AsyncClient's per-request machinery (URL merging,
    cookie jar, auth and redirect flows, event hooks) saves ~0.1 ms of CPU a request, a third of the
    HTTP path (bench/RESULTS.md). Requests and responses are still httpx's, and any httpx transport
    plugs in (the embedded sandbox's included)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, timeout: httpx.Timeout) -> None:
        self.transport = transport
        self.timeout = timeout.as_dict()

    async def post(self, url: str, *, content: bytes, headers: dict[str, str],
                   extensions: dict[str, Any] | None = None) -> httpx.Response:
        request = httpx.Request("POST", url, content=content, headers={"User-Agent": USER_AGENT, **headers},
                                extensions={"timeout": self.timeout, **(extensions or {})})
        response = await self.transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        if _REQUEST_LOG.isEnabledFor(logging.INFO):  # -v: the request log httpx's client would write
            _REQUEST_LOG.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url, response.http_version,
                              response.status_code, response.reason_phrase)
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()

