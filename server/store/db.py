"""Opening the database, its schema, and the one thread that talks to it.

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

from server.store import videos
from server.store.prices import create_prices_table

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
    ensure_schema(db)
    return db


def ensure_schema(db: sqlite_utils.Database) -> None:
    with db.conn:
        db["tokens"].create({
            "id": int, "name": str, "key_hash": str, "key_hint": str, "enabled": int,
            "expires_at": int, "models": str, "created_at": int,
        }, pk="id", not_null={"name", "key_hash", "enabled", "created_at"},
            defaults={"enabled": 1}, if_not_exists=True)
        db["tokens"].create_index(["name"], unique=True, if_not_exists=True)
        db["tokens"].create_index(["key_hash"], unique=True, if_not_exists=True)
        db["channels"].create({
            "id": int, "name": str, "type": str, "base_url": str, "key": str, "models": str,
            "model_map": str, "enabled": int, "priority": int, "created_at": int,
        }, pk="id", not_null={"name", "type", "models", "enabled", "created_at"},
            defaults={"enabled": 1, "priority": 0}, if_not_exists=True)
        db["channels"].create_index(["name"], unique=True, if_not_exists=True)
        db["usage"].create({
            "id": int, "ts": int, "token_id": int, "channel_id": int, "model": str,
            "upstream_model": str, "kind": str, "stream": int, "status": int,
            "prompt_tokens": int, "completion_tokens": int, "total_tokens": int,
            "latency_ms": int,
        }, pk="id", if_not_exists=True)
        db["usage"].create_index(["token_id", "ts"], if_not_exists=True)
    videos.ensure_schema(db)
    create_prices_table(db)


def data_version(db: sqlite_utils.Database) -> int:
    """Changes whenever another connection commits to the database."""
    return db.execute("PRAGMA data_version").fetchone()[0]


class DbWorker:
    """Runs blocking database calls on one dedicated thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="st-ai-db")
        self.db: sqlite_utils.Database = self._pool.submit(open_db, path).result()

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        call = functools.partial(fn, self.db, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        self._pool.submit(self.db.close).result()
        self._pool.shutdown(wait=True)
