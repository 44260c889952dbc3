"""Issue 9.6: each way of failing to talk to a server is its own one-line error naming the server
(userinfo removed) and the cause; exit 1; no traceback. Over real sockets: the sandbox process, a
closed port, a TLS server with a throwaway CA, servers that answer web pages or nothing."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from reconciler.cli.main import main
from tests.support.rawhttp import raw_server
from tests.support.server import SandboxServer, free_port

ROOM = "apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {name: lines-1}\nspec: {}\n"
PASSWORD = "hunter2-userinfo"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with raw_server("script", [(200, b'{"rooms":[]}')], tls=context) as server:
        yield server.url


def with_userinfo(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://admin:{PASSWORD}@{rest}"


def run(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *extra: str, secret: str = "secret") -> tuple[int, str]:
    manifest = tmp_path / "room.yaml"
    manifest.write_text(ROOM)
    monkeypatch.setenv("LIVEKIT_URL", url)
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", secret)
    # A short deadline keeps the retries of refused/DNS/timeout from costing the suite seconds (2.5 s:
    # with 1.5 s a loaded machine could spend it all before the first retry was sent).
    code = main(["diff", "-vv", "--timeout", "0.5", "--deadline", "2.5", *extra, str(manifest)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert PASSWORD not in text, "URL userinfo leaked into the output"
    assert "Traceback" not in text
    return code, out.err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_each_failure_is_one_distinct_line(sandbox: SandboxServer, tls_server: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    sandbox_host = sandbox.url.split("://")[1]
    tls_host = tls_server.split("://")[1]
    dead = f"127.0.0.1:{free_port()}"
    cases: dict[str, tuple[str, str, str]] = {}
    with raw_server("html") as html, raw_server("silent") as silent:
        html_host = html.url.split("://")[1]
        silent_host = silent.url.split("://")[1]
        cases = {
            # name: (url, what the line must say, the server as it must be named)
            "refused": (f"http://{dead}", "connection refused", f"http://{dead}"),
            "dns": ("http://roomctl-no-such-host.invalid:7880", "cannot resolve the host",
                    "http://roomctl-no-such-host.invalid:7880"),
            "tls-certificate": (tls_server, "TLS certificate of", f"https://{tls_host}"),
            "tls-wrong-protocol": (f"https://{sandbox_host}", "does not speak TLS", f"https://{sandbox_host}"),
            "timeout": (f"http://{silent_host}", "timed out", f"http://{silent_host}"),
            "wrong-path": (f"{sandbox.url}/livekit/api", "HTTP 404", f"{sandbox.url}/livekit/api"),
            "not-json": (f"http://{html_host}", "text/html, not JSON", f"http://{html_host}"),
            "port-out-of-range": ("http://127.0.0.1:99999", "port out of range", "http://127.0.0.1:99999"),
            "bad-secret": (sandbox.url, "authentication failed (HTTP 401)", sandbox.url),
        }
        lines: dict[str, str] = {}
        for name, (url, says, named) in cases.items():
            code, stderr = run(with_userinfo(url), tmp_path, monkeypatch, capsys,
                               secret="wrong" if name == "bad-secret" else "secret")
            found = error_lines(stderr)
            assert code == 1, (name, stderr)
            assert len(found) == 1, (name, found)
            assert says in found[0] and named in found[0], (name, found[0])
            lines[name] = found[0]
    # Distinct: no two causes read alike once the server's address is taken out.
    shapes = {name: line.replace(cases[name][2], "<server>") for name, line in lines.items()}
    assert len(set(shapes.values())) == len(shapes), shapes


def test_ca_file_trusts_a_private_ca(tls_server: str, ca: trustme.CA, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    code, stderr = run(with_userinfo(tls_server), tmp_path, monkeypatch, capsys, "--ca-file", str(ca_file))
    assert code == 2, stderr  # it talked: the room is to be created
    assert error_lines(stderr) == []


def test_insecure_skip_tls_verify_works_and_says_so_loudly(tls_server: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, stderr = run(tls_server, tmp_path, monkeypatch, capsys, "--insecure-skip-tls-verify")
    assert code == 2, stderr
    assert "warning: TLS certificate verification is OFF (--insecure-skip-tls-verify)" in stderr


def test_an_unreadable_ca_file_is_one_line(tls_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, stderr = run(tls_server, tmp_path, monkeypatch, capsys, "--ca-file", str(tmp_path / "missing.pem"))
    assert code == 1
    assert error_lines(stderr) == [f"error: cannot use --ca-file {tmp_path / 'missing.pem'}: No such file or directory"]


@pytest.mark.parametrize("flag", ["--timeout", "--deadline"])
@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "soon"])
def test_timeouts_must_be_positive_finite_seconds(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["diff", flag, value, "x.yaml"])
    assert "seconds" in capsys.readouterr().err


def test_a_web_page_where_plugnmeet_should_be_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pnm.yaml").write_text("apiVersion: roomctl.dev/v1alpha1\nkind: PlugNmeetRoom\n"
                                       "metadata: {name: class-1}\nspec: {metadata: {roomTitle: Physics}}\n")
    with raw_server("html") as html:
        monkeypatch.delenv("LIVEKIT_URL", raising=False)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("PLUGNMEET_URL", with_userinfo(html.url))
        monkeypatch.setenv("PLUGNMEET_API_KEY", "plugnmeet")
        monkeypatch.setenv("PLUGNMEET_API_SECRET", "secret")
        code = main(["diff", "--deadline", "5", str(tmp_path / "pnm.yaml")])
    out = capsys.readouterr()
    assert code == 1 and PASSWORD not in out.out + out.err and "Traceback" not in out.err
    assert error_lines(out.err) == [f"error: {html.url} answered HTTP 200 with text/html, not JSON: is this a "
                                    "plugNmeet server? (check the URL)"]
