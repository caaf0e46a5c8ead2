"""Video tasks in SQLite. Every state change is a compare-and-swap on `status`
(`UPDATE ... WHERE status IN (...)`), so two processes sharing the database never
both finalise a task; a lease says which process is polling a task right now."""
from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

OPEN = ("queued", "in_progress")
ID_PREFIX = "video_"
ID_HEX = 48

COLUMNS = {
    "id": str, "token_id": int, "model": str, "channel_id": int, "upstream_model": str,
    "upstream_id": str, "request": str, "asked": str, "status": str, "progress": int,
    "error_code": str, "error_message": str, "created_at": int, "updated_at": int,
    "completed_at": int, "expires_at": int, "upstream_updated_at": int, "asset_path": str,
    "asset_size": int, "thumbnail_path": str, "thumbnail_type": str, "cost": float,
    "next_poll_at": float, "attempts": int, "failures": int, "lease_owner": str,
    "lease_until": float, "remixed_from": str, "deleted": int, "confirmed": int, "reservation_id": int,
    "charge": int, "request_id": str, "client_address": str, "idempotency_key": str, "request_hash": str,
    "callback_url": str,
}  # the table itself is made by server/store/schema.py's migrations


@dataclass
class VideoTask:
    id: str
    token_id: int
    model: str
    channel_id: int
    upstream_model: str
    request: dict
    status: str = "queued"
    upstream_id: str | None = None
    asked: dict = field(default_factory=dict)
    progress: int = 0
    error_code: str | None = None
    error_message: str | None = None
    created_at: int = 0
    updated_at: int = 0
    completed_at: int | None = None
    expires_at: int | None = None
    upstream_updated_at: int | None = None
    asset_path: str | None = None
    asset_size: int | None = None
    thumbnail_path: str | None = None
    thumbnail_type: str | None = None
    cost: float | None = None
    next_poll_at: float = 0.0
    attempts: int = 0
    failures: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None
    remixed_from: str | None = None
    deleted: int = 0
    # 1 once a channel accepted it (0 while its create is submitting it: seen by no client
    # and no poller); holds its create's reservation until it settles
    # (server/billing/video_billing.py)
    confirmed: int = 1
    reservation_id: int | None = None
    charge: int | None = None  # micro-units, booked when it completes
    request_id: str | None = None  # the create's x-request-id, for its ledger row
    client_address: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    callback_url: str | None = None  # the create's own webhook URL (server/webhooks/events.py)

    @property
    def open(self) -> bool:
        return self.status in OPEN


