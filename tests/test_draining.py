"""The shutdown's drain (server/draining.py), in-process: requests are plain tasks that
track themselves; what a cut does to each depends on where it waits."""
from __future__ import annotations

import asyncio
import signal

import pytest

from server.draining import Drain
from server.shutdown import StopSignals
from server.errors import GatewayError


async def request(drain: Drain, waits_on: asyncio.Event, cuttable: bool = True) -> str:
    with drain.track() as call:
        if cuttable:
            with drain.cuttable(call):
                await waits_on.wait()
        else:
            await waits_on.wait()
        return "answered"


async def wait_until_tracked(drain: Drain, count: int) -> None:
    async with asyncio.timeout(2):
        while drain.in_flight < count:
            await asyncio.sleep(0)


async def test_a_request_that_ends_within_the_grace_is_waited_for_and_answered():
    drain, upstream = Drain(), asyncio.Event()
    task = asyncio.create_task(request(drain, upstream))
    await wait_until_tracked(drain, 1)
    drain.begin()
    assert not await drain.settle(0.05)
    upstream.set()
    assert await drain.settle(2)
    assert await asyncio.wait_for(task, 2) == "answered"


async def test_nothing_in_flight_settles_at_once():
    assert await Drain().settle(0)


async def test_a_request_still_waiting_after_the_grace_is_cut_with_shutting_down():
    drain = Drain()
    task = asyncio.create_task(request(drain, asyncio.Event()))
    await wait_until_tracked(drain, 1)
    assert not await drain.settle(0.05)
    assert drain.cut() == 1
    with pytest.raises(GatewayError) as cut:
        await asyncio.wait_for(task, 2)
    assert (cut.value.http_status, cut.value.code) == (503, "shutting_down")
    assert await drain.settle(0)


async def test_a_request_cut_while_busy_elsewhere_ends_when_it_next_waits():
    """Cut while outside its cuttable section (a front writing to its client): it is not
    cancelled there, and ends as it enters the next one."""
    drain, written = Drain(), asyncio.Event()
    outcome: list[str] = []

    async def stream() -> None:
        with drain.track() as call:
            with drain.cuttable(call):
                await asyncio.sleep(0)  # the first chunk arrives
            await written.wait()  # writing it: not cuttable
            outcome.append("written")
            try:
                with drain.cuttable(call):
                    await asyncio.sleep(60)
            except GatewayError as error:
                outcome.append(error.code)

    task = asyncio.create_task(stream())
    await wait_until_tracked(drain, 1)
    await asyncio.sleep(0.01)
    drain.cut()
    written.set()
    await asyncio.wait_for(task, 2)
    assert outcome == ["written", "shutting_down"]


async def test_a_client_that_leaves_as_the_cut_lands_is_still_a_client_that_left():
    drain = Drain()
    task = asyncio.create_task(request(drain, asyncio.Event()))
    await wait_until_tracked(drain, 1)
    drain.cut()
    task.cancel()  # the client's own cancellation, on top of the cut's
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)


async def test_a_request_with_no_cuttable_section_is_left_to_its_front():
    drain, upstream = Drain(), asyncio.Event()
    task = asyncio.create_task(request(drain, upstream, cuttable=False))
    await wait_until_tracked(drain, 1)
    drain.cut()
    assert not await drain.settle(0.05)  # its front (the bridge's runner) ends it
    upstream.set()
    assert await asyncio.wait_for(task, 2) == "answered"


async def test_a_second_signal_ends_the_wait_for_the_grace_at_once():
    drain, hurry = Drain(), asyncio.Event()
    task = asyncio.create_task(request(drain, asyncio.Event()))
    await wait_until_tracked(drain, 1)
    drain.begin()
    waiting = asyncio.create_task(drain.settle(3600, hurry))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    hurry.set()
    assert await asyncio.wait_for(waiting, 2) is False  # the request still runs: it is for the cut
    assert drain.cut() == 1
    with pytest.raises(GatewayError):
        await asyncio.wait_for(task, 2)


async def test_stop_signals_a_first_asks_to_drain_a_second_to_hurry_a_closing_terminal_never_hurries():
    signals = StopSignals()
    signals.received(signal.SIGHUP)
    assert signals.stop.is_set() and not signals.hurry.is_set()
    signals.received(signal.SIGHUP)
    assert not signals.hurry.is_set()
    signals.received(signal.SIGINT)
    assert signals.hurry.is_set()


async def test_a_request_accepted_before_the_drain_began_is_in_flight_one_after_it_is_new():
    now = [1000.0]
    drain = Drain(clock=lambda: now[0])
    assert drain.accepted_before(999.0)  # not draining yet: whatever was accepted came before
    drain.begin()
    now[0] = 1010.0
    assert drain.accepted_before(999.5)
    assert not drain.accepted_before(1000.0) and not drain.accepted_before(1005.0)
    assert not drain.accepted_before(None) and not drain.accepted_before(float("nan"))
