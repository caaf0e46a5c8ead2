"""server/shielded_stream.py: an upstream stream read by one task of its own, so a reader
that is cancelled (its client left) leaves the upstream read going for whoever takes over."""
from __future__ import annotations

import asyncio

import pytest

from server.errors import GatewayError
from server.shielded_stream import READ_AHEAD, ShieldedStream

pytestmark = pytest.mark.timeout(20)


class Upstream:
    """An upstream stream whose chunks the test releases one by one; it notes what was read
    from it and whether it was closed."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.released: asyncio.Queue = asyncio.Queue()
        self.read = 0
        self.closed = False
        self.fail_after = fail_after

    async def chunks(self):
        try:
            while True:
                chunk = await self.released.get()
                if chunk is None:
                    return
                self.read += 1
                yield chunk
                if self.fail_after is not None and self.read == self.fail_after:
                    raise GatewayError(502, "The upstream failed mid-stream.", "upstream_error")
        finally:
            self.closed = True


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_reader_cancelled_while_waiting_leaves_the_read_to_whoever_takes_over():
    upstream = Upstream()
    stream = ShieldedStream(upstream.chunks())
    reader = asyncio.ensure_future(anext(stream))
    await settle()
    reader.cancel()  # the client left while the upstream was silent
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert not upstream.closed
    upstream.released.put_nowait({"usage": {"completion_tokens": 3}})
    assert await asyncio.wait_for(anext(stream), 5) == {"usage": {"completion_tokens": 3}}
    await stream.aclose()
    assert upstream.closed


async def test_chunks_come_in_order_then_the_end_for_every_later_read():
    upstream = Upstream()
    for chunk in ("a", "b", "c", None):
        upstream.released.put_nowait(chunk)
    stream = ShieldedStream(upstream.chunks())
    assert [chunk async for chunk in stream] == ["a", "b", "c"]
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    await stream.aclose()


async def test_a_reader_that_stopped_taking_chunks_holds_only_a_few_read_ahead():
    upstream = Upstream()
    for number in range(READ_AHEAD * 3):
        upstream.released.put_nowait(number)
    stream = ShieldedStream(upstream.chunks())
    assert await asyncio.wait_for(anext(stream), 5) == 0
    await settle()
    assert upstream.read == 1 + READ_AHEAD  # the one taken and those waiting for the reader
    assert [await anext(stream) for _ in range(3)] == [1, 2, 3]
    await stream.aclose()


async def test_an_upstream_failure_comes_after_the_chunks_before_it_then_the_stream_has_ended():
    upstream = Upstream(fail_after=2)
    for chunk in ("a", "b", "c"):
        upstream.released.put_nowait(chunk)
    stream = ShieldedStream(upstream.chunks())
    assert [await anext(stream), await anext(stream)] == ["a", "b"]
    with pytest.raises(GatewayError) as failed:
        await anext(stream)
    assert failed.value.code == "upstream_error"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    await stream.aclose()


async def test_closing_the_stream_mid_read_closes_the_upstream_and_later_reads_see_the_end():
    upstream = Upstream()
    stream = ShieldedStream(upstream.chunks())
    reader = asyncio.ensure_future(anext(stream))
    await settle()
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await asyncio.wait_for(stream.aclose(), 5)
    assert upstream.closed
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_a_stream_never_read_closes_without_reading_the_upstream():
    upstream = Upstream()
    upstream.released.put_nowait("a")
    stream = ShieldedStream(upstream.chunks())
    await stream.aclose()
    assert upstream.read == 0


async def test_chunks_read_ahead_are_taken_without_waiting_and_the_end_still_comes_through_anext():
    upstream = Upstream(fail_after=3)
    stream = ShieldedStream(upstream.chunks(), read_ahead=2)
    assert stream.ready() is None  # nothing read yet: the pump starts with the first read
    for chunk in ("a", "b", "c"):
        upstream.released.put_nowait(chunk)
    assert await anext(stream) == "a"
    await settle()
    assert stream.ready() == "b"  # read ahead while "a" was being taken
    await settle()
    assert stream.ready() == "c"  # taking "b" made room: the pump read on
    await settle()
    assert stream.ready() is None  # the upstream's failure is next: ready() never swallows it
    with pytest.raises(GatewayError):
        await anext(stream)
    assert stream.ready() is None
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    await stream.aclose()
