"""The plan's vocabulary, shared by every kind: actions, drift, per-room plans, prune (DESIGN §3).
Pure: no I/O, no clock, no randomness."""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any


class ActionKind(StrEnum):
    CREATE_ROOM = "CreateRoom"
    RECREATE_ROOM = "RecreateRoom"
    UPDATE_ROOM_METADATA = "UpdateRoomMetadata"
    CREATE_DISPATCH = "CreateDispatch"
    DELETE_DISPATCH = "DeleteDispatch"
    UPDATE_PARTICIPANT = "UpdateParticipant"
    REMOVE_PARTICIPANT = "RemoveParticipant"
    DELETE_ROOM = "DeleteRoom"


# Execution order (DESIGN §3 "Order"): creates/re-creates, metadata, dispatches, participants, deletes.
PHASES: dict[ActionKind, int] = {
    ActionKind.CREATE_ROOM: 0,
    ActionKind.RECREATE_ROOM: 0,
    ActionKind.UPDATE_ROOM_METADATA: 1,
    ActionKind.CREATE_DISPATCH: 2,
    ActionKind.DELETE_DISPATCH: 2,
    ActionKind.UPDATE_PARTICIPANT: 3,
    ActionKind.REMOVE_PARTICIPANT: 3,
    ActionKind.DELETE_ROOM: 4,
}


PARTICIPANT_ACTIONS = frozenset({ActionKind.UPDATE_PARTICIPANT, ActionKind.REMOVE_PARTICIPANT})
POLICY_KIND = "RoomPolicy"


class DriftReason(StrEnum):
    RECREATE_NEVER = "recreate_never"
    RECREATE_OCCUPIED = "recreate_occupied"
    OBSERVE_ONLY = "observe_only"
    IGNORED = "ignored"
    NOT_READABLE = "not_readable"
    CANNOT_CLEAR = "cannot_clear"
    PRUNE_OCCUPIED = "prune_occupied"
    SERVER_REFUSED = "server_refused"  # plugNmeet: created with the value, the server serves another
    ORPHAN = "orphan"  # roomctl delete: policy.deletion is Orphan, the room stays
    DELETE_OCCUPIED = "delete_occupied"  # roomctl delete: the room has participants (--occupied deletes it)


class NotReturned(str):
    """The old value of a field the server never returns (plugNmeet's emptyTimeout, maxParticipants):
    unknown, so the plan says so instead of inventing one. A str, so JSON, saved plans and the
    operator's status carry it as text; the text renderer prints it unquoted."""

    __slots__ = ()

    def __new__(cls, server: str) -> NotReturned:
        return super().__new__(cls, f"(not returned by {server})")


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    room: str
    changes: tuple[FieldChange, ...] = ()
    # The Twirp JSON request body (proto names) the executor sends.
    request: Mapping[str, Any] = field(default_factory=dict)
    target: str = ""  # participant identity or dispatch id
    old_sid: str = ""
    # After creating the room, delete the server's implicit agent_name "" dispatch (agents: Exact).
    drop_implicit_dispatch: bool = False
    # Participants this action disconnects (a re-create or delete of an occupied room); shown in the plan.
    disconnects: int = 0
    # Provenance: what asked for it, e.g. "Room town-hall, rule 1" or "RoomPolicy support-calls, agents".
    source: str = ""

    @property
    def phase(self) -> int:
        return PHASES[self.kind]


@dataclass(frozen=True)
class Drift:
    room: str
    field: str
    observed: Any
    desired: Any
    reason: DriftReason
    detail: str
    source: str = ""  # provenance, as Action.source


@dataclass(frozen=True)
class RoomPlan:
    name: str
    source: str  # file:line of the manifest, or "" for an undeclared room
    status: str  # create | recreate | update | delete | in-sync | drift | absent | suspended | unreadable
    sid: str = ""
    actions: tuple[Action, ...] = ()
    drifts: tuple[Drift, ...] = ()
    not_verifiable: tuple[str, ...] = ()
    kind: str = "Room"  # the manifest kind, which says the backend: Room (LiveKit) or PlugNmeetRoom
    server: str = ""  # a servers-file name (spec.serverRef.name); "" the default server
    policies: tuple[str, ...] = ()  # the RoomPolicies that matched this live room, in the order applied
    error: str = ""  # status unreadable: which read failed and why ("ListDispatch: unavailable: ...")


@dataclass(frozen=True)
class Plan:
    rooms: tuple[RoomPlan, ...]
    unmanaged: int = 0

    @property
    def actions(self) -> list[Action]:
        every = [a for room in self.rooms for a in room.actions]
        return sorted(every, key=lambda a: a.phase)  # stable: room order within a phase

    @property
    def drifts(self) -> list[Drift]:
        return [d for room in self.rooms for d in room.drifts]

    @property
    def has_changes(self) -> bool:
        return any(room.actions for room in self.rooms)

    @property
    def unreadable(self) -> list[RoomPlan]:
        """Rooms whose observation failed: nothing planned for them; the run must not end 'ok'."""
        return [room for room in self.rooms if room.status == "unreadable"]

    def counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "recreate": 0, "delete": 0}
        for room in self.rooms:
            if room.status in counts:
                counts[room.status] += 1
        counts["drift"] = len(self.drifts)
        counts["suspended"] = sum(1 for room in self.rooms if room.status == "suspended")
        counts["unreadable"] = len(self.unreadable)
        counts["unmanaged"] = self.unmanaged
        counts["policy_participant_changes"] = sum(
            1 for a in self.actions
            if a.kind in PARTICIPANT_ACTIONS and a.source.startswith(f"{POLICY_KIND} "))
        return counts


class PlanRefused(Exception):
    """The plan would be unsafe to run (e.g. prune with nothing declared)."""


