"""The circuit breaker's state of each channel, kept in the database so every process
(and the CLI) sees which channels are cooling or were disabled by st-ai.

Plain functions on the database: the server calls them on its database thread
(server/core/channel_health.py writes, the catalog reads), the CLI directly."""
from __future__ import annotations

import datetime as dt
import sqlite3
import time
from dataclasses import dataclass

import sqlite_utils


@dataclass(frozen=True)
class HealthState:
    """`failures`: consecutive failures; `cooldowns`: cooldowns in a row (the next one
    lasts cooldown_base * 2**cooldowns); `cooling_until`: wall-clock seconds the channel
    rests until (None: it does not); `trial`: when the rest ends, one request must succeed
    before the channel takes traffic again (a breaker cooldown, not a 429's Retry-After);
    `updated_at`: wall-clock time of the change, so the newer of two views wins."""
    failures: int = 0
    cooldowns: int = 0
    cooling_until: float | None = None
    trial: bool = False
    last_error: str | None = None
    updated_at: float = 0.0

    def cooling(self, now: float) -> bool:
        return self.cooling_until is not None and now < self.cooling_until

    def healthy(self) -> bool:
        return not (self.failures or self.cooldowns or self.cooling_until or self.trial)


def load_all(db: sqlite_utils.Database) -> dict[int, HealthState]:
    rows = db.execute("SELECT channel_id, failures, cooldowns, cooling_until, trial, last_error, updated_at "
                      "FROM channel_health").fetchall()
    return {r[0]: HealthState(r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows}


def save(db: sqlite_utils.Database, states: dict[int, HealthState]) -> None:
    """Store the latest state of each channel (a deleted channel's is skipped)."""
    with db.conn:
        db.conn.executemany(
            "INSERT INTO channel_health (channel_id, failures, cooldowns, cooling_until, trial, last_error, updated_at) "
            "SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM channels WHERE id = ?) "
            "ON CONFLICT (channel_id) DO UPDATE SET failures = excluded.failures, cooldowns = excluded.cooldowns, "
            "cooling_until = excluded.cooling_until, trial = excluded.trial, last_error = excluded.last_error, "
            "updated_at = excluded.updated_at WHERE excluded.updated_at >= channel_health.updated_at",
            [(cid, s.failures, s.cooldowns, s.cooling_until, int(s.trial), s.last_error, s.updated_at, cid)
             for cid, s in states.items()])


def auto_disable(db: sqlite_utils.Database, channel_id: int, reason: str) -> bool:
    """Disable a channel st-ai found unusable (its key rejected); False when it was not
    enabled (an operator's disable, or an earlier one, stays as it is)."""
    with db.conn:
        changed = db.conn.execute("UPDATE channels SET enabled = 0, auto_disabled = 1, disabled_reason = ? "
                                  "WHERE id = ? AND enabled = 1", [reason, channel_id]).rowcount
    return bool(changed)


def recover(conn: sqlite3.Connection, channel_id: int, now: float | None = None) -> bool:
    """After a successful test: enable the channel again if st-ai had disabled it, and
    clear its cooldown either way. Does not commit (the caller's audited change does);
    True when it was re-enabled."""
    enabled = conn.execute("UPDATE channels SET enabled = 1, auto_disabled = 0, disabled_reason = NULL "
                           "WHERE id = ? AND auto_disabled = 1", [channel_id]).rowcount
    conn.execute("INSERT INTO channel_health (channel_id, failures, cooldowns, cooling_until, trial, last_error, "
                 "updated_at) VALUES (?, 0, 0, NULL, 0, NULL, ?) ON CONFLICT (channel_id) DO UPDATE SET "
                 "failures = 0, cooldowns = 0, cooling_until = NULL, trial = 0, last_error = NULL, "
                 "updated_at = excluded.updated_at", [channel_id, time.time() if now is None else now])
    return bool(enabled)


def rejected_key_reason(what: str, when: float) -> str:
    """Why st-ai disabled a channel, for `channel list` and the admin API: what happened
    (st-ai's own error message, already scrubbed of the channel's secrets) and when."""
    stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    what = what.strip().rstrip(".")
    return f"{what[:200]} (disabled at {stamp})"
