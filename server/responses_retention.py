"""Stored Responses API responses past their retention are deleted in the background.

A response's `expires_at` is set when it is stored (`st-ai serve --responses-retention`,
default 30 days as OpenAI keeps them; `forever`: never); reads already treat an expired
response as not found, so this sweep only gives the space back. Every process on the
database may run it: deleting what has expired twice deletes nothing the second time.
"""
from __future__ import annotations

import asyncio
import logging

from server.store import responses as response_store
from server.store.db import DbWorker

log = logging.getLogger("st-ai.responses")

SWEEP_INTERVAL = 3600.0  # seconds; an expired response is already invisible, so no hurry


def parse_retention(text: str) -> float | None:
    """`--responses-retention`: a duration (30d, 12h) in seconds, or None for `forever`."""
    from server import durations

    return None if text.strip().lower() == "forever" else float(durations.parse_duration(text))


async def sweep_expired(worker: DbWorker, interval: float = SWEEP_INTERVAL) -> None:
    """Delete expired responses now and every `interval` seconds; runs until cancelled."""
    while True:
        try:
            deleted = await worker.run(response_store.prune)
            if deleted:
                log.info("deleted %d stored responses past their retention", deleted)
        except Exception:  # a locked database: try again next time
            log.exception("deleting expired stored responses failed")
        await asyncio.sleep(interval)
