"""A misbehaving HTTP server on a real loopback socket, in a thread: answers that never come,
bodies that trickle in a byte at a time, web pages instead of JSON, scripted status sequences.
Records each request's headers so tests can read what the client sent."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .server import free_port


@dataclass
class RawServer:
    url: str
    mode: str
    # For mode "script": (status, body) answered in turn; the last one repeats.
    script: list[tuple[int, bytes]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)


async def _serve_one(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            headers[":path"] = lines[0].split(" ")[1]
            await reader.readexactly(int(headers.get("content-length", "0")))
            server.requests.append(headers)
            if server.mode == "silent":
                await asyncio.sleep(3600)
            elif server.mode == "trickle":
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n")
                for _ in range(1000):
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(1.0)
            elif server.mode == "html":
                body = b"<!doctype html><html><body>Welcome</body></html>"
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
            else:  # script
                index = min(len(server.requests) - 1, len(server.script) - 1)
                status, body = server.script[index]
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: "
                             f"{len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


@contextmanager
def raw_server(mode: str, script: list[tuple[int, bytes]] | None = None,
               tls: ssl.SSLContext | None = None) -> Iterator[RawServer]:
    port = free_port()
    scheme = "https" if tls else "http"
    server = RawServer(f"{scheme}://127.0.0.1:{port}", mode, script or [])
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    handlers: set[asyncio.Task[None]] = set()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = loop.create_task(_serve_one(server, reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    async def main() -> None:
        listener = await asyncio.start_server(accept, "127.0.0.1", port, ssl=tls)
        started.set()
        await stop.wait()
        listener.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await listener.wait_closed()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
