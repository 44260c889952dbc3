"""The fault soak of issue 9.1, shared by tests/net/test_fault_soak.py and bench/faults.py.

A real `roomctl sandbox serve`; `rooms` rooms declared, `busy` of them already live with two
participants each and an agent declared; every Twirp call then meets the issue's fault mix (503s,
resets, 429 + Retry-After 1, latency) plus lost answers (the server acted, the answer was dropped).
`roomctl apply` runs until it exits 0 (at most `max_runs`); the outcome says after how many runs,
what the following diff said, and whether any agent ended with more or fewer than one dispatch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .server import SandboxServer
from .tokens import mint

FAULT_MIX: dict[str, Any] = {"error_rate": 0.20, "reset_rate": 0.05, "throttle_rate": 0.05, "retry_after": 1,
                             "latency_ms": 20, "lose_rate": 0.05}


@dataclass
class SoakOutcome:
    runs: list[int] = field(default_factory=list)  # exit code of each apply, in order
    seconds: list[float] = field(default_factory=list)
    converged_after: int | None = None  # 1-based run that exited 0
    diff_exit: int = -1
    dispatch_counts: dict[str, int] = field(default_factory=dict)  # busy room -> "bot" dispatches
    wrong_permissions: int = 0
    stderr_tail: str = ""
    errors: list[list[str]] = field(default_factory=list)  # each run's error lines


def write_manifests(folder: Path, rooms: int, busy: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for i in range(rooms):
        if i < busy:
            docs.append(
                f"apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {{name: soak-{i:04d}}}\nspec:\n"
                f"  metadata: busy-{i}\n  agents: [{{agentName: bot, metadata: m-{i}}}]\n"
                "  participants:\n"
                "    - identity: 'host-*'\n      attributes: {role: host}\n"
                "    - identity: 'guest-*'\n      permission: {canPublish: false, canPublishData: false}\n")
        else:
            docs.append(f"apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {{name: soak-{i:04d}}}\n"
                        f"spec: {{emptyTimeout: 600, metadata: quiet-{i}}}\n")
    (folder / "rooms.yaml").write_text("---\n".join(docs))


def join_participants(sandbox: SandboxServer, busy: int) -> None:
    with httpx.Client(timeout=10) as client:
        for i in range(busy):
            for identity in ("host-1", "guest-1"):
                token = mint({"sub": identity, "video": {"roomJoin": True, "room": f"soak-{i:04d}"}})
                client.post(f"{sandbox.url}/sandbox/join", json={"token": token}).raise_for_status()


def _twirp(client: httpx.Client, url: str, method: str, body: dict[str, Any], grant: dict[str, Any]) -> Any:
    service = "AgentDispatchService" if "Dispatch" in method else "RoomService"
    token = mint({"video": grant})
    response = client.post(f"{url}/twirp/livekit.{service}/{method}", json=body,
                           headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return response.json()


def check_state(sandbox: SandboxServer, busy: int, outcome: SoakOutcome) -> None:
    """Read back (faults off): one "bot" dispatch per busy room, guests' permissions applied."""
    with httpx.Client(timeout=10) as client:
        for i in range(busy):
            room = f"soak-{i:04d}"
            grant = {"roomAdmin": True, "room": room}
            dispatches = _twirp(client, sandbox.url, "ListDispatch", {"room": room}, grant).get("agent_dispatches", [])
            outcome.dispatch_counts[room] = sum(1 for d in dispatches if d.get("agent_name") == "bot")
            people = _twirp(client, sandbox.url, "ListParticipants", {"room": room}, grant).get("participants", [])
            for person in people:
                if person["identity"].startswith("guest-") and person.get("permission", {}).get("can_publish"):
                    outcome.wrong_permissions += 1


def run_soak(sandbox: SandboxServer, work: Path, *, rooms: int = 500, busy: int = 100, seed: int = 0,
             max_runs: int = 3, extra_args: tuple[str, ...] = ()) -> SoakOutcome:
    sandbox.reset()
    folder = work / f"soak-{seed}"
    write_manifests(folder, rooms, busy)
    join_participants(sandbox, busy)
    sandbox.test_api("PUT", "faults", {"methods": {"*": FAULT_MIX}, "seed": seed})
    env = dict(os.environ, LIVEKIT_URL=sandbox.url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret")
    outcome = SoakOutcome()
    for run in range(1, max_runs + 1):
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "reconciler", "apply", "-q", str(folder), *extra_args],
                                env=env, capture_output=True, text=True, timeout=600)
        outcome.seconds.append(time.monotonic() - started)
        outcome.runs.append(result.returncode)
        outcome.stderr_tail = result.stderr[-2000:]
        outcome.errors.append([line for line in result.stderr.splitlines() if line.startswith("error:")])
        if result.returncode == 0:
            outcome.converged_after = run
            break
    sandbox.test_api("DELETE", "faults")
    diff = subprocess.run([sys.executable, "-m", "reconciler", "diff", "-q", str(folder)], env=env,
                          capture_output=True, text=True, timeout=300)
    outcome.diff_exit = diff.returncode
    check_state(sandbox, busy, outcome)
    return outcome
