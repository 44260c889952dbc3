"""The LiveKit backend: observe rooms cheaply and perform plan actions (livekit-api.md §3)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..auth import TokenSource
from ..model import DesiredPolicy, DesiredRoom
from ..observed import ObservedDispatch, ObservedParticipant, ObservedRoom, ObservedState
from ..plan import Selection, what_to_observe
from ..plan.core import EVERYTHING
from .errors import BackendError, NotFound, OutcomeUnknown
from .limiter import DEFAULT_CONCURRENCY
from .twirp import CallObserver, RetryPolicy, TwirpClient, new_request_id

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
log = logging.getLogger("roomctl.livekit")
LIST_CHUNK = 2000  # names per ListRooms; keeps a request far below the 10 MiB body limit


def _caught(job: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T | BackendError]]:
    async def run() -> T | BackendError:
        try:
            return await job()
        except BackendError as exc:
            return exc

    return run


class LiveKitBackend:
    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_call: CallObserver | None = None,
        deadline: float | None = None,
        verify: ssl.SSLContext | bool | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.tokens = TokenSource(api_key, api_secret)
        self.twirp = TwirpClient(url, self.tokens, transport=transport, timeout=timeout, retry=retry,
                                 max_connections=concurrency, on_call=on_call, deadline=deadline,
                                 verify=verify)
        self.url = self.twirp.base_url  # userinfo removed: safe to print

    def __repr__(self) -> str:
        return f"LiveKitBackend(url={self.url!r})"

    async def aclose(self) -> None:
        await self.twirp.aclose()

    async def _bounded(self, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        gate = asyncio.Semaphore(self.concurrency)

        async def run(job: Callable[[], Awaitable[T]]) -> T:
            async with gate:
                return await job()

        return list(await asyncio.gather(*(run(j) for j in jobs)))

    # ---- reads --------------------------------------------------------------------------------
    async def list_rooms(self, names: Sequence[str] | None = None) -> list[ObservedRoom]:
        """All rooms (names None), or the named ones that exist. Unordered on the wire; sorted here."""
        if names is None:
            result = await self.twirp.call("RoomService", "ListRooms", {})
            rooms = [ObservedRoom.from_json(r) for r in result.get("rooms", [])]
        else:
            unique = sorted(set(names))
            rooms = []
            for start in range(0, len(unique), LIST_CHUNK):
                chunk = unique[start : start + LIST_CHUNK]
                if not chunk:
                    continue
                result = await self.twirp.call("RoomService", "ListRooms", {"names": chunk})
                rooms.extend(ObservedRoom.from_json(r) for r in result.get("rooms", []))
        return sorted(rooms, key=lambda r: r.name)

    async def list_participants(self, room: str) -> list[ObservedParticipant]:
        result = await self.twirp.call("RoomService", "ListParticipants", {"room": room}, room)
        return [ObservedParticipant.from_json(p) for p in result.get("participants", [])]

    async def list_dispatches(self, room: str) -> list[ObservedDispatch]:
        result = await self.twirp.call("AgentDispatchService", "ListDispatch", {"room": room}, room)
        return [ObservedDispatch.from_json(d) for d in result.get("agent_dispatches", [])]

    async def observe(self, desired: Sequence[DesiredRoom], list_all: bool = False,
                      policies: Sequence[DesiredPolicy] = (), only: Sequence[str] | None = None,
                      selection: Selection = EVERYTHING) -> ObservedState:
        """One ListRooms for the declared names (or all, for prune or when any RoomPolicy is loaded;
        or just `only`); participants and dispatches only for live rooms the plan says need them
        (plan.what_to_observe: rules or agents from a Room or a matching policy). Never a routed
        call on a room that ListRooms did not return: the real server hangs ~15 s on those
        (livekit-api.md §3.3)."""
        want = what_to_observe(desired, policies, list_all, only, selection)
        names = want.names
        listed = await self.list_rooms(names)
        rooms = {r.name: r for r in listed}
        needs = {name: want.needs(name) for name in rooms}

        def participants_of(name: str) -> Callable[[], Awaitable[list[ObservedParticipant]]]:
            return lambda: self.list_participants(name)

        def dispatches_of(name: str) -> Callable[[], Awaitable[list[ObservedDispatch]]]:
            return lambda: self.list_dispatches(name)

        want_participants = [n for n in rooms if needs[n].participants]
        want_dispatches = [n for n in rooms if needs[n].dispatches]
        # A read that fails after its retries fails only its room (marked unreadable), never the run.
        participants = await self._bounded([_caught(participants_of(n)) for n in want_participants])
        dispatches = await self._bounded([_caught(dispatches_of(n)) for n in want_dispatches])
        for name, found in zip(want_participants, participants, strict=True):
            if isinstance(found, BackendError):
                rooms[name] = replace(rooms[name], unreadable=rooms[name].unreadable or found.describe())
            else:
                rooms[name] = replace(rooms[name], participants=tuple(found))
        for name, got in zip(want_dispatches, dispatches, strict=True):
            if isinstance(got, BackendError):
                rooms[name] = replace(rooms[name], unreadable=rooms[name].unreadable or got.describe())
            else:
                rooms[name] = replace(rooms[name], dispatches=tuple(got))
        return ObservedState(rooms, complete=names is None)

    # ---- writes -------------------------------------------------------------------------------
    async def create_room(self, body: dict[str, Any]) -> ObservedRoom:
        return ObservedRoom.from_json(await self.twirp.call("RoomService", "CreateRoom", body))

    async def delete_room(self, room: str) -> None:
        await self.twirp.call("RoomService", "DeleteRoom", {"room": room})

    async def update_room_metadata(self, room: str, metadata: str) -> None:
        await self.twirp.call("RoomService", "UpdateRoomMetadata", {"room": room, "metadata": metadata}, room)

    async def update_participant(self, body: dict[str, Any]) -> None:
        await self.twirp.call("RoomService", "UpdateParticipant", body, str(body["room"]))

    async def remove_participant(self, room: str, identity: str) -> None:
        await self.twirp.call("RoomService", "RemoveParticipant", {"room": room, "identity": identity}, room)

    async def create_dispatch(self, body: dict[str, Any]) -> tuple[str, str]:
        """Create one dispatch; returns (id, note). CreateDispatch is not idempotent (two calls, two
        agents): when an attempt's outcome is unknown (no answer, a 5xx), ListDispatch says whether
        it acted, and only if no such dispatch is there is it sent again (same request id)."""
        room = str(body["room"])
        wanted = ObservedDispatch.from_json(body).key()
        request_id = new_request_id()
        attempt = 0
        while True:
            try:
                result = await self.twirp.call("AgentDispatchService", "CreateDispatch", body, room, request_id)
                return str(result.get("id", "")), "re-sent after an unknown outcome" if attempt else ""
            except OutcomeUnknown as exc:
                attempt += 1
                found = [d for d in await self.list_dispatches(room) if d.key() == wanted]
                if found:
                    return found[0].id, "found by ListDispatch after the answer was lost"
                if attempt >= self.twirp.retry.attempts:
                    raise exc.cause.at(exc.method, exc.room) from None
                log.info("CreateDispatch %s: outcome unknown (%s), not created: sending again", room, exc.cause)
                await asyncio.sleep(self.twirp.retry.backoff(attempt - 1, self.twirp.rng))

    async def delete_dispatch(self, room: str, dispatch_id: str) -> bool:
        """False when it was already gone (a retry after a lost answer, or another writer)."""
        try:
            await self.twirp.call("AgentDispatchService", "DeleteDispatch",
                                  {"room": room, "dispatch_id": dispatch_id}, room)
        except NotFound:
            return False
        return True

    async def wait_gone(self, room: str, timeout: float = 15.0, interval: float = 0.2) -> bool:
        """Poll until ListRooms no longer shows the room (a re-create must not hit the old one)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not await self.list_rooms([room]):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(interval)

    async def delete_room_if_present(self, room: str) -> bool:
        try:
            await self.delete_room(room)
            return True
        except NotFound:
            return False
