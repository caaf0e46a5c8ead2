"""server/admin/ on the database alone: the schema step that adds the admin key and the
audit log keeps a released database's data, and an audited change and its audit row
commit together or not at all."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.admin import audit, keys
from server.admin import tokens as admin_tokens
from server.admin.errors import Conflict, NotFound
from server.errors import GatewayError
from server.store import schema
from server.store import tokens as token_store
from server.store.db import open_db
from server.store.token_edits import KEEP
from server.store.tokens import TokenError

RELEASE_SQL = Path(__file__).parent / "fixtures" / "release_db.sql"
STEP = next(i for i, m in enumerate(schema.MIGRATIONS, 1) if m.apply is schema._admin_key_and_audit)


@pytest.fixture
def db(tmp_path):
    database = open_db(str(tmp_path / "st-ai.db"))
    yield database
    database.close()


def audit_rows(db) -> list[tuple[str, str]]:
    return [tuple(r) for r in db.conn.execute("SELECT operation, target FROM audit ORDER BY id")]


def test_the_admin_step_migrates_a_released_database_keeping_its_tokens(tmp_path):
    path = str(tmp_path / "release.db")
    conn = sqlite3.connect(path)
    conn.executescript(RELEASE_SQL.read_text())
    names = sorted(r[0] for r in conn.execute("SELECT name FROM tokens"))
    conn.close()
    db = open_db(path)
    try:
        assert schema.version(db.conn) == schema.LATEST >= STEP
        assert sorted(t.name for t in token_store.all_tokens(db)) == names
        assert db["audit"].count == 0 and keys.active(db) is None
    finally:
        db.close()


def test_a_refused_update_changes_nothing_and_leaves_no_audit_row(db):
    admin_tokens.create(db, audit.CLI, "unlimited-tok")
    # the rename would pass, the quota addition is refused (the token is unlimited): neither happens
    with pytest.raises(TokenError, match="no quota to add to"):
        admin_tokens.update(db, audit.CLI, "unlimited-tok",
                            admin_tokens.TokenChanges(new_name="renamed", models=["m"], add_quota=1))
    assert token_store.get(db, "unlimited-tok").models is None
    assert audit_rows(db) == [("token.create", "unlimited-tok")]
    with pytest.raises(Conflict):
        admin_tokens.create(db, audit.CLI, "unlimited-tok")
    with pytest.raises(NotFound):
        admin_tokens.set_enabled(db, audit.CLI, "no-such", False)
    assert audit_rows(db) == [("token.create", "unlimited-tok")]
    assert not db.conn.in_transaction


def test_an_update_and_its_audit_row_commit_together(db):
    admin_tokens.create(db, audit.CLI, "quota-tok", quota=1_000_000)
    admin_tokens.update(db, audit.Actor("admin key #1 (...abcd)", "req-1"), "quota-tok",
                        admin_tokens.TokenChanges(new_name="quota-tok2", add_quota=500_000, expires_at=KEEP))
    token = token_store.get(db, "quota-tok2")
    assert token.quota == 1_500_000
    row = db.conn.execute("SELECT actor, operation, target, request_id, summary FROM audit ORDER BY id DESC").fetchone()
    assert row == ("admin key #1 (...abcd)", "token.update", "quota-tok", "req-1",
                   '{"add_quota": "0.5", "name": "quota-tok2"}')
    assert not db.conn.in_transaction


def test_the_admin_key_is_created_once_and_checked_in_constant_time_by_its_hash(db):
    key = keys.ensure(db)
    assert key.startswith(keys.PREFIX) and keys.ensure(db) is None
    stored = db.conn.execute("SELECT key_hash, key_hint FROM admin_keys").fetchall()
    assert len(stored) == 1 and key not in repr(stored)
    auth = keys.AdminAuth()
    assert auth.check(db, f"Bearer {key}").id == 1
    for wrong in (None, "", key, f"Basic {key}", f"Bearer {key}x", "Bearer "):
        with pytest.raises(GatewayError) as caught:
            auth.check(db, wrong)
        assert caught.value.http_status == 401
