"""Findings of a newcomer's first run through the README (a fresh clone): secrets on the command
line, tracebacks on a port in use, silently ignored flags, usage messages."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import roomctl
from tests.support.server import SandboxServer

SECRET = "Zk9sUperSecretValue123"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def taken_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.parametrize("args", [
    ("diff", "{ex}", "--api-secret", SECRET),
    ("diff", "{ex}", f"--api-secret={SECRET}"),
    ("apply", "--api-secret", SECRET, "{ex}"),
    ("validate", "{ex}", "--api-secret", SECRET),
    ("token", "r", "id", "-f", "{ex}", "--api-secret", SECRET),
    ("export", "--api-secret", SECRET),
])
def test_an_api_secret_flag_is_refused_without_showing_it(sandbox: SandboxServer, args: tuple[str, ...]) -> None:
    """argparse's prefix matching once read `--api-secret X` as `--api-secret-file X` and printed X."""
    result = roomctl(sandbox, *(a.format(ex=EXAMPLES) for a in args), process=True)
    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr
    assert "--api-secret-file" in result.stderr and "LIVEKIT_API_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert sandbox.counts() == {}


def test_no_abbreviated_flags_and_unknown_flag_values_are_not_echoed(sandbox: SandboxServer) -> None:
    result = roomctl(sandbox, "diff", str(EXAMPLES), "--api-secret-f", SECRET)
    assert result.returncode == 1 and SECRET not in result.stderr and "--api-secret-f" in result.stderr
    result = roomctl(sandbox, "diff", str(EXAMPLES), "--token", SECRET)
    assert result.returncode == 1 and SECRET not in result.stderr and "--token" in result.stderr
    # a secret file that cannot be read: its path is not echoed either
    result = roomctl(sandbox, "diff", str(EXAMPLES), "--api-secret-file", f"/nonexistent/{SECRET}")
    assert result.returncode == 1 and SECRET not in result.stderr and "--api-secret-file" in result.stderr


def test_an_unknown_flag_prints_the_subcommand_usage() -> None:
    result = roomctl(None, "validate", str(EXAMPLES), "-o", "json")
    assert result.returncode == 1
    assert result.stderr.startswith("usage: roomctl validate")
    assert "unrecognized arguments: -o" in result.stderr


def test_did_you_mean_for_a_mistyped_command_and_sandbox_names_its_subcommands() -> None:
    result = roomctl(None, "dif", "x")
    assert result.returncode == 1 and "did you mean 'diff'" in result.stderr
    result = roomctl(None, "sandbox")
    assert result.returncode == 1 and "sandbox_command" not in result.stderr and "serve" in result.stderr.splitlines()[-1]


def test_serve_on_a_port_in_use_is_one_line(taken_port: int, tmp_path: Path) -> None:
    result = roomctl(None, "serve", str(EXAMPLES), "--listen", f"127.0.0.1:{taken_port}", "--interval", "1h",
                     cwd=tmp_path, process=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: --listen 127.0.0.1:{taken_port}: address already in use"
    assert "Traceback" not in result.stderr and "webhooks at" not in result.stderr
    assert not (tmp_path / ".roomctl" / "sandbox.json").exists()  # nothing was applied before the bind failed


def test_sandbox_serve_on_a_port_in_use_is_one_line_and_never_says_serving(taken_port: int, tmp_path: Path) -> None:
    result = roomctl(None, "sandbox", "serve", "--host", "127.0.0.1", "--port", str(taken_port), cwd=tmp_path,
                     process=True)
    assert result.returncode == 1
    assert result.stderr == f"error: --port 127.0.0.1:{taken_port}: address already in use\n"


@pytest.mark.parametrize(("flags", "message"), [
    (("--error-rate", "2"), "--error-rate 2: give a share between 0 and 1"),
    (("--latency-ms", "10:abc"), "--latency-ms '10:abc'"),
    (("--rate-limit", "x/min"), "--rate-limit 'x/min'"),
])
def test_sandbox_flag_errors_name_the_flag(flags: tuple[str, str], message: str, tmp_path: Path) -> None:
    result = roomctl(None, "sandbox", "serve", "--port", "0", *flags, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(f"error: {message}")


def test_serve_listen_port_out_of_range_says_so() -> None:
    result = roomctl(None, "serve", str(EXAMPLES), "--listen", "127.0.0.1:99999")
    assert result.returncode == 1 and "port 99999 is out of range" in result.stderr


def test_serve_has_no_deadline_flag() -> None:
    result = roomctl(None, "serve", str(EXAMPLES), "--deadline", "5")
    assert result.returncode == 1 and "unrecognized arguments: --deadline" in result.stderr
