"""server/core/time_limit.py behaves as `asyncio.timeout` does, case by case: each scenario
runs under both and must end the same way."""
from __future__ import annotations

import asyncio

import pytest

from server.core.time_limit import TimeLimit

pytestmark = pytest.mark.timeout(10)

LIMITS = pytest.mark.parametrize("limit", [asyncio.timeout, TimeLimit], ids=["asyncio.timeout", "TimeLimit"])


@LIMITS
async def test_a_block_past_its_limit_raises_timeout_and_leaves_its_task_uncancelled(limit):
    with pytest.raises(TimeoutError):
        async with limit(0.01):
            await asyncio.sleep(5)
    assert asyncio.current_task().cancelling() == 0
    await asyncio.sleep(0.02)  # the task goes on as usual


@LIMITS
async def test_a_block_within_its_limit_returns_and_its_timer_never_fires_later(limit):
    async with limit(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # a timer left behind would cancel this sleep
    assert asyncio.current_task().cancelling() == 0


@LIMITS
async def test_a_limit_already_past_fires_at_the_first_wait(limit):
    with pytest.raises(TimeoutError):
        async with limit(-1):
            await asyncio.sleep(1)


@LIMITS
async def test_an_error_inside_passes_through_unchanged(limit):
    with pytest.raises(KeyError):
        async with limit(1):
            raise KeyError("x")


@LIMITS
async def test_someone_elses_cancellation_is_a_cancellation_not_a_timeout(limit):
    started = asyncio.Event()

    async def limited():
        async with limit(5):
            started.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(limited())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@LIMITS
async def test_a_cancellation_that_comes_as_the_limit_fires_wins(limit):
    async def limited():
        async with limit(0.02):
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                asyncio.current_task().cancel()  # another cancel arrives while the limit's unwinds
                raise

    task = asyncio.create_task(limited())
    with pytest.raises(asyncio.CancelledError):
        await task


@LIMITS
async def test_a_timeout_caught_inside_still_lets_the_block_finish(limit):
    async with limit(0.01):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            pass  # swallowed: the block ends normally, as with asyncio.timeout
    await asyncio.sleep(0.02)
