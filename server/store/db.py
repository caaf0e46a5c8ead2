"""Opening the database (migrated to this st-ai's schema: server/store/schema.py), and
the one thread that talks to it.

Every SQLite call the server makes runs on `DbWorker`'s single thread, never on the
event loop. The CLI calls the same store functions directly: it has no loop.
"""
from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import sqlite_utils

from server.store import schema

DEFAULT_PATH = "st-ai.db"
T = TypeVar("T")


def default_path() -> str:
    return os.environ.get("ST_AI_DB") or DEFAULT_PATH


def open_db(path: str) -> sqlite_utils.Database:
    # Python's default isolation: `with db.conn:` is then a real transaction.
    conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    try:
        schema.migrate(conn)
    except BaseException:
        conn.close()
        raise
    return db


def catalog_version(db: sqlite_utils.Database) -> int:
    """Moves whenever any process changes what the gateway's catalog holds (server/store/
    schema.py `CATALOG_TABLES`), and only then."""
    return db.execute('SELECT "n" FROM "catalog_changes" WHERE "id" = 1').fetchone()[0]


class DbWorker:
    """Runs blocking database calls on one dedicated thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="st-ai-db")
        try:
            self.db: sqlite_utils.Database = self._pool.submit(open_db, path).result()
        except BaseException:
            self._pool.shutdown(wait=True)  # e.g. a database from a newer st-ai
            raise

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        call = functools.partial(fn, self.db, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        self._pool.submit(self.db.close).result()
        self._pool.shutdown(wait=True)
