"""A video task's money in SQLite. Every change that moves money is ONE write transaction
(`BEGIN IMMEDIATE`, server/store/quota.py) together with the task's own change, so two
processes polling one database, or a delete racing a completion, settle a task once:

- insert: the task, written before it is submitted (`confirmed` 0: no channel accepted it
  yet, so neither its client nor a poller sees it), takes over its create's reservation;
- accept: a channel accepted it: its channel and upstream id are stored, and it is
  visible and polled from then on;
- drop: a task no channel accepted (or whose process stopped while submitting it)
  disappears, reservation released, its create booked at zero;
- finish: the compare-and-swap to `completed` or `failed` closes the reservation and books
  the create's ledger row (the cost when it completed, zero when it failed);
- delete: a task deleted while still open releases its reservation (refund).

finish also writes the task's webhook event (server/store/webhook_events.py) in that
transaction. Every ledger row a task books carries its create's upstream attempts.

A task in a final state, deleted or dropped never holds a reservation; the stale sweep
(quota.release_stale) skips reservations that name a task.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace
from typing import Callable, Sequence

import sqlite_utils

from server.store import quota as quota_store
from server.store import videos as store
from server.store import webhook_events
from server.store.quota import Attempt, LedgerRow, Settlement
from server.store.videos import VideoTask

# What a task's ledger row says, from the task as it was just before its final change.
Booking = Callable[[VideoTask], LedgerRow]


def _one(conn: sqlite3.Connection, sql: str, params: list) -> VideoTask | None:
    found = store.read(conn, sql, params)
    return found[0] if found else None


def with_attempts(request: dict, attempts: Sequence[Attempt]) -> dict:
    """A task's stored request with its create's upstream attempts, which the task's ledger
    row carries once it ends."""
    return {**request, "attempts": [[a.channel_id, a.upstream_model, a.status, a.error_code, a.latency_ms]
                                    for a in attempts]}


def _book(conn: sqlite3.Connection, task: VideoTask, booking: Booking,
          attempts: Sequence[Attempt] | None = None) -> None:
    """`attempts`: the create's, when they are not (yet) stored with the task."""
    conn.execute("DELETE FROM reservations WHERE video_id = ?", [task.id])
    if attempts is None:
        attempts = tuple(Attempt(*entry) for entry in task.request.get("attempts") or ())
    quota_store.settle_in(conn, [Settlement(None, booking(task), attempts=tuple(attempts))])


def by_key(db: sqlite_utils.Database, token_id: int, key: str, since: float) -> VideoTask | None:
    """The token's task created with Idempotency-Key `key` at or after `since`."""
    return _one(db.conn, "SELECT * FROM videos WHERE token_id = ? AND idempotency_key = ? AND created_at >= ?",
                [token_id, key, since])


def insert(db: sqlite_utils.Database, task: VideoTask, reservation_id: int | None,
           key_since: float) -> VideoTask | None:
    """Store `task` and hand it the reservation its create made. When the token already
    has a task with the same Idempotency-Key (one made at or after `key_since`; older
    keys are forgotten), nothing is stored, the reservation is released, and that task is
    returned instead."""
    with quota_store.write(db) as conn:
        if task.idempotency_key:
            conn.execute("UPDATE videos SET idempotency_key = NULL WHERE token_id = ? AND idempotency_key = ? "
                         "AND created_at < ?", [task.token_id, task.idempotency_key, key_since])
            holder = _one(conn, "SELECT * FROM videos WHERE token_id = ? AND idempotency_key = ?",
                          [task.token_id, task.idempotency_key])
            if holder is not None:
                if reservation_id is not None:
                    conn.execute("DELETE FROM reservations WHERE id = ?", [reservation_id])
                return holder
        store.add(conn, task)
        if reservation_id is not None:
            conn.execute("UPDATE reservations SET video_id = ? WHERE id = ?", [task.id, reservation_id])
    return None


def accept(db: sqlite_utils.Database, task_id: str, changes: dict) -> VideoTask | None:
    """A channel accepted the task being submitted: store where it went (`changes`: its
    channel, upstream id, ...) and give it to the pollers; None when it is gone (deleted
    meanwhile)."""
    changes = {**changes, "confirmed": 1, "lease_owner": None, "lease_until": None, "updated_at": int(time.time())}
    for column in ("request", "asked"):
        if column in changes:
            changes[column] = json.dumps(changes[column])
    assignments = ", ".join(f"{k} = ?" for k in changes)
    with db.conn:
        cursor = db.conn.execute(f"UPDATE videos SET {assignments} WHERE id = ? AND confirmed = 0 AND deleted = 0",
                                 [*changes.values(), task_id])
        if cursor.rowcount != 1:
            return None
        return _one(db.conn, "SELECT * FROM videos WHERE id = ?", [task_id])


def drop(db: sqlite_utils.Database, task_id: str, booking: Booking,
         attempts: Sequence[Attempt] | None = None) -> bool:
    """A task no channel accepted goes (its client never saw it), its reservation is
    released and its create booked at zero, on the channel it tried last."""
    with quota_store.write(db) as conn:
        task = _one(conn, "SELECT * FROM videos WHERE id = ? AND confirmed = 0 AND deleted = 0", [task_id])
        if task is None:
            return False
        conn.execute("DELETE FROM videos WHERE id = ?", [task_id])
        if attempts:
            task = replace(task, channel_id=attempts[-1].channel_id, upstream_model=attempts[-1].upstream_model)
        _book(conn, task, booking, attempts)
    return True


def finish(db: sqlite_utils.Database, task_id: str, changes: dict, booking: Booking) -> bool:
    """Move an open task to its final state (`changes` include the status) and settle it,
    in one transaction; False when another process or a delete got there first."""
    with quota_store.write(db) as conn:
        task = _one(conn, "SELECT * FROM videos WHERE id = ?", [task_id])
        if task is None or not store.swap(conn, task_id, store.OPEN, **changes):
            return False
        _book(conn, task, booking)
        webhook_events.enqueue_in(conn, task_id)  # its event exists exactly when this state does
    return True


def delete(db: sqlite_utils.Database, task_id: str, booking: Booking) -> VideoTask | None:
    """Mark the task deleted; one still open is refunded in the same transaction."""
    with quota_store.write(db) as conn:
        deleted = conn.execute("UPDATE videos SET deleted = 1, updated_at = ? WHERE id = ? AND deleted = 0",
                               [int(time.time()), task_id]).rowcount == 1
        task = _one(conn, "SELECT * FROM videos WHERE id = ?", [task_id])
        if deleted and task is not None and task.open:
            _book(conn, task, booking)
    return task


def unconfirmed_past(db: sqlite_utils.Database, now: float) -> list[str]:
    """Tasks still being submitted whose creating process let its lease run out (it
    stopped): no channel's acceptance will be recorded for them any more."""
    return [r[0] for r in db.conn.execute("SELECT id FROM videos WHERE confirmed = 0 AND deleted = 0 "
                                          "AND (lease_until IS NULL OR lease_until < ?)", [now])]


def holds(db: sqlite_utils.Database, task_id: str) -> int:
    """Micro-units the task's reservation holds (0: none)."""
    return db.conn.execute("SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE video_id = ?",
                           [task_id]).fetchone()[0]
