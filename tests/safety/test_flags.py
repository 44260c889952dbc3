"""Flags a hostile or careless caller can give (issue 9 items 8 and the "Tracebacks" list): each a
one-line error, exit 1, no traceback, no request."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from reconciler.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INTERVIEW = str(EXAMPLES / "interview.yaml")


@pytest.fixture(autouse=True)
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "PLUGNMEET_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def token(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["token", "-q", "interview-42", *args, "-f", INTERVIEW])
    except SystemExit as exc:  # argparse: a usage error
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out.strip(), err


def claims(text: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(text, options={"verify_signature": False})
    return decoded


def test_token_ttl_defaults_to_one_hour(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = token(capsys, "candidate-1")
    assert code == 0, err
    c = claims(out)
    assert int(c["exp"]) - int(c["nbf"]) == 3600  # type: ignore[call-overload]


@pytest.mark.parametrize("ttl", ["25h", "36500d", "2d"])
def test_token_ttl_over_a_day_needs_the_flag(ttl: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = token(capsys, "candidate-1", "--ttl", ttl)
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"error: --ttl {ttl!r} is longer than 24h; pass --allow-long-ttl for up to 365d"]


def test_token_long_ttl_with_the_flag_still_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = token(capsys, "candidate-1", "--ttl", "2d", "--allow-long-ttl")
    assert code == 0, err
    c = claims(out)
    assert int(c["exp"]) - int(c["nbf"]) == 2 * 86400  # type: ignore[call-overload]
    code, out, err = token(capsys, "candidate-1", "--ttl", "36500d", "--allow-long-ttl")
    assert (code, err.splitlines()) == (1, ["error: --ttl '36500d' is longer than 365d"])


@pytest.mark.parametrize("identity", ["", "   ", "a\nerror: forged", "x" * 257])
def test_token_refuses_empty_or_bad_identity(identity: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = token(capsys, identity)
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1 and err.startswith("error: the identity "), err


def test_token_kind_is_one_of_livekits(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = token(capsys, "candidate-1", "--kind", "ADMIN")
    assert (code, out) == (1, "")
    assert ("argument --kind: unknown participant kind 'ADMIN' "
            "(known: STANDARD, INGRESS, EGRESS, SIP, AGENT, CONNECTOR, BRIDGE)") in err
    code, out, err = token(capsys, "bot-1", "--kind", "agent")
    assert code == 0, err
    assert claims(out)["kind"] == "agent"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "soon"])
def test_timeout_must_be_finite_and_positive(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["diff", "--timeout", value, str(EXAMPLES / "town-hall.yaml")])
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert "argument --timeout" in err and "Traceback" not in err


@pytest.mark.parametrize("url, message", [
    ("http://user:hunter2@127.0.0.1:99999", "port out of range"),
    ("http://127.0.0.1:port", "http://127.0.0.1:port"),
    ("127.0.0.1:7880", "127.0.0.1:7880"),
])
def test_bad_server_url_is_a_usage_error_without_secrets(
    url: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """`net` owns the wording (backends/failures.py parse_server_url); pinned here: no traceback,
    exit 1, one line, no userinfo."""
    monkeypatch.setenv("LIVEKIT_URL", url)
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")
    assert main(["diff", str(EXAMPLES / "town-hall.yaml")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: LIVEKIT_URL: invalid server URL") and message in err, err
    assert "hunter2" not in err and "Traceback" not in err


def test_sandbox_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["sandbox", "serve", "--port", "99999"])
    assert caught.value.code == 1
    assert "argument --port: 99999 is out of range (0-65535)" in capsys.readouterr().err
