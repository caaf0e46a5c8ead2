"""The event loop first on a busy core: every other thread of a serving process (the
database thread, the WAL checkpoints, grpc's poller and event-engine threads, executor
threads) runs under Linux's SCHED_BATCH policy.

Those threads wake for every database group and every gRPC event. Under the default policy
each wake-up preempts the loop's thread when they share a core, only for the woken thread to
find the GIL held and give the core back: over gRPC that was eleven involuntary switches of
the loop's thread per call, and about a quarter of the process's CPU per call went with them
(README, Tests and benchmarks). SCHED_BATCH keeps each thread's fair
share of the CPU (same nice level) and takes away only that wake-up preemption: the threads
run when the loop waits for I/O or its time slice ends, and their work comes in larger groups.
Where another core is free they run there at once, as before. A process may lower its own
threads' policy without privileges; where that is refused (a seccomp filter) or unknown
(not Linux), nothing changes. A thread the operator gave another policy (`chrt`) keeps it.
"""
from __future__ import annotations

import asyncio
import os
import threading

# grpc and the executors start threads as they need them: new ones are found this often.
SWEEP_EVERY = 5.0


def sweep(loop_thread: int) -> int:
    """Every thread of this process but `loop_thread` (a native thread id) under SCHED_BATCH;
    returns how many this call moved."""
    if not hasattr(os, "SCHED_BATCH"):
        return 0
    try:
        threads = [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:
        return 0
    return sum(1 for tid in threads if tid != loop_thread and _to_batch(tid))


def _to_batch(tid: int) -> bool:
    try:
        if os.sched_getscheduler(tid) != os.SCHED_OTHER:
            return False
        os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
        return True
    except OSError:  # the thread ended meanwhile, or the policy is refused
        return False


async def keep_behind_loop(every: float = SWEEP_EVERY) -> None:
    """sweep from the loop's own thread every `every` seconds; runs until cancelled."""
    loop_thread = threading.get_native_id()
    while True:
        sweep(loop_thread)
        await asyncio.sleep(every)
