"""Issue 9.2: X-Livekit-Request-Id per logical request, the same on each of its retries (as
server-sdk-go sends it), a new one for the next request. Over a real socket."""

from __future__ import annotations

import asyncio
import uuid

from reconciler.auth import TokenSource
from reconciler.backends.twirp import RetryPolicy, TwirpClient
from tests.support.rawhttp import raw_server

UNAVAILABLE = b'{"code":"unavailable","msg":"try again"}'


def test_request_id_is_stable_across_retries_and_new_per_request() -> None:
    script = [(503, UNAVAILABLE), (503, UNAVAILABLE), (200, b'{"rooms":[]}')]
    with raw_server("script", script) as server:
        async def calls() -> None:
            client = TwirpClient(server.url, TokenSource("devkey", "secret"),
                                 retry=RetryPolicy(attempts=5, base_delay=0.01))
            await client.call("RoomService", "ListRooms", {})
            await client.call("RoomService", "ListRooms", {})
            await client.aclose()

        asyncio.run(calls())
    ids = [r["x-livekit-request-id"] for r in server.requests]
    assert len(ids) == 4
    assert ids[0] == ids[1] == ids[2] != ids[3]  # three attempts of one request, then a new request
    assert all(uuid.UUID(i).version == 4 for i in ids)
