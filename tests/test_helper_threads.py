"""server/helper_threads.py: a serving process's threads other than the event loop's run
under SCHED_BATCH (their wake-ups no longer preempt the loop on a shared core); a thread the
operator gave another policy keeps it."""
from __future__ import annotations

import os
import threading

import pytest

from server import helper_threads
from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")]


def policies(pid: int) -> dict[int, int]:
    found = {}
    for name in os.listdir(f"/proc/{pid}/task"):
        try:
            found[int(name)] = os.sched_getscheduler(int(name))
        except OSError:  # ended meanwhile
            pass
    return found


def parked_thread(stop: threading.Event, policy: int | None = None) -> threading.Thread:
    started = threading.Event()

    def park() -> None:
        if policy is not None:
            os.sched_setscheduler(0, policy, os.sched_param(0))
        started.set()
        stop.wait(10)

    thread = threading.Thread(target=park, daemon=True)
    thread.start()
    assert started.wait(5)
    return thread


def test_a_sweep_moves_every_other_thread_to_batch_and_keeps_the_loops_and_an_operators_choice():
    loop_thread = threading.get_native_id()
    before = os.sched_getscheduler(0)
    stop = threading.Event()
    helper = parked_thread(stop)
    idle = parked_thread(stop, os.SCHED_IDLE)
    try:
        assert os.sched_getscheduler(helper.native_id) == os.SCHED_OTHER
        assert helper_threads.sweep(loop_thread) >= 1
        assert os.sched_getscheduler(helper.native_id) == os.SCHED_BATCH
        assert os.sched_getscheduler(idle.native_id) == os.SCHED_IDLE
        assert os.sched_getscheduler(0) == before == os.SCHED_OTHER
        assert helper_threads.sweep(loop_thread) == 0  # nothing left to move
    finally:
        stop.set()
        helper.join(5)
        idle.join(5)


def test_a_serving_process_runs_its_loop_ahead_of_its_database_and_grpc_threads(tmp_path):
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    gateway = start_gateway(db_path)
    try:
        pid = gateway.proc.pid
        seen = policies(pid)
        assert seen.pop(pid) == os.SCHED_OTHER  # the main thread runs the event loop
        # the database thread, the checkpoints', grpc's poller and event engine at least
        assert len(seen) >= 4
        assert set(seen.values()) == {os.SCHED_BATCH}, seen
    finally:
        stop_gateway(gateway)
