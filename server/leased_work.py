"""The one loop behind st-ai's durable background work (video tasks, webhook events): rows
in the database are claimed with a lease by one process at a time, and each claimed row is
worked on its own task, never twice at once in this process."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

log = logging.getLogger("st_ai.leases")

# How often housekeeping (freeing the leases of dead processes, sweeps) runs.
HOUSEKEEPING_INTERVAL = 5.0


async def run_claims(claim: Callable[[float], Awaitable[list]], work: Callable[[Any], Awaitable[None]],
                     running: dict[str, asyncio.Task], *, tick: float, what: str,
                     housekeeping: Callable[[], Awaitable[None]],
                     hand_back: Callable[[], Awaitable[object]] | None = None) -> None:
    """Every `tick` seconds, `claim(now)` the rows due (each has an `id`) and start
    `work(row)` for each one not already running (the work removes itself from `running`
    when done). Runs until cancelled, then cancels the work it started and `hand_back()`s
    every lease this process still holds: a claim the cancel interrupted still commits in
    the database thread, and work cancelled before its first step never releases its row."""
    last_sweep = 0.0
    try:
        while True:
            now = time.time()
            if now - last_sweep > HOUSEKEEPING_INTERVAL:
                last_sweep = now
                await housekeeping()
            try:
                claimed = await claim(now)
            except Exception:
                log.exception("claiming %s failed", what)
                claimed = []
            for row in claimed:
                if row.id not in running:
                    running[row.id] = asyncio.create_task(work(row), name=f"{what} {row.id}")
            await asyncio.sleep(tick)
    finally:
        for job in running.values():
            job.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        if hand_back is not None:
            try:
                await hand_back()
            except Exception:
                log.exception("giving back the leases of %s failed", what)
