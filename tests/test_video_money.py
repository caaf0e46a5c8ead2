"""server/store/video_money.py: a video task's money moves in the same transaction as its
state, once. Two connections stand for two st-ai processes on one database."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from server.billing.video_billing import Ending, booking
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store import video_money
from server.store import videos as store
from server.store.db import open_db
from server.store.quota import Attempt
from server.store.videos import VideoTask

COST = 1_200_000
PAID = booking(Ending(200, billed=True))
FAILED = booking(Ending(502, "failed"))
DELETED = booking(Ending(499, "video_deleted"))


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    path = str(tmp_path / "st-ai.db")
    open_db(path).close()
    return path


def open_task(db, token_id: int, confirmed: int = 1, key: str | None = None) -> VideoTask:
    """A task stored as a create stores it: holding its reservation."""
    now = time.time()
    task = VideoTask(id=store.new_id(), token_id=token_id, model="sora", channel_id=1, upstream_model="sora-2",
                     request={"prompt": "a fox"}, asked={"duration": 4.0, "width": 1280, "height": 720},
                     created_at=int(now), updated_at=int(now), confirmed=confirmed, charge=COST,
                     request_id="req-1", idempotency_key=key, request_hash="h" if key else None)
    task.reservation_id = quota_store.reserve(db, token_id, COST, "me")
    assert video_money.insert(db, task, task.reservation_id, 0) is None
    return task


def ledger(db, token_id: int) -> list[dict]:
    return [dict(r) for r in db.query("SELECT * FROM ledger WHERE token_id = ?", [token_id])]


def test_the_stale_sweep_never_releases_a_live_tasks_reservation(db_path):
    db = open_db(db_path)
    token, _ = token_store.create(db, "t", quota=10 * COST)
    task = open_task(db, token.id)
    plain = quota_store.reserve(db, token.id, 5, "a-killed-process")
    assert quota_store.release_stale(db, time.time() + 3600, "someone-else") == 1  # only the plain one
    assert video_money.holds(db, task.id) == COST
    assert plain not in [r[0] for r in db.execute("SELECT id FROM reservations")]


def test_completion_swapped_by_two_processes_books_once(db_path):
    one, two = open_db(db_path), open_db(db_path)
    token, _ = token_store.create(one, "t", quota=10 * COST)
    task = open_task(one, token.id)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda db=db: results.append(video_money.finish(
        db, task.id, {"status": "completed"}, PAID))) for db in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [False, True]
    status = quota_store.status(one, "t")
    assert (status.used, status.reserved) == (COST, 0)
    assert [(r["cost"], r["video_seconds"], r["status"]) for r in ledger(one, token.id)] == [(COST, "4", 200)]


def test_a_failure_after_completion_changes_nothing_and_a_failure_refunds_once(db_path):
    db = open_db(db_path)
    token, _ = token_store.create(db, "t", quota=10 * COST)
    done, failed = open_task(db, token.id), open_task(db, token.id)
    assert video_money.finish(db, done.id, {"status": "completed"}, PAID)
    assert not video_money.finish(db, done.id, {"status": "failed"}, FAILED)
    assert video_money.finish(db, failed.id, {"status": "failed"}, FAILED)
    assert not video_money.finish(db, failed.id, {"status": "failed"}, FAILED)
    status = quota_store.status(db, "t")
    assert (status.used, status.reserved) == (COST, 0)
    assert sorted(r["cost"] for r in ledger(db, token.id)) == [0, COST]


@pytest.mark.parametrize("first", ["delete", "complete"])
def test_a_delete_racing_a_completion_settles_once(db_path, first):
    db = open_db(db_path)
    token, _ = token_store.create(db, "t", quota=10 * COST)
    task = open_task(db, token.id)
    steps = {"delete": lambda: video_money.delete(db, task.id, DELETED),
             "complete": lambda: video_money.finish(db, task.id, {"status": "completed"}, PAID)}
    steps[first]()
    steps["complete" if first == "delete" else "delete"]()
    status = quota_store.status(db, "t")
    assert status.reserved == 0 and status.used == (COST if first == "complete" else 0)
    assert len(ledger(db, token.id)) == 1 and quota_store.ledger_total(db, token.id) == status.used


def test_only_a_task_no_channel_accepted_is_dropped_and_an_accepted_one_is_never(db_path):
    db = open_db(db_path)
    token, _ = token_store.create(db, "t", quota=10 * COST)
    refused, accepted = open_task(db, token.id, confirmed=0), open_task(db, token.id, confirmed=0)
    tried = (Attempt(1, "sora-2", 503, "upstream_error", 12), Attempt(2, "sora-2", 502, "upstream_error", 9))
    assert video_money.accept(db, accepted.id, {"upstream_id": "up-1", "channel_id": 2}).confirmed == 1
    assert video_money.drop(db, refused.id, FAILED, tried) and not video_money.drop(db, refused.id, FAILED)
    assert not video_money.drop(db, accepted.id, FAILED) and video_money.accept(db, accepted.id, {}) is None
    assert store.get(db, refused.id) is None and store.get(db, accepted.id).upstream_id == "up-1"
    assert quota_store.status(db, "t").reserved == COST  # the accepted task's, still held
    (row,) = ledger(db, token.id)
    assert row["cost"] == 0 and row["channel_id"] == 2  # booked on the channel tried last
    attempts = db.execute("SELECT channel_id, status FROM attempts WHERE ledger_id = ?", [row["id"]]).fetchall()
    assert attempts == [(1, 503), (2, 502)]


def test_a_second_insert_with_the_same_key_gets_the_first_task_and_holds_nothing(db_path):
    db = open_db(db_path)
    token, _ = token_store.create(db, "t", quota=10 * COST)
    first = open_task(db, token.id, key="k")
    now = time.time()
    second = VideoTask(id=store.new_id(), token_id=token.id, model="sora", channel_id=1, upstream_model="sora-2",
                       request={}, created_at=int(now), updated_at=int(now), idempotency_key="k")
    reservation = quota_store.reserve(db, token.id, COST, "me")
    holder = video_money.insert(db, second, reservation, now - 86400)
    assert holder is not None and holder.id == first.id
    assert store.get(db, second.id) is None and quota_store.status(db, "t").reserved == COST
    # a key older than the retention is forgotten: the same key makes a new task
    assert video_money.insert(db, second, None, now + 10) is None
    assert store.get(db, second.id) is not None and store.get(db, first.id).idempotency_key is None
