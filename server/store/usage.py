"""Usage records: one row per relayed request, written in batches."""
from __future__ import annotations

import sqlite3
from dataclasses import astuple, dataclass, fields

import sqlite_utils


@dataclass(frozen=True)
class UsageRecord:
    ts: int
    token_id: int
    channel_id: int | None
    model: str
    upstream_model: str | None
    kind: str  # chat | images | video
    stream: bool
    status: int  # HTTP status the client got
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    latency_ms: int = 0


_COLUMNS = [f.name for f in fields(UsageRecord)]
_INSERT = f"INSERT INTO usage ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def insert_many(db: sqlite_utils.Database, records: list[UsageRecord]) -> None:
    # One transaction and plain tuples: this runs for every request, in batches.
    with db.conn:
        add(db.conn, records)


def add(conn: sqlite3.Connection, records: list[UsageRecord]) -> None:
    """insert_many inside a transaction the caller holds."""
    conn.executemany(_INSERT, [astuple(r) for r in records])


def summary(db: sqlite_utils.Database, token_name: str | None = None) -> list[dict]:
    where = "WHERE t.name = ?" if token_name else ""
    sql = f"""SELECT t.name AS token, u.model, COUNT(*) AS requests,
                     SUM(u.status >= 400) AS errors,
                     SUM(u.prompt_tokens) AS prompt_tokens,
                     SUM(u.completion_tokens) AS completion_tokens,
                     SUM(u.total_tokens) AS total_tokens
              FROM usage u JOIN tokens t ON t.id = u.token_id {where}
              GROUP BY t.name, u.model ORDER BY t.name, u.model"""
    return [dict(r) for r in db.query(sql, [token_name] if token_name else [])]
