"""Shared by the benchmarks: sandboxes on free ports, generated manifests, whole-process timing."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "devkey"
API_SECRET = "secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SandboxProc:
    url: str
    proc: subprocess.Popen[bytes]

    def requests(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/sandbox/requests", timeout=30) as response:
            counts: dict[str, int] = json.load(response)["counts"]
        return {k.split(".", 1)[-1]: v for k, v in counts.items()}

    def reset_requests(self) -> None:
        request = urllib.request.Request(self.url + "/sandbox/requests", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()

    def test_api(self, path: str, body: object, method: str = "POST") -> object:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)


@contextmanager
def sandbox(*extra: str) -> Iterator[SandboxProc]:
    """A fresh `roomctl sandbox serve` (its own process and port) for one contender."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "sandbox", "serve", "--port", str(port), "-q", *extra],
                            cwd=ROOT)
    try:
        started = time.monotonic()
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() - started > 30:
                    raise SystemExit("the sandbox did not start") from None
                time.sleep(0.02)
        yield SandboxProc(url, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def write_rooms(folder: Path, count: int, prefix: str = "room", per_file: int = 100, metadata: str = "v1") -> Path:
    """`count` Room manifests, `per_file` documents a file, the way a repository of rooms looks."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    for start in range(0, count, per_file):
        docs = []
        for i in range(start, min(count, start + per_file)):
            docs.append(
                "apiVersion: roomctl.dev/v1alpha1\nkind: Room\n"
                f"metadata: {{name: {prefix}-{i:05d}, namespace: bench}}\n"
                "spec:\n  emptyTimeout: 3600\n  departureTimeout: 60\n  maxParticipants: 50\n"
                f"  metadata: {{team: bench, index: {i}, rev: {metadata}}}\n"
            )
        (folder / f"rooms-{start // per_file:04d}.yaml").write_text("---\n".join(docs), encoding="utf-8")
    return folder


@dataclass
class Run:
    """One whole process: wall time, CPU (user + system) and peak RSS from wait4."""

    wall: float
    cpu: float
    rss_mb: float
    rc: int
    stdout: str = ""
    stderr: str = ""
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def run_process(argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    merged = {**os.environ, **(env or {})}
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-out-{os.getpid()}"
    with open(out_path, "w+b") as out, open(str(out_path) + ".err", "w+b") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=merged, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    os.unlink(out_path)
    os.unlink(str(out_path) + ".err")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, stdout, stderr)


def roomctl(*args: str, url: str, cwd: Path) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args, "--url", url]


def server_env(url: str) -> dict[str, str]:
    return {"LIVEKIT_URL": url, "LIVEKIT_API_KEY": API_KEY, "LIVEKIT_API_SECRET": API_SECRET}


def machine() -> str:
    load = os.getloadavg()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
