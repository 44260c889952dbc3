"""Egress credentials (S3/GCP/Azure/AliOSS keys, webhook signing keys, RTMP stream URLs) reach the
server but never the plan, the JSON output or the logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.main import main

ROOM = """\
apiVersion: roomctl.dev/v1alpha1
kind: Room
metadata: {name: recorded}
spec:
  egress:
    room:
      streamOutputs: [{protocol: RTMP, urls: ["rtmp://live.example.com/app/STREAMKEY1"]}]
      webhooks: [{url: "https://hooks.example.com", signingKey: SIGNKEY2}]
    tracks:
      filepath: "rec/{track_id}"
      s3: {accessKey: AKIAEXAMPLE, secret: S3SECRET3, sessionToken: TOKEN4, bucket: b,
           proxy: {url: "http://proxy:3128", username: u, password: PROXYPW5}}
"""
SECRETS = ("STREAMKEY1", "SIGNKEY2", "S3SECRET3", "TOKEN4", "PROXYPW5")


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "PLUGNMEET_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "recorded.yaml"
    path.write_text(ROOM)
    return path


def test_egress_credentials_are_redacted_in_every_output(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = ""
    for args in (["diff", str(manifest)], ["diff", "-o", "json", str(manifest)], ["apply", "-vv", str(manifest)]):
        assert main(args) in (0, 2)
        out, err = capsys.readouterr()
        shown += out + err
    assert "(redacted)" in shown and "AKIAEXAMPLE" in shown and "rec/{track_id}" in shown
    leaked = [s for s in SECRETS if s in shown]
    assert not leaked, leaked
    state = (manifest.parent / ".roomctl" / "sandbox.json").read_text()
    assert all(s in state for s in ("S3SECRET3", "SIGNKEY2")), "the server still gets the real values"


def test_a_saved_plan_holds_no_credentials_and_still_applies(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The plan file (a CI artifact) holds the requests redacted as `-o json` shows them; `apply PLANFILE`
    compares them with the fresh plan redacted alike and sends the fresh requests, real values included."""
    plan_file = manifest.parent / "plan.json"
    assert main(["diff", str(manifest), "--out", str(plan_file)]) == 2
    text = plan_file.read_text()
    assert "(redacted)" in text and "AKIAEXAMPLE" in text
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, leaked
    capsys.readouterr()
    assert main(["apply", str(plan_file)]) == 0
    out, err = capsys.readouterr()
    assert "stale" not in err and not [s for s in SECRETS if s in out + err]
    state = (manifest.parent / ".roomctl" / "sandbox.json").read_text()
    assert all(s in state for s in SECRETS), "the server gets the real values, not (redacted)"
