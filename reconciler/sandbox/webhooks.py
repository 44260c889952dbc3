"""The sandbox's webhook notifier, shaped like livekit/protocol's ResourceURLNotifier (livekit-api.md
§7): events are queued per resource (room, or room + participant), POSTed signed with retries, and
dropped when they waited more than 30 s or the resource's queue holds more than 200. Delivery runs
in background tasks: a request that causes an event never waits for its delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from typing import Any

import httpx
from google.protobuf import json_format
from livekit.protocol import webhook as webhook_pb

from ..backends.transport import http_transport
from ..webhook.wire import CONTENT_TYPE, encode_event, sign
from .common import Clock, new_id

log = logging.getLogger("roomctl.sandbox.webhooks")

MAX_AGE = 30.0  # DefaultResourceURLNotifierConfig.MaxAge
MAX_DEPTH = 200  # DefaultResourceURLNotifierConfig.MaxDepth
RETRY_WAITS = (1.0, 2.0, 4.0, 8.0)  # hashicorp retryablehttp: RetryMax 4, RetryWaitMin 1 s, doubling
USER_AGENT = "Go-http-client/1.1"
MAX_CONNECTIONS = 32


class WebhookSender:
    def __init__(self, url: str | None, api_key: str, api_secret: str, clock: Clock,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self.api_key = api_key
        self._secret = api_secret
        self.clock = clock
        self.drop = False  # the test API's "lose every webhook" switch
        self.stats: Counter[str] = Counter()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._queues: dict[str, deque[tuple[float, bytes]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def __repr__(self) -> str:
        return f"WebhookSender(url={self.url!r}, api_key={self.api_key!r})"

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "api_key": self.api_key, "drop": self.drop,
                "pending": sum(len(q) for q in self._queues.values()), **dict(self.stats)}

    def emit(self, event: webhook_pb.WebhookEvent, resource: str) -> None:
        """Called by the in-memory server as things happen. Encodes now (the state moves on), queues, returns."""
        if not self.url:
            return
        event.id = new_id("EV_")
        event.created_at = int(self.clock.now())
        body = encode_event(json_format.MessageToDict(event))
        if self.drop:
            self.stats["dropped_by_test"] += 1
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.stats["dropped_no_loop"] += 1
            return
        queue = self._queues.setdefault(resource, deque())
        if len(queue) >= MAX_DEPTH:
            self.stats["dropped_depth"] += 1
            return
        queue.append((time.monotonic(), body))
        if resource not in self._workers:
            self._workers[resource] = loop.create_task(self._drain(resource), name=f"webhook {resource}")

    async def _drain(self, resource: str) -> None:
        queue = self._queues[resource]
        try:
            while queue:
                queued_at, body = queue.popleft()
                if time.monotonic() - queued_at > MAX_AGE:
                    self.stats["dropped_age"] += 1
                    continue
                await self._post(body, queued_at)
        finally:
            self._workers.pop(resource, None)
            if not queue:
                self._queues.pop(resource, None)

    async def _post(self, body: bytes, queued_at: float) -> None:
        if self._client is None:
            transport = self._transport or http_transport(self.url or "", max_connections=MAX_CONNECTIONS)
            self._client = httpx.AsyncClient(transport=transport, timeout=10.0)
        for attempt in range(len(RETRY_WAITS) + 1):
            url = self.url
            if not url or self.drop:
                self.stats["dropped_by_test"] += 1
                return
            headers = {"Authorization": sign(body, self.api_key, self._secret, time.time()),
                       "Content-Type": CONTENT_TYPE, "User-Agent": USER_AGENT}
            try:
                response = await self._client.post(url, content=body, headers=headers)
                status = response.status_code
            except httpx.TransportError as exc:
                status, reason = 0, type(exc).__name__
            else:
                reason = f"HTTP {status}"
            # retryablehttp's DefaultRetryPolicy: connection errors, 429 and 5xx (except 501) retry.
            if status and status < 500 and status != 429:
                self.stats["sent" if status < 300 else "refused"] += 1
                return
            if status == 501 or attempt == len(RETRY_WAITS) or time.monotonic() - queued_at > MAX_AGE:
                break
            self.stats["retried"] += 1
            await asyncio.sleep(RETRY_WAITS[attempt])
        self.stats["failed"] += 1
        log.info("webhook delivery failed: %s", reason)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued event was delivered or dropped (the embedded mode before exit)."""
        deadline = time.monotonic() + timeout
        while self._workers and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        for task in list(self._workers.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None
