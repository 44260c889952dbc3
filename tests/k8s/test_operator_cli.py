"""`roomctl operator` as a user starts it, a real subprocess: without a usable cluster configuration it
fails fast with one line and exit 1 (kopf alone would retry its login forever, a traceback each time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import roomctl

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