def new_id() -> str:
    return ID_PREFIX + secrets.token_hex(ID_HEX // 2)


def looks_like_id(text: str) -> bool:
    return (len(text) == len(ID_PREFIX) + ID_HEX and text.startswith(ID_PREFIX)
            and all(c in "0123456789abcdef" for c in text[len(ID_PREFIX):]))


def _row(task: VideoTask) -> dict:
    row = {k: getattr(task, k) for k in COLUMNS}
    row["request"] = json.dumps(task.request)
    row["asked"] = json.dumps(task.asked)
    return row


def _task(row: dict) -> VideoTask:
    values: dict[str, Any] = {k: row.get(k) for k in COLUMNS}
    values["request"] = json.loads(values["request"] or "{}")
    values["asked"] = json.loads(values["asked"] or "{}")
    for key in ("progress", "attempts", "failures", "deleted"):
        values[key] = values[key] or 0
    values["confirmed"] = 1 if values["confirmed"] is None else values["confirmed"]
    values["next_poll_at"] = values["next_poll_at"] or 0.0
    return VideoTask(**values)


def insert(db: sqlite_utils.Database, task: VideoTask) -> None:
    with db.conn:
        add(db.conn, task)


def add(conn: sqlite3.Connection, task: VideoTask) -> None:
    """insert() inside a transaction the caller holds."""
    row = _row(task)
    conn.execute(f"INSERT INTO videos ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def read(conn: sqlite3.Connection, sql: str, params: list) -> list[VideoTask]:
    """Tasks a `SELECT * FROM videos ...` finds, on a connection in a transaction."""
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [_task(dict(zip(names, r))) for r in cursor.fetchall()]


def get(db: sqlite_utils.Database, task_id: str) -> VideoTask | None:
    rows = list(db.query("SELECT * FROM videos WHERE id = ?", [task_id]))
    return _task(rows[0]) if rows else None


def list_for_token(db: sqlite_utils.Database, token_id: int, after: str | None, limit: int,
                   ascending: bool) -> tuple[list[VideoTask], bool]:
    """A page of the token's tasks (not deleted, accepted by a channel) and whether more follow. Tasks created
    in the same second keep their insertion order (rowid), not their random ids' order."""
    order = "ASC" if ascending else "DESC"
    where = "token_id = ? AND deleted = 0 AND confirmed = 1"
    params: list[Any] = [token_id]
    if after:
        anchor = list(db.query("SELECT rowid AS seq, token_id, created_at FROM videos WHERE id = ?", [after]))
        if not anchor or anchor[0]["token_id"] != token_id:
            return [], False
        cmp = ">" if ascending else "<"
        where += f" AND (created_at, rowid) {cmp} (?, ?)"
        params += [anchor[0]["created_at"], anchor[0]["seq"]]
    rows = list(db.query(f"SELECT * FROM videos WHERE {where} ORDER BY created_at {order}, rowid {order} LIMIT ?",
                         [*params, limit + 1]))
    return [_task(r) for r in rows[:limit]], len(rows) > limit


def update(db: sqlite_utils.Database, task_id: str, expect: tuple[str, ...], **changes: Any) -> bool:
    """Apply `changes` only if the task's status is one of `expect`; True if it was."""
    with db.conn:
        return swap(db.conn, task_id, expect, **changes)


def swap(conn: sqlite3.Connection, task_id: str, expect: tuple[str, ...], **changes: Any) -> bool:
    """update() inside a transaction the caller holds (a settlement commits with it)."""
    if "asked" in changes:
        changes["asked"] = json.dumps(changes["asked"])
    changes.setdefault("updated_at", int(time.time()))
    assignments = ", ".join(f"{k} = ?" for k in changes)
    marks = ", ".join("?" * len(expect))
    # a deleted task changes no more: a poll finishing after the delete loses the swap
    cursor = conn.execute(f"UPDATE videos SET {assignments} WHERE id = ? AND deleted = 0 "
                          f"AND status IN ({marks})", [*changes.values(), task_id, *expect])
    return cursor.rowcount == 1


def claim_due(db: sqlite_utils.Database, owner: str, now: float, lease: float, limit: int) -> list[VideoTask]:
    """Lease up to `limit` open tasks whose next poll is due and that no live process
    holds; one statement, so two processes never claim the same task."""
    with db.conn:
        rows = db.conn.execute(
            """UPDATE videos SET lease_owner = ?, lease_until = ?
               WHERE id IN (SELECT id FROM videos
                            WHERE status IN ('queued', 'in_progress') AND deleted = 0
                              AND confirmed = 1 AND next_poll_at <= ?
                              AND (lease_until IS NULL OR lease_until < ?)
                            ORDER BY next_poll_at LIMIT ?)
               RETURNING *""", [owner, now + lease, now, now, limit])
        names = [d[0] for d in rows.description]
        claimed = [_task(dict(zip(names, r))) for r in rows.fetchall()]
    return claimed


def release(db: sqlite_utils.Database, task_id: str, owner: str, next_poll_at: float, **changes: Any) -> None:
    """Give the lease back and say when to poll next."""
    changes = {"lease_owner": None, "lease_until": None, "next_poll_at": next_poll_at, **changes}
    assignments = ", ".join(f"{k} = ?" for k in changes)
    with db.conn:
        db.conn.execute(f"UPDATE videos SET {assignments} WHERE id = ? AND lease_owner = ?",
                        [*changes.values(), task_id, owner])


def free_dead_leases(db: sqlite_utils.Database, dead_owners: list[str]) -> int:
    if not dead_owners:
        return 0
    marks = ", ".join("?" * len(dead_owners))
    with db.conn:
        cursor = db.conn.execute(
            f"UPDATE videos SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IN ({marks})", dead_owners)
    return cursor.rowcount


def count_by_state(db: sqlite_utils.Database) -> dict[str, int]:
    """How many tasks are in each state: their status, except open tasks a client deleted
    (`cancelled`) or a create is still submitting (`submitting`). Two statements that
    stay cheap as the table grows: a count over the status index alone, and a look at
    the open tasks only."""
    conn = db.conn
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")  # both statements read one snapshot
    try:
        counts = dict(conn.execute("SELECT status, COUNT(*) FROM videos GROUP BY status").fetchall())
        apart = conn.execute("SELECT status, deleted, COUNT(*) FROM videos WHERE status IN (?, ?) "
                             "AND (deleted = 1 OR confirmed = 0) GROUP BY status, deleted", OPEN).fetchall()
    finally:
        if own:
            conn.execute("COMMIT")
    for status, deleted, n in apart:
        counts[status] -= n
        state = "cancelled" if deleted else "submitting"
        counts[state] = counts.get(state, 0) + n
    return counts


def lease_owners(db: sqlite_utils.Database) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT lease_owner FROM videos WHERE lease_owner IS NOT NULL")]


def expired_assets(db: sqlite_utils.Database, now: int) -> list[VideoTask]:
    rows = db.query("SELECT * FROM videos WHERE asset_path IS NOT NULL AND expires_at IS NOT NULL AND expires_at <= ?",
                    [now])
    return [_task(r) for r in rows]


def clear_asset(db: sqlite_utils.Database, task_id: str) -> None:
    with db.conn:
        db.conn.execute("UPDATE videos SET asset_path = NULL, thumbnail_path = NULL WHERE id = ?", [task_id])


def asset_claims(db: sqlite_utils.Database) -> tuple[set[str], set[str]]:
    """(every file path a task row names, ids of tasks that may still commit a file),
    from one statement, so both come from the same snapshot of the table."""
    paths: set[str] = set()
    pending: set[str] = set()
    for task_id, asset, thumbnail, may_commit in db.conn.execute(
            "SELECT id, asset_path, thumbnail_path, status IN ('queued', 'in_progress') AND deleted = 0 "
            "FROM videos WHERE asset_path IS NOT NULL OR thumbnail_path IS NOT NULL "
            "OR (status IN ('queued', 'in_progress') AND deleted = 0)"):
        paths.update(p for p in (asset, thumbnail) if p)
        if may_commit:
            pending.add(task_id)
    return paths, pending
