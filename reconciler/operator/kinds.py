"""What the reconciler needs to know per kind: how an object becomes the CLI's desired room, which
backend serves it, how one call observes many of its rooms, and which pure plan decides.

The Reconciler is written once against `KindOps`; a kind is a small table entry, so a PlugNmeetRoom
goes through exactly the observe/plan/execute/conclude path a Room does (no second path)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

from ..backends.livekit import LiveKitBackend
from ..backends.plugnmeet import PlugNmeetBackend
from ..model import DesiredPolicy, DesiredRoom
from ..observed import ObservedRoom
from ..plan import RoomPlan, plan_live_room
from .decide import AnyDesired, AnyObserved, RoomObject, decide, desired_room
from .servers import Credentials, ServerPool

D = TypeVar("D", bound=AnyDesired)
Obs = TypeVar("Obs", bound=AnyObserved)
B = TypeVar("B", LiveKitBackend, PlugNmeetBackend)


class KindOps(Generic[D, Obs, B]):
    kind: str
    # How a sweep's one observation per server is named in logs and metrics.
    observation: str

    def desired(self, obj: RoomObject) -> D:
        """The object validated by the CLI's model; raises InvalidSpec."""
        raise NotImplementedError

    def backend(self, pool: ServerPool, creds: Credentials) -> B:
        raise NotImplementedError

    async def observe(self, backend: B, desired: Sequence[D]) -> Mapping[str, Obs]:
        """The declared rooms that exist, by room name, in one observation of the server."""
        raise NotImplementedError

    def plan(self, desired: D, observed: Obs | None) -> RoomPlan:
        """The CLI's pure plan for this one room."""
        raise NotImplementedError

    # RoomPolicies govern LiveKit rooms only; a kind they do not concern ignores them.
    async def observe_with(self, backend: B, desired: Sequence[D], policies: Sequence[DesiredPolicy],
                           everything: bool = False) -> Mapping[str, Obs]:
        """As `observe`, fetching also what the policies need; `everything`: every live room (a sweep)."""
        return await self.observe(backend, desired)

    def plan_with(self, desired: D, observed: Obs | None, policies: Sequence[DesiredPolicy]) -> RoomPlan:
        return self.plan(desired, observed)


class RoomOps(KindOps[DesiredRoom, ObservedRoom, LiveKitBackend]):
    kind = "Room"
    observation = "ListRooms"

    def desired(self, obj: RoomObject) -> DesiredRoom:
        return desired_room(obj)

    def backend(self, pool: ServerPool, creds: Credentials) -> LiveKitBackend:
        return pool.backend(creds)

    async def observe(self, backend: LiveKitBackend, desired: Sequence[DesiredRoom]) -> Mapping[str, ObservedRoom]:
        return (await backend.observe(list(desired))).rooms

    def plan(self, desired: DesiredRoom, observed: ObservedRoom | None) -> RoomPlan:
        return decide(desired, observed)

    async def observe_with(self, backend: LiveKitBackend, desired: Sequence[DesiredRoom],
                           policies: Sequence[DesiredPolicy], everything: bool = False) -> Mapping[str, ObservedRoom]:
        if not policies:
            return (await backend.observe(list(desired), list_all=everything)).rooms
        only = None if everything else [d.name for d in desired]
        return (await backend.observe(list(desired), policies=policies, only=only)).rooms

    def plan_with(self, desired: DesiredRoom, observed: ObservedRoom | None,
                  policies: Sequence[DesiredPolicy]) -> RoomPlan:
        """The Room's own rules first, then the matching policies' (plan_live_room, as the CLI)."""
        if not policies:
            return decide(desired, observed)
        planned = plan_live_room(desired, policies, observed)
        assert planned is not None  # a declared room always has a plan
        return planned


ROOM_OPS = RoomOps()
