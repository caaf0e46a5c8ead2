"""Books usage without blocking requests: records queue in memory and a background
task writes them in batches on the database thread; closing flushes the rest."""
from __future__ import annotations

import asyncio
import logging

from server.store import usage as usage_store
from server.store.db import DbWorker
from server.store.usage import UsageRecord

log = logging.getLogger(__name__)


class UsageRecorder:
    def __init__(self, worker: DbWorker, interval: float = 0.5) -> None:
        self._worker = worker
        self._interval = interval
        self._pending: list[UsageRecord] = []

    def record(self, record: UsageRecord) -> None:
        self._pending.append(record)

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await self._worker.run(usage_store.insert_many, batch)
        except Exception:
            log.exception("writing %d usage records failed; keeping them for the next try", len(batch))
            self._pending = batch + self._pending

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())
