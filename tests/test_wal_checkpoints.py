"""server/store/checkpoints.py: the WAL is copied back by a thread of its own and the writer's
next commit rewinds it, also when commits come between the passes; a round that cannot catch up
leaves its last pass to the writer; the gateway runs the thread and its database thread
checkpoints only past the backstop."""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from server.gateway import Config, open_core
from server.store import checkpoints
from server.store.checkpoints import Checkpointer, catch_up, checkpoint_pass
from server.store.db import open_db

pytestmark = pytest.mark.timeout(30)


def writer(path: Path) -> sqlite3.Connection:
    """A connection that never checkpoints by itself, as if the backstop were far off."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, text TEXT)")
    return conn


ROWS_A_COMMIT, ROW_BYTES = 8, 300


def commit_rows(conn: sqlite3.Connection, transactions: int) -> None:
    for _ in range(transactions):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO rows (text) VALUES (?)", [("x" * ROW_BYTES,)] * ROWS_A_COMMIT)
        conn.execute("COMMIT")


def wal_frames(conn: sqlite3.Connection) -> int:
    """Frames in the WAL now (a checkpoint pass reports them; nothing is left to copy here)."""
    return checkpoint_pass(conn)[1]


def test_a_caught_up_wal_is_rewound_by_the_next_commit(tmp_path):
    path = tmp_path / "st-ai.db"
    conn = writer(path)
    commit_rows(conn, 200)
    other = sqlite3.connect(path, isolation_level=None)
    assert catch_up(other)
    commit_rows(conn, 1)
    assert wal_frames(other) <= 3  # written from the WAL's start again, not after 200 commits' frames
    assert conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 201 * ROWS_A_COMMIT


class CommitsBetweenPasses:
    """The checkpointing connection, with a writer committing after each of its first passes:
    what a commit made while a pass copies looks like to the next pass."""

    def __init__(self, checkpointing: sqlite3.Connection, writer: sqlite3.Connection, commits: int) -> None:
        self.checkpointing, self.writer, self.commits = checkpointing, writer, commits
        self.passes = 0

    def execute(self, sql: str):
        result = self.checkpointing.execute(sql).fetchall()
        self.passes += 1
        if self.commits:
            self.commits -= 1
            commit_rows(self.writer, 1)
        return Rows(result)


class Rows(list):
    def fetchall(self) -> list:
        return self


def test_a_round_passes_again_until_the_commits_made_meanwhile_are_copied_back_too(tmp_path):
    path = tmp_path / "st-ai.db"
    conn = writer(path)
    commit_rows(conn, 100)
    checkpointing = CommitsBetweenPasses(sqlite3.connect(path, isolation_level=None), conn, commits=3)
    assert catch_up(checkpointing)
    assert checkpointing.passes == 5  # three found the commit made after the one before, one nothing new
    commit_rows(conn, 1)
    assert wal_frames(checkpointing.checkpointing) <= 3  # rewound


def checkpoint_sequence(path: Path) -> bytes:
    """The WAL header's checkpoint sequence number: it moves each time a writer rewinds the WAL."""
    with open(f"{path}-wal", "rb") as wal:
        return wal.read(16)[12:16]


def test_the_thread_copies_the_wal_back_so_that_the_writer_rewinds_it(tmp_path):
    path = tmp_path / "st-ai.db"
    conn = writer(path)
    commit_rows(conn, 100)
    first = checkpoint_sequence(path)
    checkpointer = Checkpointer(str(path), interval=0.02)
    try:
        deadline = time.monotonic() + 10
        while checkpoint_sequence(path) == first and time.monotonic() < deadline:
            commit_rows(conn, 1)
            time.sleep(0.01)
    finally:
        checkpointer.stop()
    assert checkpoint_sequence(path) != first
    assert conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0] % ROWS_A_COMMIT == 0


def held_back_by_a_reader(tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    """A database whose newest frames cannot be copied back: a reader in a transaction has a
    snapshot from before them."""
    path = tmp_path / "st-ai.db"
    conn = writer(path)
    commit_rows(conn, 5)
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM rows").fetchall()
    commit_rows(conn, 5)
    return path, reader


def test_a_round_that_cannot_catch_up_says_so(tmp_path):
    path, reader = held_back_by_a_reader(tmp_path)
    assert not catch_up(sqlite3.connect(path, isolation_level=None))
    reader.execute("COMMIT")


def test_a_round_that_cannot_catch_up_leaves_its_last_pass_to_the_writer(tmp_path):
    path, reader = held_back_by_a_reader(tmp_path)
    asked = threading.Event()
    checkpointer = Checkpointer(str(path), writer=asked.set, interval=0.02)
    try:
        assert asked.wait(10)
    finally:
        checkpointer.stop()
        reader.execute("COMMIT")


def test_an_in_memory_database_needs_no_checkpoints_and_the_thread_ends(tmp_path):
    checkpointer = Checkpointer(":memory:", interval=0.01)
    checkpointer._thread.join(5)
    assert not checkpointer._thread.is_alive()
    checkpointer.stop()


async def test_the_gateway_checkpoints_in_the_background_and_stops_doing_so_with_it(tmp_path):
    path = tmp_path / "st-ai.db"
    open_db(str(path)).close()

    def threads() -> set[str]:
        return {thread.name for thread in threading.enumerate()}

    async with open_core(Config(db_path=str(path), assets_dir=str(tmp_path / "assets")), "http://127.0.0.1:1") as core:
        assert "st-ai-checkpoints" in threads()
        backstop = await core.worker.run(lambda db: db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        assert backstop == checkpoints.BACKSTOP_PAGES
    assert "st-ai-checkpoints" not in threads()
    assert not Path(f"{path}-wal").exists()  # the last connection closed took the WAL with it
