"""server/store/db.py's DbWorker: every database call on its one thread, in order; results and
errors come back to the caller's loop; a call whose caller left before its turn is not run;
a call posted from another thread runs in its turn; closing ends the thread and is safe twice."""
from __future__ import annotations

import asyncio
import threading

import pytest

from server.store.db import DbWorker

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def worker(tmp_path):
    worker = DbWorker(str(tmp_path / "st-ai.db"))
    yield worker
    worker.close()


async def test_calls_run_on_the_one_thread_in_the_order_asked(worker):
    ran: list[tuple[int, str]] = []

    def note(db, i: int) -> int:
        ran.append((i, threading.current_thread().name))
        return i * 2

    assert await asyncio.gather(*(worker.run(note, i) for i in range(20))) == [i * 2 for i in range(20)]
    assert ran == [(i, "st-ai-db") for i in range(20)]


async def test_an_error_comes_back_to_its_caller_and_the_next_call_runs(worker):
    def fails(db):
        db.execute("SELECT * FROM no_such_table")

    with pytest.raises(Exception, match="no_such_table"):
        await worker.run(fails)
    assert await worker.run(lambda db, x: db.execute("SELECT ?", [x]).fetchone()[0], 7) == 7


async def test_a_call_whose_caller_left_before_its_turn_is_not_run(worker):
    gate = threading.Event()
    ran: list[str] = []
    busy = asyncio.ensure_future(worker.run(lambda db: gate.wait(10)))
    await asyncio.sleep(0.05)  # the thread is held by `busy`
    left = asyncio.ensure_future(worker.run(lambda db: ran.append("left")))
    await asyncio.sleep(0)
    left.cancel()
    kept = asyncio.ensure_future(worker.run(lambda db: ran.append("kept")))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(asyncio.gather(busy, kept), 10)
    assert left.cancelled() and ran == ["kept"]


async def test_a_call_posted_from_another_thread_runs_on_the_one_thread_in_its_turn(worker):
    ran: list[tuple[str, str]] = []

    def note(db, what: str) -> None:
        ran.append((what, threading.current_thread().name))

    first = asyncio.ensure_future(worker.run(note, "asked first"))
    await asyncio.sleep(0)  # asked: on the thread's queue
    poster = threading.Thread(target=lambda: worker.post(lambda db: note(db, "posted")))
    poster.start()
    poster.join()
    await first
    await worker.run(note, "asked after")
    assert ran == [("asked first", "st-ai-db"), ("posted", "st-ai-db"), ("asked after", "st-ai-db")]


def test_a_call_posted_after_closing_is_dropped(tmp_path):
    worker = DbWorker(str(tmp_path / "st-ai.db"))
    worker.close()
    ran: list[str] = []
    worker.post(lambda db: ran.append("posted"))
    assert ran == [] and not worker._thread.is_alive()


async def test_closing_ends_the_thread_twice_safely_and_later_calls_are_refused(tmp_path):
    worker = DbWorker(str(tmp_path / "st-ai.db"))
    assert await worker.run(lambda db: db.execute("SELECT 1").fetchone()[0]) == 1
    worker.close()
    worker.close()
    assert not worker._thread.is_alive()
    with pytest.raises(RuntimeError):
        await worker.run(lambda db: None)


def test_a_database_that_cannot_be_opened_raises_and_leaves_no_thread(tmp_path):
    before = threading.active_count()
    with pytest.raises(Exception):
        DbWorker(str(tmp_path / "no" / "such" / "dir" / "st-ai.db"))
    assert threading.active_count() == before
