"""End to end on a real cluster (kind, k3d, a dev cluster): runs only when KUBECONFIG points at one.

    kind create cluster            # or: k3d cluster create roomctl
    KUBECONFIG=~/.kube/config python -m pytest tests/k8s/test_e2e_cluster.py -v

Applies both CRDs (a real API server then checks their schemas and CEL rules), runs `roomctl operator`
locally against the cluster with the sandbox as LiveKit and plugNmeet, applies a Room and a
PlugNmeetRoom in namespace `default`, waits for Ready=True, deletes them and checks both rooms are
gone from their servers. Needs rights to create CRDs; leaves the CRDs installed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.k8s.cluster import PNM_KEY, PNM_SECRET, server_rooms
from tests.plugnmeet.test_plugnmeet_rooms import active
from tests.support.helm import tool_binary
from tests.support.server import SandboxServer

ROOT = Path(__file__).resolve().parents[2]
KUBECONFIG = os.environ.get("KUBECONFIG", "")
pytestmark = pytest.mark.skipif(not KUBECONFIG or not Path(KUBECONFIG).exists(),
                                reason="needs a real cluster: set KUBECONFIG (kind, k3d, ...) to run")

ROOM = """apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: roomctl-e2e, namespace: default}
spec: {emptyTimeout: 600, metadata: e2e}
"""
PNM_ROOM = """apiVersion: roomctl.dev/v1alpha1
kind: PlugNmeetRoom
metadata: {name: roomctl-e2e-pnm, namespace: default}
spec:
  emptyTimeout: 600
  metadata: {roomTitle: roomctl e2e, welcomeMessage: hello}
"""


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary, why = tool_binary("kubectl")
    if binary is None:
        pytest.skip(why)
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, check=check, timeout=120)


def wait_until(done: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def test_the_api_server_applies_the_crd_rules() -> None:
    kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in ("rooms.roomctl.dev", "plugnmeetrooms.roomctl.dev"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    # The example classroom (moved to namespace default) is accepted as it is.
    classroom = yaml.safe_load((ROOT / "examples" / "classroom.yaml").read_text())
    classroom["metadata"]["namespace"] = "default"
    kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(classroom))
    # Room ids plugNmeet would refuse are refused by the API server already (pattern and CEL).
    for room_id, message in (("a.b", "should match"), ("user_1", "reserved by plugNmeet")):
        bad = PNM_ROOM.replace("emptyTimeout: 600", f"roomId: {room_id}\n  emptyTimeout: 600")
        refused = kubectl("apply", "--dry-run=server", "-f", "-", stdin=bad, check=False)
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr


def test_room_and_plugnmeet_room_become_ready_and_are_cleaned_up(sandbox: SandboxServer) -> None:
    kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in ("rooms.roomctl.dev", "plugnmeetrooms.roomctl.dev"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    env = dict(os.environ, LIVEKIT_URL=sandbox.url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret",
               PLUGNMEET_URL=sandbox.url, PLUGNMEET_API_KEY=PNM_KEY, PLUGNMEET_API_SECRET=PNM_SECRET)
    operator = subprocess.Popen([sys.executable, "-m", "reconciler", "operator", "--namespace", "default",
                                 "--liveness", "", "--metrics-port", "0", "--sync-interval", "5"], env=env)
    try:
        kubectl("apply", "-f", "-", stdin=ROOM)
        kubectl("apply", "-f", "-", stdin=PNM_ROOM)
        kubectl("wait", "--for=condition=Ready", "room/roomctl-e2e", "--timeout=60s")
        kubectl("wait", "--for=condition=Ready", "plugnmeetroom/roomctl-e2e-pnm", "--timeout=60s")
        status = json.loads(kubectl("get", "room", "roomctl-e2e", "-o", "json").stdout)["status"]
        assert status["roomSid"].startswith("RM_") and status["observedGeneration"] == 1
        pnm = json.loads(kubectl("get", "plugnmeetroom", "roomctl-e2e-pnm", "-o", "json").stdout)
        assert "roomctl.dev/finalizer" in pnm["metadata"]["finalizers"]
        assert pnm["status"]["roomSid"] == active(sandbox)["roomctl-e2e-pnm"]["sid"]
        table = kubectl("get", "livekit", "-n", "default").stdout  # the category lists both kinds
        assert "roomctl-e2e " in table and "roomctl-e2e-pnm" in table and "SYNCED" in table, table

        kubectl("delete", "room", "roomctl-e2e", "--timeout=60s")
        kubectl("delete", "plugnmeetroom", "roomctl-e2e-pnm", "--timeout=60s")
        wait_until(lambda: "roomctl-e2e" not in asyncio.run(server_rooms(sandbox.url)), "the room outlived its object")
        wait_until(lambda: "roomctl-e2e-pnm" not in active(sandbox), "the plugNmeet room outlived its object")
    finally:
        operator.terminate()
        operator.wait(timeout=30)
