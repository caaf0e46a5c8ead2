"""server/billing/group_commit.py: reservations and settlements of concurrent requests share
transactions, each caller returns only once its own write is committed, one bad settlement or
refused reservation fails only itself (taking back all it wrote), and stopping the writer loses
nothing queued."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from typing import AsyncIterator

import pytest

from server.billing import limits
from server.billing.group_commit import CommitDelay, GroupCommit
from server.billing.limits import Taken
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store.db import DbWorker, open_db
from server.store.quota import InsufficientQuota, LedgerRow, Settlement
from server.store.rate_limits import Limits, RateLimited

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


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """The size of every group the writer commits, in order."""
    sizes: list[int] = []
    real = quota_store.write_each

    def counting(db, ops):
        sizes.append(len(ops))
        return real(db, ops)

    monkeypatch.setattr(quota_store, "write_each", counting)
    return sizes


def used_and_rows(path: str, token_id: int) -> tuple[int, int]:
    db = open_db(path)
    try:
        return token_store.get(db, "t").used, db["ledger"].count_where("token_id = ?", [token_id])
    finally:
        db.close()


@contextlib.asynccontextmanager
async def running_writer(path: str, **options: object) -> AsyncIterator[GroupCommit]:
    """A group writer on a database thread of its own, stopped as the server's shutdown stops
    it when the block ends."""
    worker = DbWorker(path)
    writer = GroupCommit(worker, **options)
    runner = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        worker.close()


def test_concurrent_settlements_share_transactions_and_each_returns_committed(token_db, batches):
    path, token_id = token_db

    async def scenario() -> None:
        async with running_writer(path) as writer:
            await asyncio.wait_for(asyncio.gather(*(writer.commit(settlement(token_id, i + 1)) for i in range(40))), 10)
            assert used_and_rows(path, token_id) == (sum(range(1, 41)), 40)  # committed on return

    asyncio.run(scenario())
    assert sum(batches) == 40 and len(batches) < 40


def test_one_bad_settlement_fails_alone(token_db):
    path, token_id = token_db

    async def scenario() -> None:
        async with running_writer(path) as writer:
            results = await asyncio.wait_for(asyncio.gather(
                writer.commit(settlement(token_id, 5)), writer.commit(settlement(token_id, 7, status=None)),
                writer.commit(settlement(token_id, 11)), return_exceptions=True), 10)
            assert results[0] is None and results[2] is None and isinstance(results[1], Exception)

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


def test_a_group_whose_transaction_fails_is_written_op_by_op_and_the_next_group_follows(token_db, monkeypatch):
    path, token_id = token_db
    real = quota_store.write_each
    failed: list[int] = []

    def locked_once(db, ops):
        if len(ops) > 1 and not failed:
            failed.append(len(ops))
            raise sqlite3.OperationalError("database is locked")
        return real(db, ops)

    monkeypatch.setattr(quota_store, "write_each", locked_once)

    async def scenario() -> None:
        async with running_writer(path) as writer:
            await asyncio.wait_for(asyncio.gather(*(writer.commit(settlement(token_id, i + 1)) for i in range(3))), 10)
            await asyncio.wait_for(writer.commit(settlement(token_id, 10)), 10)

    asyncio.run(scenario())
    assert failed == [3]
    assert used_and_rows(path, token_id) == (16, 4)


def limited_token(path: str, quota: int, limits: Limits):
    db = open_db(path)
    try:
        token, _ = token_store.create(db, "limited", quota=quota, limits=limits)
        return token
    finally:
        db.close()


def counted(path: str, token_id: int) -> tuple[int, int, int]:
    """(reservations, requests counted per minute, slots in flight) the token holds."""
    db = open_db(path)
    try:
        return (db["reservations"].count_where("token_id = ?", [token_id]),
                db.execute("SELECT COALESCE(SUM(requests), 0) FROM rate_buckets WHERE token_id = ?",
                           [token_id]).fetchone()[0],
                db["inflight"].count_where("token_id = ?", [token_id]))
    finally:
        db.close()


def test_reservations_and_settlements_share_one_commit_and_a_refusal_takes_back_what_it_counted(token_db, batches):
    path, token_id = token_db
    token = limited_token(path, 110, Limits(rpm=3, max_concurrency=10))

    async def scenario() -> list:
        async with running_writer(path) as writer:
            now = time.time()
            # queued in one turn of the loop: one group, in this order
            ops = [writer.reserve(token, 60, 0, "me", now),  # fits
                   writer.reserve(token, 60, 0, "me", now),  # over the quota: its count and slot go back
                   writer.submit(settlement(token_id, 1)),
                   writer.reserve(token, 40, 0, "me", now),  # fits, 10 left
                   writer.reserve(token, 0, 0, "me", now),   # the rpm limit's third
                   writer.reserve(token, 0, 0, "me", now)]   # the fourth: refused
            return await asyncio.wait_for(asyncio.gather(*ops, return_exceptions=True), 10)

    results = asyncio.run(scenario())
    assert batches == [6]
    assert isinstance(results[0], Taken) and results[0].reservation_id is not None
    assert isinstance(results[1], InsufficientQuota)
    assert results[2] is None
    assert isinstance(results[3], Taken) and isinstance(results[4], Taken)
    assert isinstance(results[5], RateLimited) and results[5].kind == "requests"
    assert counted(path, token.id) == (3, 3, 3)  # the refused two hold nothing
    assert used_and_rows(path, token_id) == (1, 1)


def test_a_reservation_after_the_writer_stopped_is_still_written(token_db):
    path, _ = token_db
    token = limited_token(path, 100, Limits())

    async def scenario() -> object:
        worker = DbWorker(path)
        writer = GroupCommit(worker)
        runner = asyncio.create_task(writer.run())
        await asyncio.sleep(0)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        try:
            return await asyncio.wait_for(writer.reserve(token, 10, 0, "me", time.time()), 10)
        finally:
            worker.close()

    assert isinstance(asyncio.run(scenario()), Taken)
    assert counted(path, token.id)[0] == 1


def test_a_group_of_one_refused_reservation_takes_back_what_it_counted_and_the_next_group_commits(token_db):
    """A group of one runs in its own transaction without a savepoint: its refusal must
    still take back all it wrote, alone or joined to a caller's transaction."""
    path, token_id = token_db
    token = limited_token(path, 50, Limits(rpm=5, max_concurrency=5))
    db = open_db(path)
    try:
        reserve = lambda amount: functools.partial(limits.reserve_in, token=token, amount=amount,  # noqa: E731
                                                   tokens=0, owner="me", now=time.time())
        [refused] = quota_store.write_each(db, [reserve(60)])
        assert isinstance(refused, InsufficientQuota) and not db.conn.in_transaction
        assert counted(path, token.id) == (0, 0, 0)
        [taken] = quota_store.write_each(db, [reserve(50)])
        assert isinstance(taken, Taken) and counted(path, token.id) == (1, 1, 1)
        with quota_store.write(db) as conn:  # joined to a caller's transaction: a savepoint again
            conn.execute("UPDATE tokens SET used = 7 WHERE id = ?", [token_id])
            [refused] = quota_store.write_each(db, [reserve(1)])
        assert isinstance(refused, InsufficientQuota)
        assert counted(path, token.id) == (1, 1, 1) and used_and_rows(path, token_id)[0] == 7
    finally:
        db.close()


