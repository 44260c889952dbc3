"""Runs `roomctl sandbox serve` as a real process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class SandboxServer:
    url: str
    process: subprocess.Popen[bytes]

    def test_api(self, verb: str, path: str, body: Any = None) -> Any:
        response = httpx.request(verb, f"{self.url}/sandbox/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.test_api("POST", "reset")
        self.test_api("PUT", "options", {"routed_delay": 0, "enable_remote_unmute": False, "auto_create": True,
                                         "pnm_ignore_false_defaults": True, "pnm_end_lock_seconds": 1.0})

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.test_api("GET", "requests")["counts"]
        return counts

    def counts_by_room(self) -> dict[str, dict[str, int]]:
        """Per room name, how many requests of each method named it."""
        by_room: dict[str, dict[str, int]] = self.test_api("GET", "requests")["by_room"]
        return by_room


@contextmanager
def run_sandbox(*extra: str) -> Iterator[SandboxServer]:
    port = free_port()
    env = dict(os.environ)
    env.pop("LIVEKIT_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "serve", "--port", str(port), "-q", *extra],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("sandbox did not start")
        time.sleep(0.05)
    try:
        yield SandboxServer(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
