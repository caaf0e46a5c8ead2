"""server/providers/sse.py: an upstream's Server-Sent Events, event by event, however the
network cuts the bytes."""
from __future__ import annotations

import pytest

from server.providers.sse import MAX_EVENT_BYTES, data_events


class Body:
    """A response body arriving in the given blocks (what each network read brings)."""

    def __init__(self, *blocks: bytes) -> None:
        self._blocks = list(blocks)

    async def readany(self) -> bytes:
        return self._blocks.pop(0) if self._blocks else b""


async def events(*blocks: bytes) -> list[bytes]:
    return [data async for data in data_events(Body(*blocks))]


STREAM = (b": keep-alive comment\n\n"
          b"data: {\"a\": 1}\n\n"
          b"event: message\r\nid: 7\r\ndata: {\"b\":\r\ndata:  2}\r\n\r\n"
          b"retry: 100\n\n"
          b"data:[DONE]\n\n")
EXPECTED = [b'{"a": 1}', b'{"b":\n 2}', b"[DONE]"]


async def test_events_come_whole_whatever_the_network_reads_bring():
    assert await events(STREAM) == EXPECTED
    for cut in range(1, len(STREAM)):
        assert await events(STREAM[:cut], STREAM[cut:]) == EXPECTED, cut
    assert await events(*(STREAM[i:i + 1] for i in range(len(STREAM)))) == EXPECTED


async def test_a_stream_that_ends_without_its_blank_line_still_gives_its_last_event():
    assert await events(b"data: one\n\ndata: two") == [b"one", b"two"]
    assert await events(b"data: one\n\ndata: two\n") == [b"one", b"two"]
    # its blank line cut short to the carriage return: the event ends there, once
    assert await events(b"data: one\n\ndata: two\n\r") == [b"one", b"two"]
    assert await events(b"data: one\n\ndata: two\n", b"\r") == [b"one", b"two"]


async def test_an_event_larger_than_st_ai_reads_is_refused_whether_in_one_line_or_many():
    line = b"data: " + b"x" * (MAX_EVENT_BYTES // 2) + b"\n"
    with pytest.raises(ValueError):
        await events(line, line, line, b"\n")
    with pytest.raises(ValueError):
        await events(b"data: ", *[b"x" * (1024 * 1024)] * 9)


async def test_an_event_just_under_the_limit_in_one_long_line_is_read():
    payload = b"y" * (MAX_EVENT_BYTES - 10)
    blocks = [b"data: "] + [payload[i:i + 65536] for i in range(0, len(payload), 65536)] + [b"\n\n"]
    assert await events(*blocks) == [payload]
