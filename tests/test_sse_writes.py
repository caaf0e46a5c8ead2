"""How an SSE answer leaves the bridge: its status line and headers go out with its first
events in one write, and events that were already waiting go out together, so a stream read
whole at once is a single write; an event that comes later is written when it comes."""
from __future__ import annotations

import asyncio
from unittest import mock

import grpc
from aiohttp.http_writer import StreamWriter
from aiohttp.test_utils import make_mocked_request

from rest_bridge import app, dialects


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks) -> None:
        self.writes.append(b"".join(chunks))

    def is_closing(self) -> bool:
        return False


class QueuedCall:
    """An in-process stream call whose messages (batches of JSON texts) are queued by the test."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    async def read(self):
        return await self.queue.get()

    def read_nowait(self):
        return None if self.queue.empty() else self.queue.get_nowait()

    async def initial_metadata(self):
        return ()

    def cancel(self) -> bool:
        return True


def request_on(transport: RecordingTransport):
    protocol = mock.Mock(transport=transport, _paused=False)  # the client takes all it is sent
    writer = StreamWriter(protocol, asyncio.get_running_loop())
    return make_mocked_request("POST", "/v1/chat/completions", writer=writer, transport=transport,
                               protocol=protocol)


def event(text: str) -> bytes:
    return b'{"choices":[{"delta":{"content":"%s"}}]}' % text.encode()


async def test_a_stream_whose_events_all_waited_leaves_in_one_write_headers_included():
    transport, call = RecordingTransport(), QueuedCall()
    for item in ([event("Hel")], [event("lo")], grpc.aio.EOF):
        call.queue.put_nowait(item)
    await app._relay_stream(request_on(transport), call, dialects.OPENAI)
    [only] = transport.writes
    assert only.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"text/event-stream" in only.split(b"\r\n\r\n")[0]
    assert b'"Hel"' in only and b'"lo"' in only and b"data: [DONE]" in only and only.endswith(b"0\r\n\r\n")


async def test_the_headers_leave_with_the_first_event_and_a_later_event_is_written_when_it_comes():
    transport, call = RecordingTransport(), QueuedCall()
    call.queue.put_nowait([event("Hel")])
    relay = asyncio.create_task(app._relay_stream(request_on(transport), call, dialects.OPENAI))
    for _ in range(100):  # the first event is written without waiting for another
        if transport.writes:
            break
        await asyncio.sleep(0.01)
    [first] = transport.writes
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b'"Hel"' in first
    call.queue.put_nowait([event("lo")])
    for _ in range(100):
        if len(transport.writes) > 1:
            break
        await asyncio.sleep(0.01)
    assert b'"lo"' in transport.writes[1] and b"[DONE]" not in transport.writes[1]
    call.queue.put_nowait(grpc.aio.EOF)
    await asyncio.wait_for(relay, 5)
    assert transport.writes[-1].endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
