"""PlugNmeetRoom objects in the operator (DESIGN §6): the CLI's model, backend and pure plan
(`plan_pnm_room`), plugged into the one Reconciler as a kind.

plugNmeet cannot change a live room, so a changed spec is endRoom + create under `policy.recreate`;
a value the server refuses ends as `server_refused` drift after at most one re-create (the spec hash
in extra_data tells the two apart), never as a loop. Observation is one getActiveRoomsInfo per server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..backends.plugnmeet import PlugNmeetBackend
from ..model.plugnmeet import DesiredPnmRoom, PlugNmeetRoomManifest
from ..observed import ObservedPnmRoom
from ..plan import RoomPlan
from ..plan.plugnmeet import KIND, plan_pnm_room
from .decide import RoomObject, validated
from .kinds import KindOps
from .servers import Credentials, ServerPool


def desired_pnm_room(obj: RoomObject) -> DesiredPnmRoom:
    """The PlugNmeetRoom object as the CLI's DesiredPnmRoom; raises InvalidSpec naming the field."""
    return DesiredPnmRoom(validated(PlugNmeetRoomManifest, obj), obj.source, 0)


class PlugNmeetOps(KindOps[DesiredPnmRoom, ObservedPnmRoom, PlugNmeetBackend]):
    kind = KIND
    observation = "getActiveRoomsInfo"

    def desired(self, obj: RoomObject) -> DesiredPnmRoom:
        return desired_pnm_room(obj)

    def backend(self, pool: ServerPool, creds: Credentials) -> PlugNmeetBackend:
        return pool.plugnmeet_backend(creds)

    async def observe(self, backend: PlugNmeetBackend,
                      desired: Sequence[DesiredPnmRoom]) -> Mapping[str, ObservedPnmRoom]:
        # The server lists every active room in one call: the batch costs the same for 1 or 1,000.
        return {room.room_id: room for room in await backend.active_rooms()}

    def plan(self, desired: DesiredPnmRoom, observed: ObservedPnmRoom | None) -> RoomPlan:
        return plan_pnm_room(desired, observed)


PLUGNMEET_OPS = PlugNmeetOps()
