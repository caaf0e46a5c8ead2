"""A client that stops taking its answer (a stalled download or stream: the socket's send
buffer stays full) is disconnected after the send timeout, and the handler behind it
ends, while a client that keeps reading, however slowly, is served to the end. A real
BridgeRunner on 127.0.0.1; the handler streams without end, as a long answer would."""
from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from rest_bridge.http_server import BridgeRunner, ClientTimeouts

pytestmark = pytest.mark.timeout(30)

SEND_TIMEOUT = 0.5
CHUNK = b"x" * 65536


async def _serve(endless_ended: asyncio.Event) -> tuple[BridgeRunner, int]:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            while True:
                await response.write(CHUNK)
        finally:
            endless_ended.set()

    async def finite(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 64 * len(CHUNK)
        await response.prepare(request)
        for _ in range(64):
            await response.write(CHUNK)
        return response

    app = web.Application()
    app.router.add_get("/endless", endless)
    app.router.add_get("/finite", finite)
    runner = BridgeRunner(app, timeouts=ClientTimeouts(send=SEND_TIMEOUT), handler_cancellation=True)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, sock.getsockname()[1]


async def _request(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=65536)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def test_a_client_that_stops_reading_is_disconnected_and_its_handler_ends():
    ended = asyncio.Event()
    runner, port = await _serve(ended)
    try:
        reader, writer = await _request(port, "/endless")  # and never read: the buffers fill
        await asyncio.wait_for(ended.wait(), 10 * SEND_TIMEOUT + 5)
        # what the kernel had buffered may still arrive, then the connection is gone
        async def drain() -> None:
            while await reader.read(1 << 20):
                pass
        await asyncio.wait_for(drain(), 5)
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_client_that_reads_slowly_but_steadily_gets_the_whole_answer():
    runner, port = await _serve(asyncio.Event())
    try:
        reader, writer = await _request(port, "/finite")
        received = 0
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        while received < 64 * len(CHUNK):
            data = await asyncio.wait_for(reader.read(256 * 1024), 5)
            assert data, f"cut off after {received} bytes"
            received += len(data)
            await asyncio.sleep(SEND_TIMEOUT / 4)
        writer.close()
    finally:
        await runner.cleanup()
