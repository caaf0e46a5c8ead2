"""The webhook outbox in SQLite: the schema step on a release database, an event written
in the very transaction that ends its task (none when the task was already final or the
transaction rolls back), leases that two senders never share, and a token's secret
made once and rotated on demand."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from server.store import schema, video_money
from server.store import tokens as token_store
from server.store import videos as video_store
from server.store import webhook_events as outbox
from server.store.db import open_db
from server.store.token_edits import KEEP
from server.store.videos import VideoTask

RELEASE_SQL = Path(__file__).parent / "fixtures" / "release_db.sql"


@pytest.fixture
def db(tmp_path):
    conn = open_db(str(tmp_path / "st-ai.db"))
    yield conn
    conn.close()


def hooked(db, url: str | None = "https://hooks.example.com/h") -> int:
    token, _ = token_store.create(db, f"t{time.monotonic_ns()}")
    with db.conn:
        outbox.set_webhook_in(db.conn, token.id, url, False, KEEP)
    return token.id


def open_task(db, token_id: int, callback_url: str | None = None) -> str:
    task = VideoTask(id=video_store.new_id(), token_id=token_id, model="m", channel_id=1, upstream_model="m",
                     request={"prompt": "p"}, created_at=int(time.time()), callback_url=callback_url)
    video_store.insert(db, task)
    return task.id


def no_booking(task):
    return None


def test_the_schema_step_keeps_a_release_database_and_adds_the_outbox(tmp_path):
    path = str(tmp_path / "release.db")
    conn = sqlite3.connect(path)
    conn.executescript(RELEASE_SQL.read_text())
    tokens_before = conn.execute("SELECT id, name, key_hash FROM tokens ORDER BY id").fetchall()
    conn.close()
    db = open_db(path)
    try:
        assert schema.version(db.conn) == schema.LATEST
        assert db.execute("SELECT id, name, key_hash FROM tokens ORDER BY id").fetchall() == tokens_before
        assert {r[0] for r in db.execute("SELECT webhook_url FROM tokens")} == {None}
        assert {r[0] for r in db.execute("SELECT callback_url FROM videos")} == {None}
        assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0
    finally:
        db.close()


def test_finishing_a_task_writes_its_event_in_the_same_transaction(db, monkeypatch):
    token_id = hooked(db)
    task_id = open_task(db, token_id)
    monkeypatch.setattr(video_money, "_book", lambda conn, task, booking: None)
    assert video_money.finish(db, task_id, {"status": "completed"}, no_booking)
    [event] = db.query("SELECT * FROM webhook_events")
    assert (event["video_id"], event["type"], event["url"], event["status"]) == (
        task_id, "video.completed", "https://hooks.example.com/h", "pending")
    # the swap is lost a second time: no second event
    assert not video_money.finish(db, task_id, {"status": "failed"}, no_booking)
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 1


def test_a_final_state_that_rolls_back_leaves_no_event(db, monkeypatch):
    token_id = hooked(db)
    task_id = open_task(db, token_id)

    def booking_fails(conn, task, booking):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(video_money, "_book", booking_fails)
    with pytest.raises(sqlite3.OperationalError):
        video_money.finish(db, task_id, {"status": "failed"}, no_booking)
    assert db.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0
    assert video_store.get(db, task_id).status == "queued"


def test_a_callback_url_wins_and_a_token_without_a_url_gets_no_event(db, monkeypatch):
    monkeypatch.setattr(video_money, "_book", lambda conn, task, booking: None)
    with_callback = open_task(db, hooked(db), callback_url="https://client.example.com/cb")
    silent = open_task(db, hooked(db, url=None))
    for task_id in (with_callback, silent):
        assert video_money.finish(db, task_id, {"status": "completed"}, no_booking)
    rows = list(db.query("SELECT video_id, url, from_client FROM webhook_events"))
    assert rows == [{"video_id": with_callback, "url": "https://client.example.com/cb", "from_client": 1}]


def test_two_senders_never_hold_one_event(db, monkeypatch):
    monkeypatch.setattr(video_money, "_book", lambda conn, task, booking: None)
    token_id = hooked(db)
    for _ in range(5):
        assert video_money.finish(db, open_task(db, token_id), {"status": "completed"}, no_booking)
    now = time.time()
    first = outbox.claim_due(db, "host:1:a", now, 30, 3)
    second = outbox.claim_due(db, "host:2:b", now, 30, 10)
    assert len(first) == 3 and len(second) == 2
    assert not {e.id for e in first} & {e.id for e in second}
    assert outbox.claim_due(db, "host:3:c", now, 30, 10) == []
    # an acknowledged event is never claimed again, even once its lease would have run out
    assert outbox.delivered(db, first[0].id, "host:1:a")
    assert not outbox.delivered(db, first[0].id, "host:1:a")
    assert first[0].id not in {e.id for e in outbox.claim_due(db, "host:3:c", now + 3600, 30, 10)}


def test_the_first_url_makes_a_secret_and_only_rotation_replaces_it(db):
    token, _ = token_store.create(db, "s")
    with db.conn:
        first = outbox.set_webhook_in(db.conn, token.id, "https://a.example.com", False, KEEP)
        again = outbox.set_webhook_in(db.conn, token.id, "https://b.example.com", False, KEEP)
        cleared = outbox.set_webhook_in(db.conn, token.id, None, False, KEEP)
        rotated = outbox.set_webhook_in(db.conn, token.id, KEEP, True, KEEP)
    assert first.startswith("whsec_") and again is None and cleared is None
    assert rotated.startswith("whsec_") and rotated != first
    assert outbox.token_webhook(db, token.id) == outbox.TokenWebhook(None, True)
