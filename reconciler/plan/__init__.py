"""The pure plan engine, one module per kind: `room` (LiveKit), `plugnmeet`; `core` is the shared vocabulary."""

from .core import (
    PHASES,
    Action,
    ActionKind,
    Drift,
    DriftReason,
    FieldChange,
    Plan,
    PlanOptions,
    PlanRefused,
    PruneCandidate,
    RoomPlan,
    check_prune,
    prune_plans,
)
from .plugnmeet import plan_pnm, plan_pnm_room
from .room import needs_dispatches, needs_participants, plan, plan_room, room_configuration

__all__ = [
    "PHASES",
    "Action",
    "ActionKind",
    "Drift",
    "DriftReason",
    "FieldChange",
    "Plan",
    "PlanOptions",
    "PlanRefused",
    "PruneCandidate",
    "RoomPlan",
    "check_prune",
    "needs_dispatches",
    "needs_participants",
    "plan",
    "plan_pnm",
    "plan_pnm_room",
    "plan_room",
    "prune_plans",
    "room_configuration",
]
