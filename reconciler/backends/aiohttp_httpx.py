"""The aiohttp pool (transport.AiohttpPool) as an httpx transport, for httpx.AsyncClient users: the
plugNmeet backend and the sandbox's webhook sender. Its errors are httpx's own, in the same phase
(connect vs sent), the aiohttp exception kept as the cause. Imported only where httpx is used."""

from __future__ import annotations

import httpx

from .transport import AiohttpPool, TransportError


class AiohttpTransport(AiohttpPool, httpx.AsyncBaseTransport):
    """See the module docstring. (HttpClient, given one, posts through the pool directly.)"""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        given = request.extensions.get("timeout", {})
        timeout = self.client_timeout(given.get("connect"), given.get("read"), given.get("pool"))
        try:
            response, body = await self.request(request.method, str(request.url), headers, request.content or None,
                                                timeout)
        except TransportError as exc:
            error: type[httpx.TransportError] = getattr(httpx, type(exc).__name__, httpx.TransportError)
            raise error(str(exc), request=request) from exc.__cause__
        return httpx.Response(response.status, headers=response.raw_headers, content=body, request=request,
                              extensions={"http_version": b"HTTP/1.1"})
