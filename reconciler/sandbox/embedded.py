"""Mount the sandbox in-process behind an httpx transport: the same client code, no socket."""

from __future__ import annotations

import httpx

from .app import ConnectionDropped, Sandbox


class EmbeddedTransport(httpx.AsyncBaseTransport):
    """httpx's ASGI transport, with a dropped connection surfacing as the transport error a
    socket would give (so retry logic sees the same thing in both modes)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._inner = httpx.ASGITransport(app=sandbox)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except ConnectionDropped as exc:
            raise httpx.ReadError("connection reset by sandbox fault injection", request=request) from exc
