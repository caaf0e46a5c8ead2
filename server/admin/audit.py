"""The audit log: one row per admin change (API or CLI), written in the same
transaction as the change, so there is never a change without its row nor a row for a
change that did not happen. Summaries name what changed, never a key."""
from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Iterator

import sqlite_utils

MAX_LIST = 500


@dataclass(frozen=True)
class Actor:
    """Who made a change: "cli", or the admin key's id and hint; and the request's id."""
    name: str
    request_id: str | None = None


CLI = Actor("cli")


@dataclass(frozen=True)
class AuditEvent:
    id: int
    time: float
    actor: str
    operation: str
    target: str | None
    request_id: str | None
    summary: dict


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite3.Connection]:
    """One write transaction holding SQLite's write lock from its start. Store functions
    called inside commit it when they commit (their `with db.conn:`), so the one that
    writes must come last; anything raised rolls back the whole."""
    conn = db.conn
    if conn.in_transaction:  # its commit would be ours: a caller left a write open
        raise RuntimeError("an audited change cannot start inside another open transaction")
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    if conn.in_transaction:
        conn.commit()


def write(conn: sqlite3.Connection, actor: Actor, operation: str, target: str | None, summary: dict) -> None:
    conn.execute("INSERT INTO audit (ts, actor, operation, target, request_id, summary) VALUES (?, ?, ?, ?, ?, ?)",
                 [time.time(), actor.name, operation, target, actor.request_id,
                  json.dumps(summary, sort_keys=True, default=str)])


@contextlib.contextmanager
def change(db: sqlite_utils.Database, actor: Actor, operation: str, target: str | None,
           summary: dict) -> Iterator[sqlite3.Connection]:
    """A change and its audit row, committed together (see `transaction`)."""
    with transaction(db) as conn:
        write(conn, actor, operation, target, summary)
        yield conn


def record(db: sqlite_utils.Database, actor: Actor, operation: str, target: str | None, summary: dict) -> None:
    """An audit row for what is not a database change of its own (a channel test, a
    video delete done through the video path)."""
    with transaction(db) as conn:
        write(conn, actor, operation, target, summary)


def events(db: sqlite_utils.Database, limit: int = 50, before_id: int | None = None,
           operation: str | None = None, target: str | None = None) -> tuple[list[AuditEvent], bool]:
    """Newest first; and whether older ones follow."""
    where, params = ["1 = 1"], []
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    if operation:
        where.append("operation = ?")
        params.append(operation)
    if target:
        where.append("target = ?")
        params.append(target)
    rows = db.conn.execute(f"SELECT id, ts, actor, operation, target, request_id, summary FROM audit "
                           f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", [*params, limit + 1]).fetchall()
    found = [AuditEvent(*row[:6], json.loads(row[6])) for row in rows[:limit]]
    return found, len(rows) > limit
