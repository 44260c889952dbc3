"""Desired state: `kind: RoomPolicy` — participant rules, agents and room metadata for every live
room whose name matches, declared or not (README "RoomPolicy").

A policy reuses the Room's participant-rule and agent shapes unchanged, so a rule means the same
thing wherever it is written. Policies never create or delete rooms.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from .base import MAX_AGENTS, MAX_NAME_BYTES, JsonText, ObjectMeta, ServerRef, Strict
from .room import AgentDispatchSpec, ParticipantRule, unique_agent_names

# What a policy may leave unenforced: its roomMetadata, its agents, its participant rules.
PolicyIgnorable = Literal["metadata", "agents", "participants"]
MAX_GLOBS = 64
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class RoomPolicyPolicy(Strict):
    observe_only: bool = False
    ignore: list[PolicyIgnorable] = Field(default_factory=list)


Glob = Annotated[str, Field(min_length=1, max_length=1024)]


class RoomPolicySpec(Strict):
    # `exclude` is validated first so that an error about `rooms` can name the exclude that hides it.
    exclude: Annotated[list[Glob], Field(max_length=MAX_GLOBS)] = Field(default_factory=list)
    rooms: Annotated[list[Glob], Field(min_length=1, max_length=MAX_GLOBS)]
    priority: Annotated[int, Field(strict=True, ge=INT32_MIN, le=INT32_MAX)] = 0
    participants: list[ParticipantRule] = Field(default_factory=list)
    agents: Annotated[list[AgentDispatchSpec], Field(max_length=MAX_AGENTS)] = Field(default_factory=list)
    room_metadata: JsonText | None = None
    policy: RoomPolicyPolicy = Field(default_factory=RoomPolicyPolicy)
    server_ref: ServerRef | None = None  # operator: the LiveKit server whose rooms it governs

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, value: list[AgentDispatchSpec]) -> list[AgentDispatchSpec]:
        unique_agent_names(value)
        return value

    @field_validator("rooms")
    @classmethod
    def _can_match(cls, rooms: list[str], info: ValidationInfo) -> list[str]:
        """A glob that can match no room name is a mistake, never a silent no-op."""
        exclude = info.data.get("exclude") or []
        for glob in rooms:
            if min_length(glob) > MAX_NAME_BYTES:
                raise ValueError(f"glob {glob!r} needs more than {MAX_NAME_BYTES} characters; "
                                 "no room name is that long")
            if not can_match(glob, exclude):
                hint = "no name matches it" if not can_match(glob, []) else "exclude covers every name it matches"
                raise ValueError(f"glob {glob!r} can match no room: {hint}")
        return rooms

    def matches(self, room: str) -> bool:
        return any(fnmatchcase(room, g) for g in self.rooms) and not any(fnmatchcase(room, g) for g in self.exclude)


class RoomPolicyManifest(Strict):
    api_version: Literal["roomctl.dev/v1alpha1"]
    kind: Literal["RoomPolicy"]
    metadata: ObjectMeta
    spec: RoomPolicySpec


@dataclass(frozen=True)
class DesiredPolicy:
    """One RoomPolicy and where it was declared (a file:line, or a custom resource)."""

    manifest: RoomPolicyManifest
    file: str
    line: int

    @property
    def name(self) -> str:
        return self.manifest.metadata.name

    @property
    def spec(self) -> RoomPolicySpec:
        return self.manifest.spec

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def order(self) -> tuple[int, str, str]:
        """Lower priority first; ties broken by name (then namespace, in a cluster)."""
        return (self.spec.priority, self.name, self.manifest.metadata.namespace or "")

    def matches(self, room: str) -> bool:
        return self.spec.matches(room)


# ---- glob analysis ----------------------------------------------------------------------------
# fnmatch globs are regular languages; "can this glob match a name that no exclude matches?" is
# answered exactly by exploring the product of their automata over a finite set of representative
# characters (every character any glob mentions, its successor, and one character none mentions).
# Tokenising follows fnmatch.translate, and a class is tested with fnmatchcase itself, so the
# answer agrees with the matcher by construction.


def _tokens(glob: str) -> list[str]:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        i += 1
        if c == "[":
            j = i
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j < n:
                out.append(glob[i - 1 : j + 1])
                i = j + 1
                continue
        if c == "*" and out and out[-1] == "*":
            continue
        out.append(c)
    return out


def min_length(glob: str) -> int:
    return sum(1 for t in _tokens(glob) if t != "*")


def _step(tokens: list[str], states: frozenset[int], char: str) -> frozenset[int]:
    nxt: set[int] = set()
    for s in states:
        if s == len(tokens):
            continue
        token = tokens[s]
        if token == "*":
            nxt.add(s)
        elif token == "?" or (len(token) > 1 and fnmatchcase(char, token)) or token == char:
            nxt.add(s + 1)
    return _closure(tokens, nxt)


def _closure(tokens: list[str], states: set[int] | frozenset[int]) -> frozenset[int]:
    out = set(states)
    for s in sorted(states):
        while s < len(tokens) and tokens[s] == "*":
            s += 1
            out.add(s)
    return frozenset(out)


def can_match(glob: str, excludes: list[str]) -> bool:
    """True when some string matches `glob` and none of `excludes`."""
    automata = [_tokens(g) for g in (glob, *excludes)]
    mentioned = {c for g in (glob, *excludes) for c in g}
    alphabet = sorted(mentioned | {chr(ord(c) + 1) for c in mentioned} | {"\x00"})
    start = tuple(_closure(t, {0}) for t in automata)
    seen = {start}
    queue = [start]
    while queue:
        current = queue.pop()
        accepted = [len(t) in s for t, s in zip(automata, current, strict=True)]
        if accepted[0] and not any(accepted[1:]):
            return True
        for char in alphabet:
            nxt = tuple(_step(t, s, char) for t, s in zip(automata, current, strict=True))
            if nxt[0] and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return False
