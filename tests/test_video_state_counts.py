"""Video tasks counted by the state they are in (server/store/videos.py count_by_state, read
by GET /metrics): a task is counted under its status, except an open one a client deleted
(`cancelled`) or a create is still submitting (`submitting`); a deleted finished task keeps
its status. The count reads one snapshot, also inside a transaction the caller holds."""
from __future__ import annotations

import pytest

from server.store import videos
from server.store.db import open_db


@pytest.fixture
def db(tmp_path):
    database = open_db(str(tmp_path / "st-ai.db"))
    yield database
    database.close()


def task(db, status: str, deleted: int = 0, confirmed: int = 1) -> None:
    videos.insert(db, videos.VideoTask(id=videos.new_id(), token_id=1, model="m", channel_id=1,
                                       upstream_model="u", request={}, status=status, deleted=deleted,
                                       confirmed=confirmed))


def test_tasks_are_counted_by_the_state_they_are_in(db):
    for status, count in (("queued", 2), ("in_progress", 3), ("completed", 4), ("failed", 1)):
        for _ in range(count):
            task(db, status)
    task(db, "queued", deleted=1)
    task(db, "in_progress", deleted=1)
    task(db, "completed", deleted=1)  # deleted after it finished: still a completed task
    task(db, "queued", confirmed=0)
    assert videos.count_by_state(db) == {"queued": 2, "in_progress": 3, "completed": 5, "failed": 1,
                                         "cancelled": 2, "submitting": 1}


def test_an_empty_table_counts_nothing(db):
    assert videos.count_by_state(db) == {}


def test_counting_inside_a_transaction_the_caller_holds_leaves_it_open(db):
    task(db, "queued")
    db.conn.execute("BEGIN")
    try:
        assert videos.count_by_state(db) == {"queued": 1}
        assert db.conn.in_transaction
    finally:
        db.conn.execute("COMMIT")
