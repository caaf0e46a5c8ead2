"""server/billing/group_commit.py: settlements of concurrent requests share transactions, each
caller returns only once its own settlement is committed, one bad settlement fails only itself,
and stopping the writer loses nothing queued."""
from __future__ import annotations

import asyncio
import time

import pytest

from server.billing.group_commit import GroupCommit
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store.db import DbWorker, open_db
from server.store.quota import LedgerRow, Settlement

pytestmark = pytest.mark.timeout(30)


def settlement(token_id: int, cost: int, status: int | None = 200) -> Settlement:
    return Settlement(None, LedgerRow(ts=time.time(), request_id=f"r{cost}", token_id=token_id, model="m",
                                      upstream_model="m", channel_id=None, kind="chat", status=status, cost=cost))


@pytest.fixture
def token_db(tmp_path):
    path = str(tmp_path / "st-ai.db")
    db = open_db(path)
    token, _ = token_store.create(db, "t", quota=10**9)
    db.close()
    return path, token.id


def used_and_rows(path: str, token_id: int) -> tuple[int, int]:
    db = open_db(path)
    try:
        return token_store.get(db, "t").used, db["ledger"].count_where("token_id = ?", [token_id])
    finally:
        db.close()


def test_concurrent_settlements_share_transactions_and_each_returns_committed(token_db, monkeypatch):
    path, token_id = token_db
    batches: list[int] = []
    real = quota_store.settle_many

    def counting(db, items):
        batches.append(len(items))
        return real(db, items)

    monkeypatch.setattr(quota_store, "settle_many", counting)

    async def scenario() -> None:
        worker = DbWorker(path)
        writer = GroupCommit(worker)
        runner = asyncio.create_task(writer.run())
        try:
            await asyncio.wait_for(asyncio.gather(*(writer.commit(settlement(token_id, i + 1)) for i in range(40))), 10)
            assert used_and_rows(path, token_id) == (sum(range(1, 41)), 40)  # committed on return
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            worker.close()

    asyncio.run(scenario())
    assert sum(batches) == 40 and len(batches) < 40


def test_one_bad_settlement_fails_alone(token_db):
    path, token_id = token_db

    async def scenario() -> None:
        worker = DbWorker(path)
        writer = GroupCommit(worker)
        runner = asyncio.create_task(writer.run())
        try:
            results = await asyncio.wait_for(asyncio.gather(
                writer.commit(settlement(token_id, 5)), writer.commit(settlement(token_id, 7, status=None)),
                writer.commit(settlement(token_id, 11)), return_exceptions=True), 10)
            assert results[0] is None and results[2] is None and isinstance(results[1], Exception)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            worker.close()

    asyncio.run(scenario())
    assert used_and_rows(path, token_id) == (16, 2)


def test_stopping_the_writer_commits_what_was_queued(token_db):
    path, token_id = token_db

    async def scenario() -> None:
        worker = DbWorker(path)
        writer = GroupCommit(worker)
        runner = asyncio.create_task(writer.run())
        await asyncio.sleep(0)
        for i in range(3):
            writer.submit(settlement(token_id, 100 + i))
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        worker.close()

    asyncio.run(scenario())
    assert used_and_rows(path, token_id) == (303, 3)
