"""The HTTP face of the receiver, one ASGI app for both fronts: POST /webhook, GET /healthz,
/readyz and /metrics. Answers carry a status word only: nothing that tells a sender why it failed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..asgi import Receive, Scope, Send, read_body, respond
from .receiver import Receiver

WORDS = {200: b"ok\n", 400: b"bad request\n", 401: b"unauthorized\n", 404: b"not found\n",
         405: b"method not allowed\n", 413: b"request entity too large\n", 503: b"unavailable\n"}


class WebhookApp:
    def __init__(self, receiver: Receiver, *, ready: Callable[[], bool] = lambda: True,
                 registry: CollectorRegistry | None = None, path: str = "/webhook") -> None:
        self.receiver = receiver
        self.ready = ready
        self.registry = registry
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == self.path:
            if method != "POST":
                await _answer(send, 405)
                return
            await self._webhook(scope, receive, send)
        elif path == "/healthz" and method in ("GET", "HEAD"):
            await _answer(send, 200)
        elif path == "/readyz" and method in ("GET", "HEAD"):
            await _answer(send, 200 if self.ready() else 503)
        elif path == "/metrics" and method == "GET" and self.registry is not None:
            await respond(send, 200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        else:
            await _answer(send, 404)

    async def _webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        limit = self.receiver.max_body
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _answer(send, self.receiver.reject(413, "too_large"))
            return
        body = await read_body(receive, limit)
        if body is None:
            await _answer(send, self.receiver.reject(413, "too_large"))
            return
        await _answer(send, self.receiver.receive(body, headers.get("authorization")))


async def _answer(send: Send, status: int) -> None:
    await respond(send, status, WORDS.get(status, b"\n"), "text/plain; charset=utf-8")


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the host process owns SIGTERM (`roomctl serve`'s
    graceful stop, kopf's in the operator). Stock uvicorn re-raises a captured signal after shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
