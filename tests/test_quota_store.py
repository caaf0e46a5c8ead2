"""server/store/quota.py and `st-ai token create|update|show`: quotas, reservations and the
ledger, each change one transaction; concurrent reservations from separate connections (as
two processes make them) never overspend."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlite_utils

from server.store import quota as quota_store
from server.store import schema
from server.store import tokens as token_store
from server.store.db import open_db
from server.store.quota import InsufficientQuota, LedgerRow, Settlement
from tests.test_cli import run
from tests.test_schema import RELEASE_SQL  # noqa: F401  (the release fixture's file)
from tests.test_schema import release_db  # noqa: F401  (pytest fixture)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    path = str(tmp_path / "st-ai.db")
    open_db(path).close()
    return path


def row(token_id: int, cost: int, **fields) -> LedgerRow:
    return LedgerRow(ts=time.time(), request_id="req-1", token_id=token_id, model="m", upstream_model="m",
                     channel_id=1, kind="chat", status=200, cost=cost, **fields)


def test_reserve_then_settle_moves_the_real_cost_to_used_and_releases_the_rest(db_path):
    db = open_db(db_path)
    token, _ = token_store.create(db, "t", quota=1_000_000)
    rid = quota_store.reserve(db, token.id, 400_000, "me")
    assert quota_store.status(db, "t").remaining == 600_000
    quota_store.settle_many(db, [Settlement(rid, row(token.id, 150_000, prompt_tokens=10))])
    status = quota_store.status(db, "t")
    assert (status.used, status.reserved, status.remaining) == (150_000, 0, 850_000)
    assert quota_store.ledger_total(db, token.id) == 150_000


def test_a_reservation_the_remaining_quota_cannot_cover_is_refused_and_holds_nothing(db_path):
    db = open_db(db_path)
    token, _ = token_store.create(db, "t", quota=100)
    quota_store.reserve(db, token.id, 60, "me")
    with pytest.raises(InsufficientQuota) as refused:
        quota_store.reserve(db, token.id, 41, "me")
    assert refused.value.remaining == 40
    assert quota_store.status(db, "t").reserved == 60


def test_an_unlimited_token_reserves_nothing_but_its_spend_is_still_booked(db_path):
    db = open_db(db_path)
    token, _ = token_store.create(db, "t")
    assert quota_store.reserve(db, token.id, 10**9, "me") is None
    quota_store.settle_many(db, [Settlement(None, row(token.id, 7))])
    assert quota_store.status(db, "t").used == 7 and quota_store.status(db, "t").remaining is None


def test_a_failed_settlement_changes_neither_used_nor_the_ledger(db_path):
    db = open_db(db_path)
    token, _ = token_store.create(db, "t", quota=1000)
    rid = quota_store.reserve(db, token.id, 100, "me")
    bad = Settlement(rid, LedgerRow(ts=time.time(), request_id=None, token_id=token.id, model="m",
                                    upstream_model=None, channel_id=None, kind="chat", status=None, cost=50))
    with pytest.raises(sqlite3.IntegrityError):  # status is NOT NULL: the row cannot be written
        quota_store.settle_many(db, [Settlement(None, row(token.id, 5)), bad])
    status = quota_store.status(db, "t")
    assert (status.used, status.reserved, quota_store.ledger_total(db, token.id)) == (0, 100, 0)


def test_concurrent_reservations_from_many_connections_never_overspend(db_path):
    setup = open_db(db_path)
    token, _ = token_store.create(setup, "t", quota=5 * 100)
    granted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        db = open_db(db_path)  # its own connection, as another process would have
        try:
            quota_store.reserve(db, token.id, 100, f"owner-{i % 2}")
            with lock:
                granted.append(i)
        except InsufficientQuota:
            with lock:
                refused.append(i)
        finally:
            db.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(granted) == 5 and len(refused) == 45
    assert quota_store.status(setup, "t").remaining == 0


def test_a_dead_process_reservations_are_released_by_the_next_sweep_but_live_ones_stay(db_path):
    db = open_db(db_path)
    token, _ = token_store.create(db, "t", quota=1000)
    quota_store.reserve(db, token.id, 300, "dead-process")
    quota_store.reserve(db, token.id, 200, "this-process")
    assert quota_store.release_stale(db, time.time() + 1, keep_owner="this-process") == 1
    assert quota_store.status(db, "t").reserved == 200


def test_a_release_database_gains_unlimited_quotas_with_nothing_used(release_db):  # noqa: F811
    db = open_db(release_db)
    for token in token_store.all_tokens(db):
        assert (token.quota, token.used) == (None, 0)
    assert db["reservations"].count == 0
    # its usage rows became zero-cost history rows, so the ledger still sums to `used`
    assert sum(row["cost"] for row in db["ledger"].rows) == 0
    assert all(row["history"] for row in db["ledger"].rows)


# -- the CLI ---------------------------------------------------------------------------------

def test_reservations_held_across_the_index_step_still_count_and_video_ones_are_found(tmp_path):
    path = str(tmp_path / "st-ai.db")
    conn = sqlite3.connect(path)
    schema.migrate(conn, schema.MIGRATIONS[:14])  # the release before the covering index
    token, _ = token_store.create(sqlite_utils.Database(conn), "t", quota=1_000)
    conn.executemany("INSERT INTO reservations (token_id, amount, owner, created_at, video_id) VALUES (?, ?, ?, ?, ?)",
                     [(token.id, 300, "me", time.time(), None), (token.id, 200, "me", time.time(), "video_1")])
    conn.commit()
    conn.close()

    db = open_db(path)
    try:
        assert schema.version(db.conn) == schema.LATEST
        assert quota_store.status(db, "t").remaining == 500
        with pytest.raises(InsufficientQuota):
            quota_store.reserve(db, token.id, 501, "me")
        plan = " ".join(r[-1] for r in db.conn.execute(f"EXPLAIN QUERY PLAN {quota_store._RESERVE}",
                                                        [token.id, 1, "me", 0.0, token.id, token.id, 1]))
        assert "COVERING INDEX idx_reservations_token_id_amount" in plan  # the sum needs no table row
        assert db.execute("SELECT SUM(amount) FROM reservations WHERE video_id = ?", ["video_1"]).fetchone()[0] == 200
        plan = " ".join(r[-1] for r in db.conn.execute(
            "EXPLAIN QUERY PLAN DELETE FROM reservations WHERE video_id = ?", ["video_1"]))
        assert "idx_reservations_video_id" in plan  # the partial index still finds a task's reservation
    finally:
        db.close()


def test_token_create_update_and_show_speak_decimal_amounts(db_path):
    assert run("token", "create", "--name", "t", "--quota", "2.5", db=db_path).code == 0
    shown = json.loads(run("token", "show", "t", "--json", db=db_path).out)
    assert (shown["quota"], shown["used"], shown["remaining"]) == ("2.5", "0", "2.5")

    assert run("token", "update", "t", "--add-quota", "0.000001", db=db_path).code == 0
    assert json.loads(run("token", "show", "t", "--json", db=db_path).out)["quota"] == "2.500001"

    db = open_db(db_path)
    token = token_store.get(db, "t")
    quota_store.settle_many(db, [Settlement(quota_store.reserve(db, token.id, 10, "x"), row(token.id, 1_250_000))])
    shown = json.loads(run("token", "show", "t", "--json", db=db_path).out)
    assert (shown["used"], shown["remaining"]) == ("1.25", "1.250001")
    assert "remaining: 1.250001" in run("token", "show", "t", db=db_path).out

    assert run("token", "update", "t", "--quota", "none", db=db_path).code == 0
    shown = json.loads(run("token", "show", "t", "--json", db=db_path).out)
    assert (shown["quota"], shown["used"], shown["remaining"]) == (None, "1.25", None)


@pytest.mark.parametrize("argv", [
    ("token", "create", "--name", "x", "--quota", "1e3"),
    ("token", "create", "--name", "x", "--quota", "-1"),
    ("token", "create", "--name", "x", "--quota", "0.0000001"),
    ("token", "update", "t", "--quota", "lots"),
    ("token", "update", "t"),
    ("token", "update", "nobody", "--quota", "1"),
    ("token", "show", "nobody"),
])
def test_careless_quota_commands_are_refused_in_one_line(db_path, argv):
    run("token", "create", "--name", "t", db=db_path)
    result = run(*argv, db=db_path)
    assert result.code != 0 and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_adding_to_an_unlimited_quota_is_refused(db_path):
    run("token", "create", "--name", "t", db=db_path)
    result = run("token", "update", "t", "--add-quota", "1", db=db_path)
    assert result.code != 0 and "unlimited" in result.err


async def test_a_running_st_ai_keeps_releasing_reservations_of_processes_killed_meanwhile(db_path):
    from server.billing.admission import sweep_stale_reservations
    from server.store.db import DbWorker

    db = open_db(db_path)
    token, _ = token_store.create(db, "t", quota=1000)
    worker = DbWorker(db_path)
    sweep = asyncio.create_task(sweep_stale_reservations(worker, "this-process", upstream_timeout=1.0,
                                                         interval=0.05))
    try:
        quota_store.reserve(db, token.id, 200, "this-process")
        # made after this process started, by one killed since: long past any request's life
        killed = quota_store.reserve(db, token.id, 300, "killed-process")
        with db.conn:
            db.conn.execute("UPDATE reservations SET created_at = ? WHERE id = ?", [time.time() - 3600, killed])
        deadline = time.monotonic() + 5
        while quota_store.status(db, "t").reserved != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert quota_store.status(db, "t").reserved == 200  # the killed one's 300 is free again
    finally:
        sweep.cancel()
        await asyncio.gather(sweep, return_exceptions=True)
        worker.close()
        db.close()
