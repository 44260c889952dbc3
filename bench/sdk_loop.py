"""What a user would write instead of roomctl: the official `livekit-api` SDK in a sequential loop.

    python bench/sdk_loop.py URL create COUNT [PREFIX]   # CreateRoom per room
    python bench/sdk_loop.py URL check COUNT [PREFIX]    # ListRooms with one name per room, compare
    python bench/sdk_loop.py URL participants ROOMS      # per room: ListParticipants, fix who is out of policy
"""

from __future__ import annotations

import asyncio
import json
import sys

from livekit import api


async def create(lk: api.LiveKitAPI, count: int, prefix: str) -> None:
    for i in range(count):
        metadata = json.dumps({"index": i, "rev": "v1", "team": "bench"}, separators=(",", ":"))
        await lk.room.create_room(api.CreateRoomRequest(name=f"{prefix}-{i:05d}", empty_timeout=3600,
                                                        departure_timeout=60, max_participants=50,
                                                        metadata=metadata))


async def check(lk: api.LiveKitAPI, count: int, prefix: str) -> None:
    drifted = 0
    for i in range(count):
        found = await lk.room.list_rooms(api.ListRoomsRequest(names=[f"{prefix}-{i:05d}"]))
        metadata = json.dumps({"index": i, "rev": "v1", "team": "bench"}, separators=(",", ":"))
        if not found.rooms or found.rooms[0].metadata != metadata or found.rooms[0].max_participants != 50:
            drifted += 1
    print(f"drifted {drifted}")


async def participants(lk: api.LiveKitAPI, rooms: int) -> None:
    """The same rule roomctl applies: a participant whose identity starts with "guest-" may not publish."""
    fixed = 0
    for r in range(rooms):
        room = f"live-{r:03d}"
        listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        for p in listed.participants:
            if p.identity.startswith("guest-") and p.permission.can_publish:
                permission = api.ParticipantPermission(can_subscribe=p.permission.can_subscribe, can_publish=False,
                                                       can_publish_data=p.permission.can_publish_data)
                await lk.room.update_participant(api.UpdateParticipantRequest(room=room, identity=p.identity,
                                                                              permission=permission))
                fixed += 1
    print(f"fixed {fixed}")


async def main() -> None:
    url, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prefix = sys.argv[4] if len(sys.argv) > 4 else "room"
    lk = api.LiveKitAPI(url, "devkey", "secret")
    try:
        if mode == "create":
            await create(lk, count, prefix)
        elif mode == "check":
            await check(lk, count, prefix)
        else:
            await participants(lk, count)
    finally:
        await lk.aclose()


if __name__ == "__main__":
    asyncio.run(main())
