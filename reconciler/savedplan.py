"""Saved plans (Terraform's `plan -out` / `apply PLANFILE`): a plan file carries the actions to run
and the observed preconditions they rest on (room sids and settings, participant identities and
versions, dispatch ids, plugNmeet sessions) plus the manifest digests. `apply PLANFILE` runs exactly
those actions, and only when a fresh observation and the manifests still match. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model.proto import redact_room_egress
from .observed import ObservedPnmRoom, ObservedRoom, ObservedState
from .plan import Action, ActionKind, FieldChange, Plan, PlanOptions, Selection

SAVED_PLAN_KIND = "roomctl-saved-plan"
SAVED_PLAN_VERSION = "1"


class SavedPlanError(Exception):
    """The file is not a saved plan roomctl can run."""


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ---- preconditions --------------------------------------------------------------------------------


def room_precondition(room: ObservedRoom | None) -> dict[str, Any] | None:
    """What the plan read about one LiveKit room; None: the room did not exist."""
    if room is None:
        return None
    out: dict[str, Any] = {
        "sid": room.sid,
        "emptyTimeout": room.empty_timeout,
        "departureTimeout": room.departure_timeout,
        "maxParticipants": room.max_participants,
        "metadataSha256": sha256(room.metadata),
        "numParticipants": room.num_participants,
        "participants": None,
        "dispatches": None,
    }
    if room.participants is not None:
        out["participants"] = {
            p.identity: {"sid": p.sid, "version": p.version,
                         "sha256": sha256(_canonical([p.kind, p.permission, p.metadata, p.name, p.attributes]))}
            for p in room.participants
        }
    if room.dispatches is not None:
        out["dispatches"] = sorted(d.id for d in room.dispatches)
    return out


def pnm_precondition(room: ObservedPnmRoom | None) -> dict[str, Any] | None:
    if room is None:
        return None
    return {"sid": room.sid, "joinedParticipants": room.joined_participants,
            "metadataSha256": sha256(_canonical(room.metadata))}


def preconditions(plan: Plan, observed: ObservedState | None = None,
                  active: Sequence[ObservedPnmRoom] | None = None) -> dict[str, Any]:
    """The preconditions of every room the plan covers (declared, pruned or governed) on one server."""
    if observed is not None:
        return {room.name: room_precondition(observed.rooms.get(room.name)) for room in plan.rooms}
    by_id = {r.room_id: r for r in active or ()}
    return {room.name: pnm_precondition(by_id.get(room.name)) for room in plan.rooms}


def _describe_room(name: str, was: Mapping[str, Any] | None, now: Mapping[str, Any] | None) -> list[str]:
    label = f"room {name!r}"
    if was is None and now is None:
        return []
    if was is None:
        return [f"{label} exists now (it did not when planned)"]
    if now is None:
        return [f"{label} no longer exists"]
    changes = []
    if was.get("sid") != now.get("sid"):
        changes.append(f"{label} was re-created: sid {was.get('sid')} -> {now.get('sid')}")
    for key in ("emptyTimeout", "departureTimeout", "maxParticipants", "numParticipants", "joinedParticipants"):
        if key in was and was.get(key) != now.get(key):
            changes.append(f"{label}: {key} {was.get(key)} -> {now.get(key)}")
    if was.get("metadataSha256") != now.get("metadataSha256"):
        changes.append(f"{label}: metadata changed")
    before, after = was.get("participants"), now.get("participants")
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for identity in sorted(set(before) | set(after)):
            old, new = before.get(identity), after.get(identity)
            if old == new:
                continue
            if old is None:
                changes.append(f"{label}: participant {identity!r} joined")
            elif new is None:
                changes.append(f"{label}: participant {identity!r} left")
            else:
                changes.append(f"{label}: participant {identity!r} changed (version {old.get('version')} -> "
                               f"{new.get('version')})")
    elif before != after:
        changes.append(f"{label}: participants changed")
    if was.get("dispatches") != now.get("dispatches"):
        changes.append(f"{label}: agent dispatches changed ({was.get('dispatches')} -> {now.get('dispatches')})")
    return changes


def stale_reasons(saved: Mapping[str, Any], fresh: Mapping[str, Any], server: str) -> list[str]:
    """Why one server's fresh preconditions differ from the saved ones (empty: still valid)."""
    where = f"server {server}: " if server else ""
    reasons = []
    for name in sorted(set(saved) | set(fresh)):
        if name not in fresh:
            reasons.append(f"{where}room {name!r} is no longer part of the plan")
            continue
        if name not in saved:
            reasons.append(f"{where}room {name!r} is now part of the plan")
            continue
        reasons.extend(where + r for r in _describe_room(name, saved[name], fresh[name]))
    return reasons


# ---- actions --------------------------------------------------------------------------------------


def redacted_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """A request body with its credentials (egress S3 secrets, stream keys...) as "(redacted)", the way
    `diff -o json` shows them. A plan file holds only this: `apply PLANFILE` compares it with the fresh
    plan redacted the same way, and sends the fresh requests, which carry the real values."""
    out = dict(request)
    if "egress" in out:
        out["egress"] = redact_room_egress(out["egress"])
    return out