def test_a_group_whose_refusals_wrote_nothing_runs_without_savepoints(token_db):
    """The usual group (reservations, settlements, refusals that raise before writing) is
    its ops' statements, one BEGIN and one COMMIT: no savepoint per op."""
    path, token_id = token_db
    token = limited_token(path, 100, Limits(rpm=2))
    db = open_db(path)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        reserve = lambda amount: functools.partial(limits.reserve_in, token=token, amount=amount,  # noqa: E731
                                                   tokens=0, owner="me", now=time.time())
        settle = functools.partial(quota_store.settle_in, settlements=[settlement(token_id, 3)])
        results = quota_store.write_each(db, [reserve(10), settle, reserve(10), reserve(10), settle])
    finally:
        db.conn.set_trace_callback(None)
        db.close()
    assert [type(r).__name__ for r in results] == ["Taken", "NoneType", "Taken", "RateLimited", "NoneType"]
    assert not [s for s in statements if "SAVEPOINT" in s or "ROLLBACK" in s]
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert counted(path, token.id)[0] == 2 and used_and_rows(path, token_id) == (6, 2)


def test_a_busy_process_s_booking_waits_for_the_other_open_requests_and_shares_their_commit(token_db, batches):
    path, token_id = token_db

    async def scenario() -> None:
        async with running_writer(path, delay=CommitDelay(30.0), company=lambda: 3, busy=lambda: True) as writer:
            started = time.monotonic()
            first = writer.submit(settlement(token_id, 1))
            await asyncio.sleep(0.1)
            second = writer.submit(settlement(token_id, 2))
            await asyncio.sleep(0.1)
            assert not first.done() and not second.done() and batches == []  # two of the three open
            await asyncio.wait_for(writer.commit(settlement(token_id, 4)), 10)  # the third: sent at once
            assert first.done() and second.done() and time.monotonic() - started < 10
            assert used_and_rows(path, token_id) == (7, 3)

    asyncio.run(scenario())
    assert batches == [3]


def test_a_booking_waits_for_company_no_longer_than_the_commit_delay(token_db, batches):
    path, token_id = token_db

    async def scenario() -> float:
        async with running_writer(path, delay=CommitDelay(0.3), company=lambda: 50, busy=lambda: True) as writer:
            started = time.monotonic()
            await asyncio.wait_for(writer.commit(settlement(token_id, 5)), 10)
            return time.monotonic() - started

    waited = asyncio.run(scenario())
    assert 0.25 <= waited < 5 and batches == [1]


@pytest.mark.parametrize("company, busy", [(1, True), (50, False)], ids=["a lone request", "an idle process"])
def test_a_lone_request_or_an_idle_process_never_waits_for_company(token_db, batches, company, busy):
    path, token_id = token_db

    async def scenario() -> float:
        async with running_writer(path, delay=CommitDelay(30.0), company=lambda: company, busy=lambda: busy) as writer:
            started = time.monotonic()
            await asyncio.wait_for(writer.commit(settlement(token_id, 5)), 10)
            return time.monotonic() - started

    assert asyncio.run(scenario()) < 5 and batches == [1]


def test_stopping_the_writer_while_a_group_waits_for_company_commits_it(token_db):
    path, token_id = token_db

    async def scenario() -> None:
        worker = DbWorker(path)
        writer = GroupCommit(worker, CommitDelay(0.2), company=lambda: 50, busy=lambda: True)
        runner = asyncio.create_task(writer.run())
        await asyncio.sleep(0)
        writer.submit(settlement(token_id, 9))
        runner.cancel()
        await asyncio.wait_for(asyncio.gather(runner, return_exceptions=True), 10)
        worker.close()

    asyncio.run(scenario())
    assert used_and_rows(path, token_id) == (9, 1)
