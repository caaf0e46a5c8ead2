"""server/store/schema.py: the schema version and in-place migrations, on a database the
release before versions wrote (tests/fixtures/release_db.sql), on fresh files, on failing
steps, on two processes racing, and on a database from a newer st-ai."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from server.store import channels as channel_store
from server.store import schema
from server.store import tokens as token_store
from server.store import videos as video_store
from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway

# every released step (this release's own), before the test-local ones
RELEASED = len(schema.MIGRATIONS)

ROOT = Path(__file__).resolve().parent.parent
RELEASE_SQL = Path(__file__).parent / "fixtures" / "release_db.sql"
COMPLETED_VIDEO = "video_" + "a" * 48


def release_keys() -> dict[str, str]:
    """The token keys the fixture's generator printed in its header."""
    return {line.split()[2]: line.split()[3] for line in RELEASE_SQL.read_text().splitlines()
            if line.startswith("-- key ")}


@pytest.fixture
def release_db(tmp_path: Path) -> str:
    """A database file exactly as the release before schema versions left it."""
    path = str(tmp_path / "st-ai.db")
    conn = sqlite3.connect(path)
    conn.executescript(RELEASE_SQL.read_text())
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return path


def user_version(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return schema.version(conn)
    finally:
        conn.close()


def shape(conn: sqlite3.Connection) -> dict:
    """Every table's columns (name, type, not null, default, pk) and every index's columns."""
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    result = {}
    for table in tables:
        columns = [tuple(r[1:]) for r in conn.execute(f'PRAGMA table_info("{table}")')]
        indexes = {r[1]: (r[2], [c[2] for c in conn.execute(f'PRAGMA index_info("{r[1]}")')])
                   for r in conn.execute(f'PRAGMA index_list("{table}")')}
        result[table] = (columns, indexes)
    return result


def add_quota_column(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE tokens ADD COLUMN trial_quota INTEGER")


def give_everyone_quota(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE tokens SET trial_quota = 1000")


# -- the release before versions ------------------------------------------------------------

def test_release_database_migrates_and_keeps_tokens_channels_tasks_and_usage(release_db):
    before = sqlite3.connect(release_db)
    assert schema.version(before) == 0
    usage_before = before.execute("SELECT * FROM usage ORDER BY id").fetchall()
    videos_before = before.execute("SELECT * FROM videos ORDER BY id").fetchall()
    before.close()

    db = open_db(release_db)
    try:
        assert schema.version(db.conn) == schema.LATEST
        assert [t.name for t in token_store.all_tokens(db)] == ["alice", "bob", "carol"]
        keys = release_keys()
        for token in token_store.all_tokens(db):
            assert token.key_hash == token_store.hash_key(keys[token.name])
        assert token_store.get(db, "bob").models == frozenset({"gpt-4o-mini", "sora-2"})
        assert not token_store.get(db, "carol").enabled
        openai = channel_store.get(db, "openai")
        assert openai.key == "sk-upstream-fixture-key-0001"
        assert openai.model_map == {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
        assert [c.name for c in channel_store.all_channels(db)] == ["openai", "sim"]
        assert_usage_rows_became_history_rows(db, usage_before)
        videos_after = db.execute("SELECT * FROM videos ORDER BY id").fetchall()
        # later steps only add columns to videos, after the release's own
        assert [row[:len(videos_before[0])] for row in videos_after] == videos_before
        # a task of the release was answered long ago: it counts as confirmed (submittable)
        assert video_store.get(db, COMPLETED_VIDEO).confirmed == 1
        assert video_store.get(db, COMPLETED_VIDEO).status == "completed"
        # alice's two gpt-4o-mini attempts still add up, now in the ledger
        requests, tokens = db.execute(
            "SELECT COUNT(*), SUM(prompt_tokens + completion_tokens) FROM ledger l JOIN tokens t ON t.id = l.token_id "
            "WHERE t.name = 'alice' AND l.model = 'gpt-4o-mini'").fetchone()
        assert (requests, tokens) == (2, 150)
    finally:
        db.close()


def assert_usage_rows_became_history_rows(db, usage_before: list[tuple]) -> None:
    """Each of the release's per-attempt usage rows is one zero-cost ledger row marked as
    history, with that attempt beside it; the usage table keeps none of them."""
    assert db["usage"].count == 0
    ledger = [dict(r) for r in db.query("SELECT * FROM ledger ORDER BY id")]
    assert len(ledger) == len(usage_before)
    for old, row in zip(usage_before, ledger):
        _, ts, token_id, channel_id, model, upstream_model, kind, stream, status, prompt, completion, _, latency = old
        assert (row["ts"], row["token_id"], row["channel_id"], row["model"], row["upstream_model"], row["kind"],
                row["stream"], row["status"], row["prompt_tokens"], row["completion_tokens"], row["latency_ms"]) == (
            ts, token_id, channel_id, model, upstream_model, kind, stream, status, prompt, completion, latency)
        assert (row["cost"], row["history"], row["request_id"]) == (0, 1, None)
        attempts = [dict(a) for a in db.query("SELECT * FROM attempts WHERE ledger_id = ?", [row["id"]])]
        assert [(a["channel_id"], a["upstream_model"], a["status"], a["latency_ms"]) for a in attempts] == [
            (channel_id, upstream_model, status, latency)]


def test_migrated_release_database_serves_its_keys_and_tasks(release_db, tmp_path):
    keys = release_keys()
    gateway = start_gateway(release_db)
    try:
        def get(path: str, key: str) -> tuple[int, dict]:
            request = urllib.request.Request(gateway.http_url + path, headers={"Authorization": f"Bearer {key}"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status, json.load(response)
            except urllib.error.HTTPError as error:
                return error.code, json.load(error)

        status, models = get("/v1/models", keys["alice"])
        assert status == 200
        assert {"gpt-4o-mini", "sora-2", "sim-chat", "sim-video"} <= {m["id"] for m in models["data"]}
        status, video = get(f"/v1/videos/{COMPLETED_VIDEO}", keys["bob"])
        assert status == 200 and video["status"] == "completed"
        status, error = get("/v1/models", keys["carol"])  # disabled before the migration, still
        assert status == 401 and error["error"]["code"] == "invalid_api_key"
    finally:
        stop_gateway(gateway)
    assert user_version(release_db) == schema.LATEST


def test_an_older_release_without_video_tasks_gains_the_table_and_keeps_its_tokens(release_db):
    conn = sqlite3.connect(release_db)
    conn.execute("DROP TABLE videos")  # as the first release, before images and videos, left it
    conn.commit()
    conn.close()
    db = open_db(release_db)
    try:
        assert schema.version(db.conn) == schema.LATEST
        assert db["videos"].exists() and db["videos"].count == 0
        assert len(token_store.all_tokens(db)) == 3
    finally:
        db.close()


def test_fresh_database_is_created_at_the_latest_version_with_the_release_schema(tmp_path, release_db):
    """A fresh file and the release's database, once migrated, have one and the same schema."""
    open_db(release_db).close()
    db = open_db(str(tmp_path / "fresh.db"))
    released = sqlite3.connect(release_db)
    try:
        assert schema.version(db.conn) == schema.LATEST
        assert shape(db.conn) == shape(released)
    finally:
        db.close()
        released.close()


def test_reopening_a_current_database_changes_nothing(tmp_path):
    path = str(tmp_path / "st-ai.db")
    open_db(path).close()
    steps = (*schema.MIGRATIONS, schema.Migration("add tokens.quota", add_quota_column))
    conn = sqlite3.connect(path)
    try:
        assert [s.name for s in schema.migrate(conn, steps)] == ["add tokens.quota"]
        changes = conn.total_changes
        assert schema.migrate(conn, steps) == []
        assert schema.migrate(conn, steps) == []
        assert conn.total_changes == changes and not conn.in_transaction
        assert schema.version(conn) == len(steps)
    finally:
        conn.close()


# -- steps: order, atomicity, backups ----------------------------------------------------

def test_steps_apply_in_order_and_keep_data(release_db):
    steps = (*schema.MIGRATIONS, schema.Migration("add tokens.quota", add_quota_column),
             schema.Migration("quota for everyone", give_everyone_quota))
    conn = sqlite3.connect(release_db)
    try:
        applied = schema.migrate(conn, steps)
        assert [s.name for s in applied] == [s.name for s in steps]
        assert schema.version(conn) == RELEASED + 2
        assert conn.execute("SELECT name, trial_quota FROM tokens ORDER BY id").fetchall() == [
            ("alice", 1000), ("bob", 1000), ("carol", 1000)]
    finally:
        conn.close()


def test_a_failing_step_rolls_back_and_leaves_the_previous_version(release_db):
    def half_done_then_fails(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE tokens ADD COLUMN trial_rpm INTEGER")
        conn.execute("UPDATE tokens SET enabled = 0")
        conn.execute("CREATE TABLE trial_ledger (id INTEGER PRIMARY KEY)")
        raise ValueError("disk says no")

    open_db(release_db).close()
    steps = (*schema.MIGRATIONS, schema.Migration("add tokens.quota", add_quota_column),
             schema.Migration("limits", half_done_then_fails))
    conn = sqlite3.connect(release_db)
    try:
        with pytest.raises(schema.SchemaError) as failure:
            schema.migrate(conn, steps)
        assert (f"version {RELEASED + 2} (limits) failed, the database stays at version {RELEASED + 1}: "
                "disk says no") in str(failure.value)
        assert schema.version(conn) == RELEASED + 1  # the step before it did commit
        columns = [r[1] for r in conn.execute("PRAGMA table_info(tokens)")]
        assert "trial_quota" in columns and "trial_rpm" not in columns
        assert conn.execute("SELECT COUNT(*) FROM tokens WHERE enabled = 1").fetchone()[0] == 2
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'trial_ledger'").fetchall()
    finally:
        conn.close()
    # the next open, with the step fixed, carries on from where it stopped
    fixed = (*steps[:-1], schema.Migration("limits", lambda c: c.execute("ALTER TABLE tokens ADD COLUMN trial_rpm INTEGER")))
    conn = sqlite3.connect(release_db)
    try:
        assert [s.name for s in schema.migrate(conn, fixed)] == ["limits"]
        assert schema.version(conn) == RELEASED + 2
    finally:
        conn.close()


def test_a_step_that_commits_on_its_own_is_refused(release_db):
    def commits(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE tokens ADD COLUMN trial_quota INTEGER")
        conn.commit()

    conn = sqlite3.connect(release_db)
    try:
        with pytest.raises(schema.SchemaError, match="committed on its own"):
            schema.migrate(conn, (*schema.MIGRATIONS, schema.Migration("careless", commits)))
        assert schema.version(conn) == RELEASED
    finally:
        conn.close()


def test_a_step_that_rewrites_data_is_preceded_by_a_copy_at_the_old_version(release_db):
    open_db(release_db).close()
    steps = (*schema.MIGRATIONS, schema.Migration("add tokens.quota", add_quota_column),
             schema.Migration("quota for everyone", give_everyone_quota, backup=True))
    conn = sqlite3.connect(release_db)
    try:
        schema.migrate(conn, steps)
    finally:
        conn.close()
    # only the rewriting step took a copy, of the database as the step before it left it
    assert not os.path.exists(schema.backup_path(release_db, RELEASED))
    copy = sqlite3.connect(schema.backup_path(release_db, RELEASED + 1))
    try:
        assert schema.version(copy) == RELEASED + 1
        assert copy.execute("SELECT name, trial_quota FROM tokens ORDER BY id").fetchall() == [
            ("alice", None), ("bob", None), ("carol", None)]
    finally:
        copy.close()
    assert not os.path.exists(schema.backup_path(release_db, RELEASED + 1) + ".partial")
    assert user_version(release_db) == RELEASED + 2


def test_a_fresh_database_is_built_without_copies_but_an_old_one_is_copied_before_a_rewrite(tmp_path, release_db):
    fresh = str(tmp_path / "fresh.db")
    open_db(fresh).close()
    assert user_version(fresh) == schema.LATEST
    # nothing was there to keep: no `.bak` beside a file this start created
    assert sorted(p.name for p in tmp_path.iterdir() if ".bak" in p.name) == []
    # the release's database (tables, no version) is migrated, and copied before each step that rewrites
    open_db(release_db).close()
    rewriting = [i for i, step in enumerate(schema.MIGRATIONS) if step.backup and i > 0]
    assert rewriting
    for old_version in rewriting:
        assert os.path.exists(schema.backup_path(release_db, old_version)), old_version


# -- two processes ----------------------------------------------------------------------

RACER = textwrap.dedent("""
    import os, sqlite3, sys, time
    from server.store import schema

    def slow_quota(conn):
        time.sleep(0.3)  # the other process arrives while this step holds the lock
        conn.execute("ALTER TABLE tokens ADD COLUMN trial_quota INTEGER")  # fails if run twice

    path, go = sys.argv[1], sys.argv[2]
    conn = sqlite3.connect(path, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    deadline = time.monotonic() + 20
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.005)
    steps = (*schema.MIGRATIONS, schema.Migration("slow quota", slow_quota))
    print(len(schema.migrate(conn, steps)), schema.version(conn))
""")


def test_two_processes_opening_an_old_database_at_once_migrate_it_once(release_db, tmp_path):
    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, release_db, str(go)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.5)  # both interpreters up and waiting
    go.touch()
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=30)
        assert racer.returncode == 0, err
        results.append(tuple(int(n) for n in out.split()))
    # every step applied exactly once between them (each takes the write lock on its own, so
    # the two may share the work; a step run twice would have failed its process)
    assert sum(applied for applied, _ in results) == RELEASED + 1
    assert all(version == RELEASED + 1 for _, version in results)
    assert user_version(release_db) == RELEASED + 1


KILLED_MID_STEP = textwrap.dedent("""
    import sqlite3, sys, time
    from server.store import schema

    def rewrite_then_hang(conn):
        conn.execute("ALTER TABLE tokens ADD COLUMN trial_quota INTEGER")
        conn.execute("UPDATE tokens SET trial_quota = 5, enabled = 0")
        print("mid-step", flush=True)
        time.sleep(30)  # SIGKILLed here

    conn = sqlite3.connect(sys.argv[1], timeout=10)
    schema.migrate(conn, (*schema.MIGRATIONS, schema.Migration("quota", rewrite_then_hang)))
""")


def test_sigkill_mid_step_leaves_the_previous_version_and_data(release_db):
    open_db(release_db).close()
    victim = subprocess.Popen([sys.executable, "-c", KILLED_MID_STEP, release_db], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert victim.stdout.readline().strip() == "mid-step"  # the pipe closes if it died early
    finally:
        victim.kill()
        victim.communicate(timeout=10)
    conn = sqlite3.connect(release_db)
    try:
        assert schema.version(conn) == schema.LATEST
        assert "trial_quota" not in [r[1] for r in conn.execute("PRAGMA table_info(tokens)")]
        assert conn.execute("SELECT name, enabled FROM tokens ORDER BY id").fetchall() == [
            ("alice", 1), ("bob", 1), ("carol", 0)]
    finally:
        conn.close()
    db = open_db(release_db)  # and the current release still opens it
    try:
        assert len(token_store.all_tokens(db)) == 3
    finally:
        db.close()


# -- a newer st-ai's database -----------------------------------------------------------

@pytest.fixture
def newer_db(tmp_path: Path) -> str:
    path = str(tmp_path / "newer.db")
    open_db(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema.LATEST + 1}")
    conn.close()
    return path


def assert_refused_in_one_line(proc: subprocess.CompletedProcess, path: str) -> None:
    assert proc.returncode != 0
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert path in lines[0]
    assert f"schema version {schema.LATEST + 1}" in lines[0] and f"up to {schema.LATEST}" in lines[0]
    assert user_version(path) == schema.LATEST + 1


def test_newer_database_is_refused_by_open_db(newer_db):
    with pytest.raises(schema.SchemaError, match="newer st-ai"):
        open_db(newer_db)


def test_newer_database_is_refused_by_token_list_in_one_line(newer_db):
    proc = subprocess.run([sys.executable, "-m", "server.cli", "token", "list", "--db", newer_db],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert_refused_in_one_line(proc, newer_db)


def test_newer_database_is_refused_by_serve_in_one_line(newer_db, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--db", newer_db, "--host", "127.0.0.1",
                           "--http-port", "0", "--grpc-port", "0", "--assets-dir", str(tmp_path / "assets")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ST_AI_LOG_LEVEL": "WARNING"})
    assert_refused_in_one_line(proc, newer_db)


def test_the_release_database_gains_an_empty_prices_table_and_keeps_everything_else(release_db):
    db = open_db(release_db)
    try:
        assert db["prices"].exists() and db["prices"].count == 0
        assert len(token_store.all_tokens(db)) == 3 and db["ledger"].count == 4
    finally:
        db.close()
