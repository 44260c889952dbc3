"""Issue 9.2: X-Livekit-Request-Id per logical request, the same on each of its retries (as
server-sdk-go sends it), a new one for the next request. Over a real socket."""

from __future__ import annotations

import asyncio
import uuid

from reconciler.auth import TokenSource
from reconciler.backends.twirp import RetryPolicy, TwirpClient, new_request_id
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


def test_request_ids_are_random_version_4_uuids() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == i for u, i in zip(parsed, ids, strict=True))
    # Every random hex digit takes all 16 values somewhere (the fixed version digit only "4", the
    # variant digit only 8, 9, a, b): nothing stuck or skewed away from random.
    for position in range(36):
        seen = {i[position] for i in ids}
        expected = {"-"} if position in (8, 13, 18, 23) else {"4"} if position == 14 else \
            set("89ab") if position == 19 else set("0123456789abcdef")
        assert seen == expected, position
