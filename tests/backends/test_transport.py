"""The aiohttp transport under httpx, over real sockets: answers, and each failure in its phase
(nothing sent vs the server may have acted), as the Twirp client's retry rules depend on it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from reconciler.auth import TokenSource
from reconciler.backends.errors import TransportFailure
from reconciler.backends.transport import HttpClient, env_proxy, http_transport
from reconciler.backends.twirp import RetryPolicy, TwirpClient
from tests.support.server import SandboxServer, free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[str]:
    """A raw TCP server on a free loopback port that misbehaves as `handler` says."""
    accepted = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.readuntil(b"\r\n\r\n")
        await handler(reader, writer)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = RST
    writer.transport.abort()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(5)
    writer.close()


async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"rooms")
    await writer.drain()
    writer.close()


def client(timeout: float = 2.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=http_transport("http://127.0.0.1", max_connections=4),
                             timeout=httpx.Timeout(timeout))


async def test_answers_and_reuses_connections(sandbox: SandboxServer) -> None:
    async with client() as http:
        for _ in range(3):
            response = await http.get(sandbox.url + "/")
            assert response.status_code == 200
            assert response.text == "OK"
        missing = await http.post(sandbox.url + "/twirp/livekit.RoomService/Nope", content=b"{}",
                                  headers={"Content-Type": "application/json"})
        assert missing.status_code in (401, 404)  # an HTTP answer, not a transport error


async def test_refused_connection_is_a_connect_error() -> None:
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{free_port()}/")


@pytest.mark.parametrize("handler", [reset, half_answer], ids=["reset", "cut-short"])
async def test_failure_after_sending_is_not_a_connect_error(handler: Handler) -> None:
    async with tcp_server(handler) as url, client() as http:
        with pytest.raises(httpx.TransportError) as caught:
            await http.post(url + "/", content=b"{}")
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)
    assert caught.value.__cause__ is not None  # the aiohttp/OS error underneath is kept


async def test_no_answer_is_a_read_timeout() -> None:
    async with tcp_server(silent) as url, client(timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url + "/", content=b"{}")


async def test_twirp_client_classifies_failures_over_the_transport() -> None:
    tokens = TokenSource("devkey", "secret")
    no_retry = RetryPolicy(attempts=1)
    refused = TwirpClient(f"http://127.0.0.1:{free_port()}", tokens, retry=no_retry, timeout=1.0)
    try:
        with pytest.raises(TransportFailure) as caught:
            await refused.call("RoomService", "ListRooms", {})
        assert caught.value.sent is False
    finally:
        await refused.aclose()
    async with tcp_server(reset) as url:
        dropped = TwirpClient(url, tokens, retry=no_retry, timeout=1.0)
        try:
            with pytest.raises(TransportFailure) as caught:
                await dropped.call("RoomService", "ListRooms", {})
            assert caught.value.sent is True
        finally:
            await dropped.aclose()


def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                 "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://lk.example.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert env_proxy("https://lk.example.com") == "http://proxy.internal:3128"
    assert env_proxy("http://lk.example.com") is None
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert env_proxy("https://lk.example.com") is None


async def test_http_client_keeps_the_request_log(sandbox: SandboxServer, caplog: pytest.LogCaptureFixture) -> None:
    """-v's request log (httpx's logger at INFO) is written by the lean client too, URL only."""
    http = HttpClient(http_transport(sandbox.url, max_connections=2), read=5.0, pool=5.0)
    try:
        with caplog.at_level(logging.INFO, logger="httpx"):
            response = await http.post(sandbox.url + "/twirp/livekit.RoomService/ListRooms", content=b"{}",
                                       headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
    finally:
        await http.aclose()
    assert response.status_code == 401
    assert response.path == "/twirp/livekit.RoomService/ListRooms"
    assert [r.getMessage() for r in caplog.records] == [
        f'HTTP Request: POST {sandbox.url}/twirp/livekit.RoomService/ListRooms "HTTP/1.1 401 Unauthorized"']


LIVEKIT_ONLY_RUN = """
import sys
from reconciler.cli.main import main
sys.argv = ["roomctl", "apply", sys.argv[1], "--url", sys.argv[2], "-q"]
code = main()
print(code, "httpx" in sys.modules)
"""


def test_an_apply_against_a_livekit_server_never_imports_httpx(sandbox: SandboxServer, tmp_path: Path) -> None:
    """The Twirp client over aiohttp needs nothing of httpx (~20 ms of every run's start-up); httpx
    loads only with an httpx transport (the embedded sandbox) or client (plugNmeet, webhooks)."""
    (tmp_path / "room.yaml").write_text("apiVersion: roomctl.dev/v1alpha1\nkind: Room\nmetadata: {name: no-httpx}\n",
                                        encoding="utf-8")
    env = {**os.environ, "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"}
    done = subprocess.run([sys.executable, "-c", LIVEKIT_ONLY_RUN, str(tmp_path), sandbox.url], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.stdout.split() == ["0", "False"], done.stderr[-2000:]
    assert sandbox.counts().get("RoomService.CreateRoom") == 1
