"""The schema step of usage reports (server/store/schema.py): daily totals, the names of
deleted tokens and channels, and token and channel ids that are never handed out again,
on the release database and next to columns other steps add."""
from __future__ import annotations

import sqlite3

import pytest

from server.store import channels as channel_store
from server.store import schema
from server.store import tokens as token_store
from server.store.db import open_db
from tests.test_schema import release_db, release_keys  # noqa: F401  (pytest fixture)

STEP = next(i for i, m in enumerate(schema.MIGRATIONS) if m.apply is schema._v8_usage_daily_totals)


def table_sql(conn, name: str) -> str:
    return conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [name]).fetchone()[0]


def test_the_release_database_keeps_its_tokens_and_channels_with_their_ids(release_db):
    raw = sqlite3.connect(release_db)
    tokens_before = raw.execute("SELECT * FROM tokens ORDER BY id").fetchall()
    channels_before = raw.execute("SELECT * FROM channels ORDER BY id").fetchall()
    raw.close()
    db = open_db(release_db)
    try:
        assert schema.version(db.conn) == schema.LATEST
        assert [r[:8] for r in db.execute("SELECT * FROM tokens ORDER BY id").fetchall()] == tokens_before
        width = len(channels_before[0])  # later steps add columns after the release's
        assert [r[:width] for r in db.execute("SELECT * FROM channels ORDER BY id").fetchall()] == channels_before
        for table in ("tokens", "channels"):
            assert "AUTOINCREMENT" in table_sql(db.conn, table)
        keys = release_keys()
        assert token_store.get(db, "alice").key_hash == token_store.hash_key(keys["alice"])
        with pytest.raises(sqlite3.IntegrityError):  # names stay unique
            db.execute("INSERT INTO tokens (name, key_hash, created_at) VALUES ('alice', 'x', 0)")
    finally:
        db.close()


def test_an_id_deleted_before_the_step_but_still_named_by_usage_rows_is_not_handed_out_again(release_db):
    raw = sqlite3.connect(release_db)
    raw.execute("DELETE FROM tokens WHERE name = 'carol'")  # id 3, the newest
    raw.execute("INSERT INTO usage (ts, token_id, channel_id, model, kind, stream, status) "
                "VALUES (1, 3, 2, 'm', 'chat', 0, 200)")
    raw.execute("DELETE FROM channels WHERE id = 2")
    raw.commit()
    raw.close()
    db = open_db(release_db)
    try:
        token, _ = token_store.create(db, "dave")
        channel = channel_store.add(db, "new", "simulator", "", "", ["m"], {}, 0)
        assert token.id == 4 and channel.id == 3
        token_store.delete(db, "dave")
        assert token_store.create(db, "erin")[0].id == 5
    finally:
        db.close()


def test_columns_another_step_added_to_tokens_first_survive_the_rebuild(release_db):
    def add_trial_column(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE tokens ADD COLUMN trial_limit INTEGER")
        conn.execute("UPDATE tokens SET trial_limit = id * 10")

    steps = (*schema.MIGRATIONS[:STEP], schema.Migration("trial limit", add_trial_column), schema.MIGRATIONS[STEP])
    conn = sqlite3.connect(release_db)
    try:
        schema.migrate(conn, steps)
        assert conn.execute("SELECT name, trial_limit FROM tokens ORDER BY id").fetchall() == [
            ("alice", 10), ("bob", 20), ("carol", 30)]
        assert "AUTOINCREMENT" in table_sql(conn, "tokens")
        assert {r[1] for r in conn.execute("PRAGMA index_list(tokens)")} == {"idx_tokens_name", "idx_tokens_key_hash"}
    finally:
        conn.close()


def test_deleting_a_token_or_channel_remembers_its_name(tmp_path):
    db = open_db(str(tmp_path / "st-ai.db"))
    try:
        token, _ = token_store.create(db, "gone")
        channel = channel_store.add(db, "old", "simulator", "", "", ["m"], {}, 0)
        token_store.delete(db, "gone")
        channel_store.delete(db, "old")
        assert db.execute("SELECT kind, id, name FROM deleted_names ORDER BY kind").fetchall() == [
            ("channel", channel.id, "old"), ("token", token.id, "gone")]
    finally:
        db.close()
