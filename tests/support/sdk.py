"""The official `livekit-api` SDK as an independent client of a served sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from livekit import api

from tests.support.server import SandboxServer


def sdk(sandbox: SandboxServer, work: Callable[[api.LiveKitAPI], Awaitable[Any]]) -> Any:
    """Run `work(client)` with a fresh SDK client against the sandbox, closing it afterwards."""

    async def run() -> Any:
        client = api.LiveKitAPI(sandbox.url, "devkey", "secret", failover=False)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(run())
