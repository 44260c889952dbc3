"""execute(): phases in order, at most `concurrency` actions in flight, results in plan order, a failed
create skips its room's later steps and nothing else. A recording stand-in for the backend: no server."""

from __future__ import annotations

import asyncio
from typing import Any

from reconciler.backends.errors import ServerFailure
from reconciler.backends.livekit import LiveKitBackend
from reconciler.execute import execute
from reconciler.observed import ObservedRoom
from reconciler.plan.core import Action, ActionKind, Plan, RoomPlan


class Recorder(LiveKitBackend):
    def __init__(self, fail: str) -> None:
        super().__init__("http://127.0.0.1:9", "k", "s")
        self.fail = fail
        self.in_flight = 0
        self.peak = 0
        self.calls: list[tuple[str, str]] = []

    async def _work(self, method: str, room: str) -> None:
        self.calls.append((method, room))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.001 * (hash(room) % 5))  # answers out of order
        finally:
            self.in_flight -= 1
        if room == self.fail and method == "CreateRoom":
            raise ServerFailure("internal: boom").at(method, room)

    async def create_room(self, body: dict[str, Any]) -> ObservedRoom:
        await self._work("CreateRoom", body["name"])
        return ObservedRoom(body["name"], f"RM_{body['name']}", 0, 0, 0, "", 0)

    async def update_room_metadata(self, room: str, metadata: str) -> None:
        await self._work("UpdateRoomMetadata", room)


async def test_phases_bounded_concurrency_plan_order_and_skips() -> None:
    names = [f"r{i:02d}" for i in range(40)]
    rooms = tuple(RoomPlan(n, "rooms.yaml:1", "create", actions=(
        Action(ActionKind.CREATE_ROOM, n, request={"name": n}),
        Action(ActionKind.UPDATE_ROOM_METADATA, n, request={"metadata": "m"}))) for n in names)
    backend = Recorder(fail="r07")
    seen: list[str] = []
    try:
        results = await execute(Plan(rooms), backend, concurrency=6, on_result=lambda r: seen.append(r.action.room))
    finally:
        await backend.aclose()
    assert backend.peak == 6
    # Every create before any metadata update; the failed room's update is never sent.
    methods = [m for m, _ in backend.calls]
    assert methods == ["CreateRoom"] * 40 + ["UpdateRoomMetadata"] * 39
    assert ("UpdateRoomMetadata", "r07") not in backend.calls
    # Results in plan order (phase, then room); each performed action reported once as it finished.
    assert [(r.action.kind, r.action.room) for r in results.results] == [
        *((ActionKind.CREATE_ROOM, n) for n in names), *((ActionKind.UPDATE_ROOM_METADATA, n) for n in names)]
    assert sorted(seen) == sorted(names + [n for n in names if n != "r07"])  # (a skipped step is not performed)
    failed = {(r.action.kind, r.action.room): r.error for r in results.results if not r.ok}
    assert failed == {(ActionKind.CREATE_ROOM, "r07"): "internal: boom",
                      (ActionKind.UPDATE_ROOM_METADATA, "r07"): "skipped: creating the room failed"}
    assert results.results[8].sid == "RM_r08"