@dataclass(frozen=True)
class Selection:
    """Which rooms one run covers (`--target GLOB`, `-l key=value`; a webhook's one room). Rooms outside
    it are neither observed nor planned nor pruned. Undeclared rooms have no labels: a label selector
    never selects them, so a run with one prunes nothing."""

    targets: tuple[str, ...] = ()  # room-name globs; any may match
    labels: tuple[tuple[str, str], ...] = ()  # metadata.labels; all must match

    @classmethod
    def room(cls, name: str) -> Selection:
        """Exactly this room, whatever glob characters its name holds."""
        return cls(targets=(glob.escape(name),))

    @property
    def everything(self) -> bool:
        return not self.targets and not self.labels

    def covers(self, name: str, labels: Mapping[str, str] | None) -> bool:
        if self.targets and not in_prune_scope(name, self.targets):
            return False
        return not (self.labels and (labels is None or any(labels.get(k) != v for k, v in self.labels)))

    def describe(self) -> str:
        parts = [f"--target {t}" for t in self.targets] + [f"-l {k}={v}" for k, v in self.labels]
        return " ".join(parts)


EVERYTHING = Selection()  # the default: no --target, no -l


@dataclass(frozen=True)
class PlanOptions:
    prune: bool = False
    prune_scopes: tuple[str, ...] = ()
    allow_empty: bool = False
    prune_occupied: bool = False
    # Room names that another kind's manifests own (a PlugNmeetRoom's LiveKit room): never pruned here.
    declared_elsewhere: frozenset[str] = frozenset()
    selection: Selection = EVERYTHING



def in_prune_scope(name: str, scopes: Sequence[str]) -> bool:
    return any(fnmatchcase(name, scope) for scope in scopes)


def check_prune(options: PlanOptions, anything_declared: bool) -> None:
    """Refuse a prune that would be unsafe to run (DESIGN §3 "Prune")."""
    if not options.prune:
        return
    if not options.prune_scopes:
        raise PlanRefused("--prune needs at least one --prune-scope GLOB")
    if not anything_declared and not options.allow_empty:
        raise PlanRefused("refusing to prune: no rooms are declared (pass --allow-empty if that is intended)")


@dataclass(frozen=True)
class PruneCandidate:
    """A room the server has and no manifest declares."""

    name: str
    sid: str
    occupants: int


@dataclass(frozen=True)
class DeletionFacts:
    """What `roomctl delete` decides one declared room's deletion from (either kind)."""

    name: str
    source: str
    kind: str
    request_key: str  # "room" (LiveKit) or "room_id" (plugNmeet)
    deletion: str  # policy.deletion: Delete | Orphan
    observe_only: bool
    suspended: bool
    sid: str = ""  # "" when the room does not exist
    occupants: int = 0


def plan_deletion(facts: DeletionFacts, delete_occupied: bool = False) -> RoomPlan:
    """Delete a declared room, honouring policy.deletion, observeOnly, suspend and the occupied guard."""
    name, source, kind = facts.name, facts.source, facts.kind
    if facts.suspended:
        return RoomPlan(name, source, "suspended", facts.sid, kind=kind)
    if not facts.sid:
        return RoomPlan(name, source, "absent", kind=kind)

    def kept(reason: DriftReason, detail: str) -> RoomPlan:
        drift = Drift(name, "room", "present", "absent", reason, detail)
        return RoomPlan(name, source, "drift", facts.sid, drifts=(drift,), kind=kind)

    if facts.deletion == "Orphan":
        return kept(DriftReason.ORPHAN, "not deleted: policy.deletion is Orphan")
    if facts.observe_only:
        return kept(DriftReason.OBSERVE_ONLY, "not deleted: policy.observeOnly")
    if facts.occupants and not delete_occupied:
        return kept(DriftReason.DELETE_OCCUPIED, f"not deleted: the room has {facts.occupants} participant(s) "
                                                 "(--occupied deletes it anyway)")
    action = Action(ActionKind.DELETE_ROOM, name, (FieldChange("room", name, None),), {facts.request_key: name},
                    old_sid=facts.sid, disconnects=facts.occupants)
    return RoomPlan(name, source, "delete", facts.sid, actions=(action,), kind=kind)


def prune_plans(candidates: Sequence[PruneCandidate], options: PlanOptions, kind: str = "Room",
                request_key: str = "room") -> tuple[list[RoomPlan], int]:
    """Deletes for undeclared rooms inside a --prune-scope (occupied ones only with --prune-occupied);
    every other undeclared room is only counted as unmanaged. Shared by both backends."""
    plans: list[RoomPlan] = []
    unmanaged = 0
    for room in sorted(candidates, key=lambda c: c.name):
        if not (options.prune and in_prune_scope(room.name, options.prune_scopes)
                and options.selection.covers(room.name, None)):
            unmanaged += 1
            continue
        scope = next(s for s in options.prune_scopes if fnmatchcase(room.name, s))
        if room.occupants and not options.prune_occupied:  # kept: the same source the delete would show
            drift = Drift(room.name, "room", "present", "absent", DriftReason.PRUNE_OCCUPIED,
                          f"not pruned: the room has {room.occupants} participant(s) "
                          "(--prune-occupied deletes it anyway)", source=f"--prune-scope {scope}")
            plans.append(RoomPlan(room.name, "", "drift", room.sid, drifts=(drift,), kind=kind))
            continue
        action = Action(ActionKind.DELETE_ROOM, room.name, (FieldChange("room", room.name, None),),
                        {request_key: room.name}, old_sid=room.sid, disconnects=room.occupants,
                        source=f"--prune-scope {scope}")
        plans.append(RoomPlan(room.name, "", "delete", room.sid, actions=(action,), kind=kind))
    return plans, unmanaged


