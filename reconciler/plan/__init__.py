"""The pure plan engine, one module per kind: `room` (LiveKit), `policy` (RoomPolicy, and the whole
LiveKit plan), `plugnmeet`; `core` is the shared vocabulary."""

from .core import (
    PHASES,
    Action,
    ActionKind,
    DeletionFacts,
    Drift,
    DriftReason,
    FieldChange,
    Plan,
    PlanOptions,
    PlanRefused,
    PruneCandidate,
    RoomPlan,
    Selection,
    check_prune,
    plan_deletion,
    prune_plans,
)
from .plugnmeet import plan_pnm, plan_pnm_room
from .policy import Needs, WhatToObserve, governance, plan, plan_live_room, what_to_observe
from .room import Governance, needs_dispatches, needs_participants, plan_room, room_configuration

__all__ = [
    "PHASES",
    "Action",
    "ActionKind",
    "DeletionFacts",
    "Drift",
    "DriftReason",
    "FieldChange",
    "Governance",
    "Needs",
    "Plan",
    "PlanOptions",
    "PlanRefused",
    "PruneCandidate",
    "RoomPlan",
    "Selection",
    "WhatToObserve",
    "check_prune",
    "governance",
    "needs_dispatches",
    "needs_participants",
    "plan",
    "plan_deletion",
    "plan_live_room",
    "plan_pnm",
    "plan_pnm_room",
    "plan_room",
    "prune_plans",
    "room_configuration",
    "what_to_observe",
]
