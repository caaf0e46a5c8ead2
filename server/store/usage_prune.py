"""`st-ai usage prune`: fold old ledger rows into daily totals and delete them.

Only whole UTC days are pruned: `before` is taken back to the midnight that starts its
day, and never past the start of today (today is not over yet). Rows go in bounded
batches, each ONE write transaction that adds the batch to its days' totals and deletes
it, so a crash leaves every row either in the ledger or in a total, never both or
neither. Between batches the write lock is left free for as long as the batch held it,
so a running st-ai settles its requests meanwhile. Tokens' `used` is never touched.

A settlement committed a moment after its day was pruned (a request that finished just
before midnight) stays in the ledger, where reports read it, until the next prune adds it
to the same day's total.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import sqlite_utils

from server.store import ledger_days
from server.store.ledger_days import LEDGER_DAY

BATCH_ROWS = 2000
MAX_PAUSE = 0.1  # seconds; the pause after a batch is as long as it held the lock, up to this

_KEYS = ("day", "token_id", "model", "channel_id", "kind", "api")
_SUMS = ("requests", "errors", "prompt_tokens", "cached_tokens", "cache_write_tokens", "completion_tokens", "images",
         "cost")


@dataclass
class Pruned:
    before: dt.datetime  # the midnight rows were pruned up to
    rows: int = 0        # ledger rows folded and deleted
    days: set[str] = field(default_factory=set)  # the days they belonged to
    batches: int = 0


def boundary(before: dt.datetime, now: dt.datetime | None = None) -> dt.datetime:
    """The midnight rows are pruned up to: `before`'s day start, at most today's."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return min(ledger_days.midnight_before(before), ledger_days.midnight_before(now))


def prune(db: sqlite_utils.Database, before: dt.datetime, *, now: dt.datetime | None = None,
          batch_rows: int = BATCH_ROWS) -> Pruned:
    result = Pruned(boundary(before, now))
    limit = result.before.timestamp()
    ledger_days.register(db.conn)
    while True:
        started = time.monotonic()
        folded = _fold_batch(db, limit, batch_rows)
        if not folded:
            return result
        result.rows += sum(group["requests"] for group in folded)
        result.days.update(group["day"] for group in folded)
        result.batches += 1
        time.sleep(min(time.monotonic() - started, MAX_PAUSE))


def _fold_batch(db: sqlite_utils.Database, limit: float, batch_rows: int) -> list[dict]:
    """Fold up to `batch_rows` ledger rows before `limit` into their days; returns the
    groups folded (empty when nothing is left)."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS prune_batch (id INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM temp.prune_batch")
        conn.execute("INSERT INTO temp.prune_batch SELECT id FROM ledger WHERE ts < ? ORDER BY ts LIMIT ?",
                     [limit, batch_rows])
        cursor = conn.execute(f"""
            SELECT {LEDGER_DAY} AS day, token_id, model, channel_id, kind, api, COUNT(*) AS requests,
                   SUM(status >= 400) AS errors, SUM(prompt_tokens) AS prompt_tokens,
                   SUM(cached_tokens) AS cached_tokens, SUM(cache_write_tokens) AS cache_write_tokens,
                   SUM(completion_tokens) AS completion_tokens,
                   SUM(images) AS images, SUM(cost) AS cost,
                   COALESCE(seconds_sum(video_seconds) FILTER (WHERE video_seconds IS NOT NULL), '0') AS video_seconds
            FROM ledger WHERE id IN (SELECT id FROM temp.prune_batch)
            GROUP BY day, token_id, model, channel_id, kind, api""")
        columns = [d[0] for d in cursor.description]
        groups = [dict(zip(columns, row)) for row in cursor]
        for group in groups:
            _add_to_day(conn, group)
        conn.execute("DELETE FROM ledger WHERE id IN (SELECT id FROM temp.prune_batch)")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return groups


def _add_to_day(conn, group: dict) -> None:
    # IS, not =: a rejected request has no channel, and NULLs never equal each other
    existing = conn.execute(f"SELECT id, video_seconds FROM usage_daily WHERE "
                            f"{' AND '.join(f'{k} IS ?' for k in _KEYS)}", [group[k] for k in _KEYS]).fetchone()
    if existing is None:
        columns = (*_KEYS, *_SUMS, "video_seconds")
        conn.execute(f"INSERT INTO usage_daily ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                     [group[c] for c in columns])
        return
    row_id, seconds = existing
    conn.execute(f"UPDATE usage_daily SET {', '.join(f'{c} = {c} + ?' for c in _SUMS)}, video_seconds = ? "
                 "WHERE id = ?", [*(group[c] for c in _SUMS), ledger_days.add_seconds(seconds, group["video_seconds"]),
                                  row_id])
