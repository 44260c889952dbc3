"""One run of the engine, whatever triggered it (CLI, `roomctl serve`, a webhook): observe what the
declared inputs need from each backend, then plan purely. Execution is `execute.py`'s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .backends.livekit import LiveKitBackend
from .backends.plugnmeet import PlugNmeetBackend
from .manifests import Inputs
from .model import DesiredRoom
from .model.plugnmeet import DesiredPnmRoom
from .observed import ObservedPnmRoom, ObservedRoom, ObservedState
from .plan import (
    DeletionFacts,
    Plan,
    PlanOptions,
    PlanRefused,
    RoomPlan,
    Selection,
    check_prune,
    plan,
    plan_deletion,
    plan_live_room,
)
from .plan.plugnmeet import KIND as KIND_PNM
from .plan.plugnmeet import plan_pnm

DEFAULT_SERVER = ""  # the LiveKit server of --url / LIVEKIT_URL (or the embedded sandbox)


@dataclass
class Backends:
    """The servers one run talks to: the default LiveKit, the named ones a Room's
    `spec.serverRef.name` picks (the CLI's servers file), and plugNmeet (None when not involved)."""

    livekit: LiveKitBackend
    plugnmeet: PlugNmeetBackend | None = None
    named: dict[str, LiveKitBackend] = field(default_factory=dict)

    def for_server(self, server: str) -> LiveKitBackend:
        return self.livekit if server == DEFAULT_SERVER else self.named[server]


def server_of(room: DesiredRoom) -> str:
    """The server a Room is planned on: DEFAULT_SERVER, or its spec.serverRef.name. A ref with only
    a secretName (the operator's) has no server here: "secret:NAME", which no Backends holds, so it
    is refused rather than silently planned against the default server."""
    ref = room.spec.server_ref
    if ref is None:
        return DEFAULT_SERVER
    return ref.name if ref.name else f"secret:{ref.secret_name}"


@dataclass(frozen=True)
class CombinedPlan:
    """One plan per server, shown and counted as one; `observed` keeps what each LiveKit server
    showed (a saved plan records it as the preconditions it rests on)."""

    livekit: Plan
    plugnmeet: Plan
    named: Mapping[str, Plan] = field(default_factory=dict)
    observed: Mapping[str, ObservedState] = field(default_factory=dict)
    observed_pnm: tuple[ObservedPnmRoom, ...] | None = None

    def groups(self) -> list[tuple[str, Plan]]:
        """(server, plan) in execution order: default LiveKit, named servers (sorted), plugNmeet ("plugnmeet")."""
        return [(DEFAULT_SERVER, self.livekit), *sorted(self.named.items()), (PNM_SERVER, self.plugnmeet)]

    @property
    def merged(self) -> Plan:
        plans = [p for _, p in self.groups()]
        return Plan(tuple(r for p in plans for r in p.rooms), sum(p.unmanaged for p in plans))


PNM_SERVER = "plugnmeet"


def select_inputs(inputs: Inputs, selection: Selection) -> Inputs:
    """The declared rooms a run covers: --target globs over room names, -l over metadata.labels."""
    if selection.everything:
        return inputs
    # Only the declared rooms are selected; RoomPolicies stay (they govern only selected live rooms).
    return replace(inputs,
                   livekit=[r for r in inputs.livekit if selection.covers(r.name, r.manifest.metadata.labels)],
                   plugnmeet=[r for r in inputs.plugnmeet if selection.covers(r.name, r.manifest.metadata.labels)])


def _rooms_by_server(backends: Backends, inputs: Inputs) -> dict[str, list[DesiredRoom]]:
    """The declared LiveKit rooms grouped by server; a serverRef no open backend serves is refused."""
    by_server: dict[str, list[DesiredRoom]] = {}
    for room in inputs.livekit:
        by_server.setdefault(server_of(room), []).append(room)
    unknown = sorted(set(by_server) - {DEFAULT_SERVER} - set(backends.named))
    if unknown:
        raise PlanRefused(f"no server for spec.serverRef {', '.join(unknown)}: declare it in the servers file")
    return by_server


async def make_combined_plan(backends: Backends, inputs: Inputs, options: PlanOptions) -> CombinedPlan:
    """Each document routed to its backend: one ListRooms, one getActiveRoomsInfo (DESIGN §3).

    Prune is per backend and only where that backend has declared rooms (or --allow-empty): a folder
    of PlugNmeetRooms must not empty the LiveKit server. LiveKit never prunes a room that a
    PlugNmeetRoom declares: plugNmeet names its LiveKit room after the room id. RoomPolicies make
    the LiveKit side list every room and plan each live room they match (plan/policy.py).

    `options.selection` restricts the run (--target/-l, or one room for a webhook): rooms outside it
    are neither observed nor planned nor pruned (nor governed by a RoomPolicy)."""
    # Never pruned by LiveKit: a PlugNmeetRoom's room, and declared rooms outside the selection.
    elsewhere = frozenset(r.name for r in inputs.plugnmeet) | {r.name for r in inputs.livekit}
    inputs = select_inputs(inputs, options.selection)
    check_prune(options, bool(inputs.livekit or inputs.plugnmeet))

    def scoped(declared: bool) -> PlanOptions:
        return options if declared or options.allow_empty else replace(options, prune=False)

    by_server = _rooms_by_server(backends, inputs)
    default_rooms = by_server.pop(DEFAULT_SERVER, [])
    livekit_options = replace(scoped(bool(default_rooms)),
                              declared_elsewhere=elsewhere - {r.name for r in default_rooms})
    livekit = Plan(())
    observed: dict[str, ObservedState] = {}
    if default_rooms or inputs.policies or livekit_options.prune:
        observed[DEFAULT_SERVER] = await backends.livekit.observe(
            default_rooms, list_all=livekit_options.prune, policies=inputs.policies, selection=options.selection)
        livekit = plan(default_rooms, observed[DEFAULT_SERVER], livekit_options, inputs.policies)
    named: dict[str, Plan] = {}
    for server, rooms in sorted(by_server.items()):
        # Another server: its own room names, its own prune (RoomPolicies govern the default server).
        server_options = replace(options, declared_elsewhere=frozenset())
        observed[server] = await backends.named[server].observe(rooms, list_all=server_options.prune,
                                                                selection=options.selection)
        planned = plan(rooms, observed[server], server_options)
        named[server] = Plan(tuple(replace(r, server=server) for r in planned.rooms), planned.unmanaged)
    pnm = Plan(())
    active: list[ObservedPnmRoom] | None = None
    pnm_options = scoped(bool(inputs.plugnmeet))
    if backends.plugnmeet is not None and (inputs.plugnmeet or pnm_options.prune):
        active = await backends.plugnmeet.active_rooms()
        pnm = plan_pnm(inputs.plugnmeet, active, pnm_options)
    return CombinedPlan(livekit, pnm, named, observed, tuple(active) if active is not None else None)


def _room_deletion(d: DesiredRoom, room: ObservedRoom | None) -> DeletionFacts:
    policy = d.spec.policy
    return DeletionFacts(d.name, d.source, "Room", "room", policy.deletion, policy.observe_only, d.spec.suspend,
                         room.sid if room else "", room.num_participants if room else 0)


def _pnm_deletion(d: DesiredPnmRoom, room: ObservedPnmRoom | None) -> DeletionFacts:
    policy = d.spec.policy
    return DeletionFacts(d.name, d.source, KIND_PNM, "room_id", policy.deletion, policy.observe_only,
                         d.spec.suspend, room.sid if room else "", room.joined_participants if room else 0)


async def make_deletion_plan(backends: Backends, inputs: Inputs, selection: Selection,
                             delete_occupied: bool = False) -> CombinedPlan:
    """`roomctl delete`: the declared (and selected) rooms, each deleted unless policy.deletion is
    Orphan, observeOnly or suspend holds it, or it is occupied (unless delete_occupied). One
    ListRooms and one getActiveRoomsInfo; nothing undeclared is ever touched."""
    inputs = select_inputs(inputs, selection)
    by_server = _rooms_by_server(backends, inputs)
    plans: dict[str, Plan] = {}
    for server, rooms in by_server.items():
        listed = {r.name: r for r in await backends.for_server(server).list_rooms([d.name for d in rooms])}
        plans[server] = Plan(tuple(replace(plan_deletion(_room_deletion(d, listed.get(d.name)), delete_occupied),
                                           server=server) for d in rooms))
    pnm = Plan(())
    if inputs.plugnmeet and backends.plugnmeet is not None:
        active = {r.room_id: r for r in await backends.plugnmeet.active_rooms()}
        pnm = Plan(tuple(plan_deletion(_pnm_deletion(d, active.get(d.name)), delete_occupied)
                         for d in inputs.plugnmeet))
    livekit = plans.pop(DEFAULT_SERVER, Plan(()))
    return CombinedPlan(livekit, pnm, plans)


async def plan_one_room(backend: LiveKitBackend, inputs: Inputs, room: str) -> RoomPlan | None:
    """One LiveKit room, observed on its own (ListRooms for that name, then only the per-room lists
    its Room and matching RoomPolicies need) and planned by `plan_live_room` — the same decision the
    batch run makes for that room. None: nothing governs it, or it is not live and not declared.
    For a reaction to one room (a webhook); never prunes."""
    desired = next((d for d in inputs.livekit if d.name == room), None)
    observed = await backend.observe([desired] if desired else [], policies=inputs.policies, only=[room])
    return plan_live_room(desired, inputs.policies, observed.rooms.get(room))
