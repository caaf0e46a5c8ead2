"""A stream past its first byte, in-process: each next event within the idle limit, the
whole stream within its deadline, and the provider's own failures left as they are."""
from __future__ import annotations

import asyncio
import time

import pytest

from server.core.stream_pace import Pace
from server.errors import GatewayError


async def events(*gaps: float):
    """An upstream stream: before event i it is silent for gaps[i] seconds."""
    for number, gap in enumerate(gaps):
        await asyncio.sleep(gap)
        yield number


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


async def read_all(pace: Pace, chunks) -> list:
    got = []
    while (event := await pace.next(chunks)) is not None:
        got.append(event)
    return got


def test_a_stream_that_keeps_talking_is_read_to_its_end():
    pace = Pace(idle=0.5, ends=time.monotonic() + 5, clock=time.monotonic)
    assert run(read_all(pace, events(0, 0.05, 0.05))) == [0, 1, 2]


def test_a_silence_longer_than_the_idle_limit_is_cut_as_a_stall():
    pace = Pace(idle=0.2, ends=time.monotonic() + 5, clock=time.monotonic)
    chunks = events(0, 0, 3)
    got = []

    async def read() -> None:
        while (event := await pace.next(chunks)) is not None:
            got.append(event)
    started = time.monotonic()
    with pytest.raises(GatewayError) as caught:
        run(read())
    assert got == [0, 1] and time.monotonic() - started < 2
    assert (caught.value.http_status, caught.value.code) == (504, "upstream_timeout")
    assert "stalled" in caught.value.message and caught.value.retryable  # the channel is in trouble


def test_a_stream_still_talking_at_its_deadline_is_cut_as_out_of_time():
    pace = Pace(idle=1.0, ends=time.monotonic() + 0.3, clock=time.monotonic)
    with pytest.raises(GatewayError) as caught:
        run(read_all(pace, events(*[0.1] * 20)))
    assert caught.value.code == "upstream_timeout" and "ran out of time" in caught.value.message
    assert not caught.value.retryable  # the request's limit, not the channel's fault


def test_a_providers_own_error_passes_through_unchanged():
    async def failing():
        yield 0
        raise GatewayError(502, "The upstream service failed mid-stream: boom", "upstream_error")
    pace = Pace(idle=1.0, ends=time.monotonic() + 5, clock=time.monotonic)
    with pytest.raises(GatewayError) as caught:
        run(read_all(pace, failing()))
    assert caught.value.message.endswith("boom")


def test_each_read_gets_its_own_idle_limit_from_when_it_starts():
    # one timer serves the whole stream: reads just under the limit, one after another,
    # are never cut by the due time of an earlier read
    pace = Pace(idle=0.3, ends=time.monotonic() + 5, clock=time.monotonic)
    assert run(read_all(pace, events(0.2, 0.2, 0.2, 0.2))) == [0, 1, 2, 3]


def test_a_shorter_limit_near_the_deadline_still_cuts_in_time():
    pace = Pace(idle=2.0, ends=time.monotonic() + 0.4, clock=time.monotonic)
    started = time.monotonic()
    with pytest.raises(GatewayError) as caught:
        run(read_all(pace, events(0, 0.1, 3)))
    assert "ran out of time" in caught.value.message and time.monotonic() - started < 1.5


def test_a_reader_cancelled_from_outside_is_cancelled_not_cut():
    async def scenario() -> bool:
        pace = Pace(idle=5.0, ends=time.monotonic() + 10, clock=time.monotonic)
        reader = asyncio.ensure_future(pace.next(events(3)))
        await asyncio.sleep(0.05)
        reader.cancel()  # the client left
        with pytest.raises(asyncio.CancelledError):
            await reader
        return reader.cancelled()
    assert run(scenario())


def test_after_a_cut_the_reading_task_carries_no_leftover_cancel():
    async def scenario() -> tuple[str, int]:
        pace = Pace(idle=0.1, ends=time.monotonic() + 5, clock=time.monotonic)
        try:
            await pace.next(events(3))
        except GatewayError as error:
            code = error.code
        await asyncio.sleep(0.01)  # a leftover cancel would land here
        return code, asyncio.current_task().cancelling()
    assert run(scenario()) == ("upstream_timeout", 0)


def test_an_event_read_ahead_is_taken_only_until_the_deadline():
    now = [100.0]
    pace = Pace(idle=0.1, ends=105.0, clock=lambda: now[0])
    pace.check()  # taken without waiting: the idle limit has nothing to time
    now[0] = 105.0
    with pytest.raises(GatewayError) as caught:
        pace.check()
    assert caught.value.code == "upstream_timeout" and "ran out of time" in caught.value.message
