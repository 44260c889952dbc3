"""The floor: a plain aiohttp script issuing the same requests roomctl issues for a cold apply of
`write_rooms` rooms (one ListRooms of the names, then one CreateRoom each) at a fixed concurrency.
Run as a whole process, like roomctl, so start-up counts on both sides.

    python bench/floor_aiohttp.py URL COUNT CONCURRENCY [PREFIX]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
import jwt


def token(video: dict[str, object]) -> str:
    now = int(time.time())
    return jwt.encode({"iss": "devkey", "sub": "", "nbf": now, "exp": now + 600, "video": video}, "secret",
                      algorithm="HS256")


async def main(url: str, count: int, concurrency: int, prefix: str) -> None:
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"Authorization": "Bearer " + token({"roomList": True}), "Content-Type": "application/json"}
        async with session.post(f"{url}/twirp/livekit.RoomService/ListRooms", headers=headers,
                                data=json.dumps({"names": names})) as response:
            response.raise_for_status()
            existing = {room["name"] for room in (await response.json()).get("rooms", [])}
        headers = {"Authorization": "Bearer " + token({"roomCreate": True}), "Content-Type": "application/json"}
        todo = iter(i for i, name in enumerate(names) if name not in existing)

        async def worker() -> None:
            for i in todo:
                metadata = json.dumps({"index": i, "rev": "v1", "team": "bench"}, separators=(",", ":"))
                body = {"name": names[i], "empty_timeout": 3600, "departure_timeout": 60, "max_participants": 50,
                        "metadata": metadata}
                async with session.post(f"{url}/twirp/livekit.RoomService/CreateRoom", headers=headers,
                                        data=json.dumps(body)) as response:
                    response.raise_for_status()
                    await response.json()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "room"))
