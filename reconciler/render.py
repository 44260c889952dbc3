"""Plans and results as text (read like `terraform plan`) or JSON (a stable, documented schema)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from .plan import Action, ActionKind, Drift, Plan, RoomPlan
from .plan.core import POLICY_KIND, NotReturned

if TYPE_CHECKING:  # the executor loads with the commands that execute (apply, delete, serve)
    from .execute import ActionResult, Results

JSON_FORMAT_VERSION = "1"

MARKERS = {"create": "+", "update": "~", "recreate": "-/+", "delete": "-", "drift": "!", "in-sync": " ", "absent": " ",
           "suspended": "=", "unreadable": "?"}
COLOURS = {"+": "32", "~": "33", "-/+": "35", "-": "31", "!": "33", "#": "2", "?": "31"}


def use_colour(stream: TextIO, allowed: bool = True) -> bool:
    """Colour only on a terminal, never with --no-color, NO_COLOR (any value, no-color.org) or TERM=dumb."""
    return allowed and stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class Painter:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, marker: str, text: str) -> str:
        code = COLOURS.get(marker)
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and code else text


# One encoder each for every value shown (json.dumps with options builds a new one per call); same text.
_TEXT = json.JSONEncoder(ensure_ascii=False)
_VALUE = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def fmt(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, NotReturned):
        return str(value)
    if isinstance(value, str):
        return _TEXT.encode(value)
    return _VALUE.encode(value)


def _action_lines(action: Action) -> list[tuple[str, str]]:
    lines = _plain_action_lines(action)
    if action.source and lines:
        marker, text = lines[0]
        lines[0] = (marker, f"{text}  ({action.source})")
    return lines


def _plain_action_lines(action: Action) -> list[tuple[str, str]]:
    kind = action.kind
    if kind in (ActionKind.CREATE_ROOM,):
        return [("+", f"{c.field} = {fmt(c.new)}") for c in action.changes]
    if kind == ActionKind.RECREATE_ROOM:
        return [("~", f"{c.field}: {fmt(c.old)} -> {fmt(c.new)}" + ("  # forces re-create" if c.field != "metadata" else ""))
                for c in action.changes]
    if kind == ActionKind.UPDATE_ROOM_METADATA:
        return [("~", f"{c.field}: {fmt(c.old)} -> {fmt(c.new)}") for c in action.changes]
    if kind == ActionKind.CREATE_DISPATCH:
        extra = f" (metadata {fmt(action.request['metadata'])})" if action.request.get("metadata") else ""
        return [("+", f"agent dispatch {fmt(action.request.get('agent_name', ''))}{extra}")]
    if kind == ActionKind.DELETE_DISPATCH:
        return [("-", f"agent dispatch {_quoted_agent(str(action.changes[0].old))} ({action.target})")]
    if kind == ActionKind.REMOVE_PARTICIPANT:
        return [("-", f"participant {fmt(action.target)} (disconnected by rule remove: true)")]
    if kind == ActionKind.UPDATE_PARTICIPANT:
        lines = [("~", f"participant {fmt(action.target)}")]
        lines.extend(("~", f"    {c.field}: {fmt(c.old)} -> {fmt(c.new)}") for c in action.changes)
        return lines
    if kind == ActionKind.DELETE_ROOM:
        return []
    return [("~", str(kind))]


def _header(room: RoomPlan) -> str:
    marker = MARKERS[room.status]
    if room.source:
        where = f"  ({room.source})"
    elif room.policies and room.status != "delete":
        # Only the files passed are known: a Room declared in a file left out of this run is not.
        where = (f"  (not declared; {POLICY_KIND} {', '.join(room.policies)}; "
                 "a Room manifest not passed in this run is not known)")
    else:
        where = "  (not declared; inside --prune-scope)"
    sid = f"  sid {room.sid}" if room.sid and room.status != "create" else ""
    label = {"recreate": "  must be re-created", "drift": "  drift not applied",
             "suspended": "  suspended (spec.suspend: true; nothing done)",
             "unreadable": "  could not be read; nothing planned"}.get(room.status, "")
    gone = sum(a.disconnects for a in room.actions)
    if gone:  # "disconnecting 0 participants" on every empty re-create would be noise
        label += f"{',' if label else ' '} disconnecting {gone} participant{'' if gone == 1 else 's'}"
    noun = "plugNmeet room" if room.kind == "PlugNmeetRoom" else "room"
    return f"{marker} {noun} {fmt(room.name)}{label}{where}{sid}"


def _drift_line(drift: Drift) -> str:
    source = f" ({drift.source})" if drift.source else ""
    if drift.field == "room":
        return f"! {drift.detail}{source}"
    return f"! {drift.field}: {fmt(drift.observed)} -> {fmt(drift.desired)}  # {drift.detail}{source}"


def summary_line(plan: Plan) -> str:
    c = plan.counts()
    line = (f"Plan: {c['create']} to create, {c['update']} to update, {c['recreate']} to recreate, "
            f"{c['delete']} to delete; {c['drift']} drift not applied.")
    if c["policy_participant_changes"]:
        line += f" {c['policy_participant_changes']} participant change(s) from {POLICY_KIND} rules."
    if c["suspended"]:
        line += f" {c['suspended']} suspended (spec.suspend)."
    if c["unreadable"]:
        line += f" {c['unreadable']} room(s) could not be read (see the errors)."
    return line


def _quoted_agent(label: str) -> str:
    """`name (why)` as `"name" (why)`: every agent dispatch line quotes the agent name alike."""
    if label.startswith('"'):  # the implicit dispatch, already shown as ""
        return label
    name, sep, why = label.partition(" (")
    return fmt(name) + (f" ({why}" if sep else "")


def render_text(plan: Plan, stream: TextIO, *, verbose: int = 0, colour: bool = True,
                nothing: str = "No changes. The server matches the manifests.") -> None:
    paint = Painter(use_colour(stream, colour))
    shown = 0
    grouped = any(room.server for room in plan.rooms)  # one run spans servers: the plan groups by server
    current: str | None = None
    for room in plan.rooms:
        if room.status in ("in-sync", "absent") and not verbose:
            continue
        if grouped and room.server != current:
            current = room.server
            stream.write(f"Server {current or '(default)'}:\n\n")
        shown += room.status != "suspended"
        marker = MARKERS[room.status]
        stream.write(paint(marker, _header(room)) + "\n")
        for action in room.actions:
            for line_marker, text in _action_lines(action):
                stream.write("    " + paint(line_marker, f"{line_marker} {text}") + "\n")
        for drift in room.drifts:
            stream.write("    " + paint("!", _drift_line(drift)) + "\n")
        if room.error:
            stream.write("    " + paint("?", f"? {room.error}") + "\n")
        if room.not_verifiable:
            stream.write("    " + paint("#", f"# not verifiable on a live room: {', '.join(room.not_verifiable)}") + "\n")
        stream.write("\n")
    if not shown:
        stream.write(f"{nothing}\n\n")
    stream.write(summary_line(plan) + "\n")
    unverifiable = [r for r in plan.rooms if r.not_verifiable and r.status in ("in-sync", "absent")]
    if unverifiable and not verbose:
        listed = "; ".join(f"{r.name} ({', '.join(r.not_verifiable)})" for r in unverifiable)
        stream.write(paint("#", f"Not verifiable on a live room, applied at creation only: {listed}") + "\n")
    if plan.unmanaged:
        stream.write(f"{plan.unmanaged} room(s) on the server are not managed by these manifests (left alone).\n")


def _action_json(action: Action) -> dict[str, Any]:
    return {
        "type": str(action.kind),
        "room": action.room,
        "target": action.target or None,
        "disconnects": action.disconnects,
        "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in action.changes],
        "source": action.source or None,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": JSON_FORMAT_VERSION,
        "changes_pending": plan.has_changes,
        "summary": plan.counts(),
        "rooms": [
            {
                "name": room.name,
                "kind": room.kind,
                "server": room.server or None,
                "source": room.source or None,
                "status": room.status,
                "sid": room.sid or None,
                "policies": list(room.policies),
                "actions": [_action_json(a) for a in room.actions],
                "drift": [
                    {"field": d.field, "observed": d.observed, "desired": d.desired, "reason": str(d.reason),
                     "detail": d.detail, "source": d.source or None}
                    for d in room.drifts
                ],
                "not_verifiable": list(room.not_verifiable),
                "error": room.error or None,
            }
            for room in plan.rooms
        ],
    }


def results_json(plan: Plan, results: Results) -> dict[str, Any]:
    out = plan_json(plan)
    out["results"] = [
        {**_action_json(r.action), "ok": r.ok, "error": r.error or None, "sid": r.sid or None, "note": r.note or None}
        for r in results.results
    ]
    out["failed"] = len(results.failed)
    return out


def result_line(result: ActionResult) -> str:
    action = result.action
    what = f"{action.kind} {fmt(action.room)}" + (f" [{action.target}]" if action.target else "")
    if result.ok:
        extra = f" (sid {result.sid})" if result.sid else (f" ({result.note})" if result.note else "")
        return f"{what}: done{extra}"
    return f"{what}: FAILED: {result.error}"


class Progress:
    """A one-line progress indicator on a TTY, shown only once a run takes more than a few seconds."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, after: float = 2.0, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled and stream.isatty() and total > 0
        self.started = time.monotonic()
        self.after = after
        self.done = 0
        self.shown = False

    def tick(self) -> None:
        self.done += 1
        if self.enabled and time.monotonic() - self.started >= self.after:
            self.shown = True
            self.stream.write(f"\r[{self.done}/{self.total}] applying...")
            self.stream.flush()

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
