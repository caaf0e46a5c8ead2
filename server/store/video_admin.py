"""Every token's video tasks, for the operator (a client sees only its own:
server/store/videos.py)."""
from __future__ import annotations

from typing import Any

import sqlite_utils

from server.store.videos import VideoTask, _task


def list_all(db: sqlite_utils.Database, token_id: int | None, status: str | None, after: str | None,
             limit: int, include_deleted: bool = False) -> tuple[list[VideoTask], bool]:
    """A page of tasks, newest first (insertion order within a second), and whether more follow."""
    where, params = ["1 = 1"], []
    if not include_deleted:
        where.append("deleted = 0")
    if token_id is not None:
        where.append("token_id = ?")
        params.append(token_id)
    if status:
        where.append("status = ?")
        params.append(status)
    if after:
        anchor = db.conn.execute("SELECT created_at, rowid FROM videos WHERE id = ?", [after]).fetchone()
        if anchor is None:
            return [], False
        where.append("(created_at, rowid) < (?, ?)")
        params += list(anchor)
    rows = list(db.query(f"SELECT * FROM videos WHERE {' AND '.join(where)} "
                         "ORDER BY created_at DESC, rowid DESC LIMIT ?", [*params, limit + 1]))
    found: list[Any] = [_task(r) for r in rows[:limit]]
    return found, len(rows) > limit
