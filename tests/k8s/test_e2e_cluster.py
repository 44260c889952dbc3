"""End to end on a real cluster (kind, k3d, any): runs only when KUBECONFIG points at one.

    KUBECONFIG=~/.kube/config python -m pytest tests/k8s/test_e2e_cluster.py

Applies the CRDs, runs `roomctl operator` locally against the cluster with the sandbox as LiveKit,
applies an example Room, waits for Ready=True, deletes it and checks the room is gone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.k8s.cluster import server_rooms
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


def kubectl(*args: str, stdin: str | None = None) -> str:
    binary, why = tool_binary("kubectl")
    if binary is None:
        pytest.skip(why)
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, check=True).stdout


def test_room_becomes_ready_and_is_cleaned_up(sandbox: SandboxServer) -> None:
    kubectl("apply", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/rooms.roomctl.dev", "--timeout=60s")
    env = dict(os.environ, LIVEKIT_URL=sandbox.url, LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret")
    operator = subprocess.Popen([sys.executable, "-m", "reconciler", "operator", "--namespace", "default",
                                 "--liveness", "", "--metrics-port", "0", "--sync-interval", "5"], env=env)
    try:
        kubectl("apply", "-f", "-", stdin=ROOM)
        kubectl("wait", "--for=condition=Ready", "room/roomctl-e2e", "--timeout=60s")
        status = json.loads(kubectl("get", "room", "roomctl-e2e", "-o", "json"))["status"]
        assert status["roomSid"].startswith("RM_") and status["observedGeneration"] == 1
        kubectl("delete", "room", "roomctl-e2e", "--timeout=60s")
        deadline = time.monotonic() + 30
        while "roomctl-e2e" in asyncio.run(server_rooms(sandbox.url)):
            assert time.monotonic() < deadline, "the room outlived its object"
            time.sleep(0.5)
    finally:
        operator.terminate()
        operator.wait(timeout=30)
