"""server/workers.py's Pool in-process, on both event loops, with stand-in worker processes
(a few lines of Python that read their start and print the ready line): what the parent does
when starting a replacement goes wrong. The real workers are tested end to end in
tests/test_workers.py."""
from __future__ import annotations

import asyncio
import functools
import logging
import sys
import types

import pytest

from server import event_loop, workers
from server.workers import Pool, RestartPolicy, WorkersFailed, WorkerStart

pytestmark = pytest.mark.timeout(60)

LOOPS = ["asyncio", "uvloop"]

SERVES = ("import pickle, sys, time; pickle.load(sys.stdin.buffer); "
          "print('st-ai ready: stand-in', flush=True); time.sleep(60)")
DIES_AT_ONCE = "pass"


class Starts:
    """Stands in for asyncio.create_subprocess_exec: each start runs the next script of a
    plan (the last one repeats), or raises what the plan holds."""

    def __init__(self, real, plan: list[str | OSError]) -> None:
        self._real = real
        self._plan = plan
        self.processes: list[asyncio.subprocess.Process] = []

    async def __call__(self, *args, **kwargs) -> asyncio.subprocess.Process:
        step = self._plan.pop(0) if len(self._plan) > 1 else self._plan[0]
        if isinstance(step, OSError):
            raise step
        proc = await self._real(sys.executable, "-c", step, **kwargs)
        self.processes.append(proc)
        if step == DIES_AT_ONCE:
            # gone, and its end of the start pipe closed, before the parent writes the start
            for _ in range(1000):
                if proc.returncode is not None and proc.stdin.transport.is_closing():
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the stand-in worker did not end within 10 s")
        return proc

    async def end_all(self) -> None:
        for proc in self.processes:
            if proc.returncode is None:
                proc.kill()
        await asyncio.wait_for(asyncio.gather(*(proc.wait() for proc in self.processes)), 10)


@pytest.fixture
def quick_restarts(monkeypatch):
    monkeypatch.setattr(workers, "RestartPolicy", functools.partial(RestartPolicy, first_pause=0.01, max_pause=0.05))


def pool_of_one(tmp_path) -> Pool:
    config = types.SimpleNamespace(db_path=str(tmp_path / "st-ai.db"))  # what the parent reads of it
    return Pool(WorkerStart(config, "json", 0), 1, start_timeout=20)


def run(loop: str, scenario, tmp_path, monkeypatch, plan: list[str | OSError]):
    if loop == "uvloop":
        pytest.importorskip("uvloop", exc_type=ImportError)  # an install without the uvloop extra

    async def main():
        starts = Starts(asyncio.create_subprocess_exec, plan)
        monkeypatch.setattr(asyncio, "create_subprocess_exec", starts)
        try:
            return await asyncio.wait_for(scenario(pool_of_one(tmp_path), starts), 40)
        finally:
            await starts.end_all()
    return event_loop.run(main(), loop)


async def replacement_of_killed(pool: Pool) -> workers.Worker:
    """The pool started, its worker killed while the pool keeps the slot: the worker that
    took its place, once ready."""
    await pool.start_all()
    first = pool.workers[1]
    keeping = asyncio.create_task(pool.keep(1))
    try:
        first.proc.kill()
        while True:
            assert not keeping.done(), keeping  # the keeper failed: the parent would stop every worker
            now = pool.workers[1]
            if now is not first and now.ready.done() and now.ready.result():
                return now
            await asyncio.sleep(0.02)
    finally:
        keeping.cancel()


@pytest.mark.parametrize("loop", LOOPS)
def test_a_replacement_that_dies_before_it_reads_its_start_is_replaced_in_turn(
        loop, tmp_path, monkeypatch, quick_restarts, caplog):
    async def scenario(pool: Pool, starts: Starts):
        replacement = await replacement_of_killed(pool)
        return [p.returncode for p in starts.processes[:2]], replacement.proc.returncode

    caplog.set_level(logging.INFO, "st_ai.workers")
    ended, running = run(loop, scenario, tmp_path, monkeypatch, [SERVES, DIES_AT_ONCE, SERVES])
    assert ended == [-9, 0] and running is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "st_ai.workers"]
    assert len(warnings) == 2 and all("starting another" in w for w in warnings), warnings


@pytest.mark.parametrize("loop", LOOPS)
def test_a_replacement_the_system_refuses_to_start_is_tried_again(
        loop, tmp_path, monkeypatch, quick_restarts, caplog):
    async def scenario(pool: Pool, starts: Starts):
        await replacement_of_killed(pool)

    caplog.set_level(logging.INFO, "st_ai.workers")
    refused = BlockingIOError(11, "Resource temporarily unavailable")
    run(loop, scenario, tmp_path, monkeypatch, [SERVES, refused, refused, SERVES])
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "st_ai.workers"]
    assert len(errors) == 2 and all(e.startswith("starting worker 1 failed (") and "trying again" in e
                                    for e in errors), errors


def test_a_worker_that_can_never_be_started_again_stops_the_pool_with_the_reason(
        tmp_path, monkeypatch, quick_restarts):
    async def scenario(pool: Pool, starts: Starts):
        await pool.start_all()
        pool.workers[1].proc.kill()
        await pool.keep(1)

    refused = BlockingIOError(11, "Resource temporarily unavailable")
    with pytest.raises(WorkersFailed, match=r"worker 1 died or could not be started 6 times in a row \(last: .*Resource"):
        run("auto", scenario, tmp_path, monkeypatch, [SERVES, refused])
