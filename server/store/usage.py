"""The release's per-attempt usage rows. Requests are booked in the ledger now
(server/store/quota.py); only the video poller still writes here, until video settlement
moves to the ledger. `summary` reads the ledger, for `st-ai usage`."""
from __future__ import annotations

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
        db.conn.executemany(_INSERT, [astuple(r) for r in records])


def summary(db: sqlite_utils.Database, token_name: str | None = None) -> list[dict]:
    """Requests per token and model, from the ledger (one row per client request)."""
    where = "WHERE t.name = ?" if token_name else ""
    sql = f"""SELECT t.name AS token, l.model, COUNT(*) AS requests,
                     SUM(l.status >= 400) AS errors,
                     SUM(l.prompt_tokens) AS prompt_tokens,
                     SUM(l.completion_tokens) AS completion_tokens,
                     SUM(l.prompt_tokens + l.completion_tokens) AS total_tokens
              FROM ledger l JOIN tokens t ON t.id = l.token_id {where}
              GROUP BY t.name, l.model ORDER BY t.name, l.model"""
    return [dict(r) for r in db.query(sql, [token_name] if token_name else [])]