def action_to_json(action: Action) -> dict[str, Any]:
    return {
        "type": str(action.kind),
        "room": action.room,
        "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in action.changes],
        "request": redacted_request(action.request),
        "target": action.target,
        "old_sid": action.old_sid,
        "drop_implicit_dispatch": action.drop_implicit_dispatch,
        "disconnects": action.disconnects,
        "source": action.source,
    }


def action_from_json(data: Mapping[str, Any]) -> Action:
    try:
        return Action(
            ActionKind(data["type"]), str(data["room"]),
            tuple(FieldChange(str(c["field"]), c.get("old"), c.get("new")) for c in data.get("changes") or ()),
            dict(data.get("request") or {}), str(data.get("target") or ""), str(data.get("old_sid") or ""),
            bool(data.get("drop_implicit_dispatch")), int(data.get("disconnects") or 0), str(data.get("source") or ""),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise SavedPlanError(f"malformed action in the plan file: {exc}") from None


def options_to_json(options: PlanOptions) -> dict[str, Any]:
    return {"prune": options.prune, "prune_scopes": list(options.prune_scopes), "allow_empty": options.allow_empty,
            "prune_occupied": options.prune_occupied, "targets": list(options.selection.targets),
            "labels": [list(pair) for pair in options.selection.labels]}


def options_from_json(data: Mapping[str, Any]) -> PlanOptions:
    try:
        return PlanOptions(prune=bool(data["prune"]), prune_scopes=tuple(data["prune_scopes"]),
                           allow_empty=bool(data["allow_empty"]), prune_occupied=bool(data["prune_occupied"]),
                           selection=Selection(tuple(data["targets"]), tuple((k, v) for k, v in data["labels"])))
    except (KeyError, ValueError, TypeError) as exc:
        raise SavedPlanError(f"malformed options in the plan file: {exc}") from None


@dataclass(frozen=True)
class ServerEntry:
    """One server's part of a saved plan."""

    url: str
    actions: tuple[Action, ...]
    preconditions: Mapping[str, Any]


@dataclass(frozen=True)
class SavedPlan:
    paths: tuple[str, ...]
    files: Mapping[str, str]  # manifest file -> sha256
    options: PlanOptions
    servers: Mapping[str, ServerEntry]  # "" default LiveKit, servers-file names, "plugnmeet"
    display: Mapping[str, Any]  # the reviewed plan, as `diff -o json` printed it

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": SAVED_PLAN_KIND,
            "format_version": SAVED_PLAN_VERSION,
            "manifests": {"paths": list(self.paths), "sha256": dict(self.files)},
            "options": options_to_json(self.options),
            "servers": {name: {"url": entry.url, "preconditions": dict(entry.preconditions),
                               "actions": [action_to_json(a) for a in entry.actions]}
                        for name, entry in self.servers.items()},
            "plan": dict(self.display),
        }

    @classmethod
    def from_json(cls, data: Any) -> SavedPlan:
        if not isinstance(data, dict) or data.get("kind") != SAVED_PLAN_KIND:
            raise SavedPlanError("not a roomctl saved plan (write one with `roomctl diff ... --out FILE`)")
        if data.get("format_version") != SAVED_PLAN_VERSION:
            raise SavedPlanError(f"saved plan format {data.get('format_version')!r} is not supported "
                                 f"(this roomctl reads {SAVED_PLAN_VERSION!r})")
        try:
            manifests = data["manifests"]
            servers = {
                str(name): ServerEntry(str(entry["url"]),
                                       tuple(action_from_json(a) for a in entry["actions"]),
                                       dict(entry["preconditions"]))
                for name, entry in data["servers"].items()
            }
            return cls(tuple(manifests["paths"]), dict(manifests["sha256"]), options_from_json(data["options"]),
                       servers, dict(data.get("plan") or {}))
        except (KeyError, TypeError, AttributeError) as exc:
            raise SavedPlanError(f"malformed plan file: missing {exc}") from None

    def plan(self, server: str) -> Plan:
        """The saved actions of one server as a Plan the executor runs (phases as planned)."""
        from .plan import RoomPlan

        entry = self.servers.get(server)
        if entry is None or not entry.actions:
            return Plan(())
        rooms: dict[str, list[Action]] = {}
        for action in entry.actions:
            rooms.setdefault(action.room, []).append(action)
        return Plan(tuple(RoomPlan(name, "", "saved", actions=tuple(actions), server=server)
                          for name, actions in rooms.items()))


def manifest_changes(saved: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    reasons = []
    for path in sorted(set(saved) | set(now)):
        if path not in now:
            reasons.append(f"manifest {path} was removed")
        elif path not in saved:
            reasons.append(f"manifest {path} was added")
        elif saved[path] != now[path]:
            reasons.append(f"manifest {path} changed (sha256 {saved[path][:12]} -> {now[path][:12]})")
    return reasons
