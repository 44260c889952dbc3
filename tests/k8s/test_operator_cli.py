"""`roomctl operator` as a user starts it, a real subprocess: without a usable cluster configuration it
fails fast with one line and exit 1 (kopf alone would retry its login forever, a traceback each time)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import roomctl
from tests.support.server import free_port

CASES = {
    "no configuration at all": (None, "no Kubernetes configuration: not in a cluster"),
    "KUBECONFIG names a missing file": ("missing", "cannot read the kubeconfig"),
    "kubeconfig is not YAML": ("clusters: [\n", "not valid YAML (line 2)"),
    "current context not defined": ("apiVersion: v1\nkind: Config\ncurrent-context: prod\n",
                                    "context, cluster or user 'prod' not found"),
    "no current context": ("apiVersion: v1\nkind: Config\nclusters: []\n", "Current context is not set"),
    "a list, not a mapping": ("- 1\n- 2\n", "malformed"),
    "cluster without a server": ("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                                 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                                 "clusters: [{name: k, cluster: {}}]\nusers: [{name: u, user: {token: t}}]\n",
                                 "has no server"),
}


def _env(case: str, tmp_path: Path) -> dict[str, str]:
    content = CASES[case][0]
    env = {"HOME": str(tmp_path), "KUBECONFIG": ""}
    if content == "missing":
        env["KUBECONFIG"] = str(tmp_path / "nope" / "config")
    elif content is not None:
        (tmp_path / "config").write_text(content)
        env["KUBECONFIG"] = str(tmp_path / "config")
    return env


@pytest.mark.parametrize("case", ["no configuration at all", "kubeconfig is not YAML"])
def test_no_usable_cluster_config_is_one_line_and_exit_1(case: str, tmp_path: Path) -> None:
    expected = CASES[case][1]
    env = _env(case, tmp_path)
    result = roomctl(None, "operator", "--liveness", "", "--metrics-port", "0", process=True, **env)  # a real process
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert "token: t" not in result.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_unusable_config_is_named_in_one_line(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check in process, for every shape of broken configuration."""
    from reconciler.operator.handlers import kube_config_problem

    for key, value in _env(case, tmp_path).items():
        monkeypatch.setenv(key, value)
    problem = kube_config_problem()
    assert problem is not None and CASES[case][1] in problem and "\n" not in problem
    (tmp_path / "ok").write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                                 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                                 "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
                                 "users: [{name: u, user: {token: t}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "ok"))
    assert kube_config_problem() is None


def test_an_unreachable_api_server_is_one_clear_line_then_short_retries(tmp_path: Path) -> None:
    """A kubeconfig whose server is a closed port: the operator keeps retrying (a controller waits for
    its cluster), the first failure is one roomctl line, kopf's retries are short, the token never shown."""
    port = free_port()
    (tmp_path / "config").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        f"clusters: [{{name: k, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: tok-do-not-print}}]\n")
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "config"),
           "LIVEKIT_URL": "http://127.0.0.1:9", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"}
    log = tmp_path / "operator.log"
    with log.open("wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "reconciler", "operator", "--liveness", "",
                                    "--metrics-port", "0"], env=env, stdout=handle, stderr=handle)
    try:
        deadline = time.monotonic() + 30
        while log.read_text().count("Request attempt") < 3 and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()  # still retrying, not exiting
            time.sleep(0.1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    lines = log.read_text().splitlines()
    assert lines[0] == (f"WARNING roomctl.operator: cannot reach the Kubernetes API server at http://127.0.0.1:{port}: "
                        "ClientConnectorError (ConnectionRefusedError); retrying until it answers or roomctl is "
                        "stopped (check the kubeconfig's server and the cluster)"), lines
    assert sum("cannot reach the Kubernetes API server" in line for line in lines) == 1
    retries = [line for line in lines if "Request attempt" in line]
    assert len(retries) >= 3 and all(len(line) < 160 for line in retries), retries
    assert all("ConnectionKey" not in line and "proxy_headers_hash" not in line for line in lines)
    assert "tok-do-not-print" not in log.read_text()
