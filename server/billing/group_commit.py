"""Settlements written in groups: one transaction for every settlement that arrived while the
previous one was being written, each caller awaiting its own commit.

A request's answer is released only after its settlement is durable, so a SIGKILL never
loses a request a client saw answered; grouping keeps that to one commit per batch instead
of one per request.
"""
from __future__ import annotations

import asyncio
import logging
import time

from server import metrics
from server.store import quota as quota_store
from server.store.db import DbWorker
from server.store.quota import Settlement

log = logging.getLogger("st-ai.billing")


class GroupCommit:
    def __init__(self, worker: DbWorker) -> None:
        self._worker = worker
        self._pending: list[tuple[Settlement, asyncio.Future]] = []
        self._wake = asyncio.Event()

    def submit(self, settlement: Settlement) -> asyncio.Future:
        """Queue a settlement; the future resolves once it is committed (or fails)."""
        done = asyncio.get_running_loop().create_future()
        self._pending.append((settlement, done))
        self._wake.set()
        return done

    async def commit(self, settlement: Settlement) -> None:
        # shield: a caller cancelled while waiting does not un-queue its settlement
        await asyncio.shield(self.submit(settlement))

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await asyncio.shield(self._write())
        finally:
            await asyncio.shield(self._write())  # shutdown: nothing queued is lost

    async def _write(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        started = time.monotonic()
        try:
            await self._worker.run(quota_store.settle_many, [s for s, _ in batch])
            metrics.ledger_write(time.monotonic() - started, len(batch))
        except Exception:
            # One bad settlement must not fail the others: write them one by one.
            log.exception("a group of %d settlements failed; writing them one at a time", len(batch))
            for settlement, done in batch:
                try:
                    await self._worker.run(quota_store.settle_many, [settlement])
                except Exception as exc:
                    log.exception("settlement of request %s failed", settlement.row.request_id)
                    _resolve(done, exc)
                else:
                    _resolve(done, None)
            return
        for _, done in batch:
            _resolve(done, None)


def _resolve(done: asyncio.Future, error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
        done.exception()  # a caller that stopped waiting must not leave "never retrieved" noise
