"""The outbox of webhook events and a token's webhook settings, in SQLite.

An event is written by `enqueue_in` inside the transaction that moves its task to a final
state (server/store/video_money.py), so it exists exactly when that state is committed,
and a crash right after the commit loses nothing. Senders (server/webhook_sender.py) claim
due rows with a lease (one UPDATE, so two processes never hold one row), and an event
acknowledged with a 2xx is marked `delivered` and never claimed again."""
from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass

import orjson
import sqlite_utils

from server import webhook_signing

EVENT_PREFIX = "evt_"
FINAL_EVENTS = {"completed": "video.completed", "failed": "video.failed"}


@dataclass(frozen=True)
class Event:
    id: str
    token_id: int
    video_id: str
    type: str
    url: str
    from_client: bool  # a client's callback_url: its address is checked again before each send
    payload: bytes
    attempts: int
    secret: str | None  # the token's current secret (None: the token or its secret is gone)


@dataclass(frozen=True)
class TokenWebhook:
    url: str | None
    has_secret: bool


def enqueue_in(conn: sqlite3.Connection, task_id: str) -> str | None:
    """Write the event of the task's final state, in the caller's transaction; None when
    the task's token has no webhook URL and the task no callback_url."""
    row = conn.execute("SELECT v.token_id, v.status, v.callback_url, t.webhook_url FROM videos v "
                       "LEFT JOIN tokens t ON t.id = v.token_id WHERE v.id = ?", [task_id]).fetchone()
    if row is None or row[1] not in FINAL_EVENTS:
        return None
    token_id, status, callback_url, token_url = row
    url = callback_url or token_url
    if not url:
        return None
    now = int(time.time())
    event_id = EVENT_PREFIX + secrets.token_hex(16)
    # OpenAI's webhook event shape: the receiver fetches the video by data.id
    payload = orjson.dumps({"id": event_id, "object": "event", "type": FINAL_EVENTS[status], "created_at": now,
                            "data": {"id": task_id}})
    conn.execute("INSERT INTO webhook_events (id, token_id, video_id, type, url, from_client, payload, created_at, "
                 "next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [event_id, token_id, task_id, FINAL_EVENTS[status], url, int(bool(callback_url)),
                  payload.decode(), now, float(now)])
    return event_id


def claim_due(db: sqlite_utils.Database, owner: str, now: float, lease: float, limit: int) -> list[Event]:
    """Lease up to `limit` pending events that are due and that no live process holds."""
    with db.conn:
        cursor = db.conn.execute(
            """UPDATE webhook_events SET lease_owner = ?, lease_until = ?
               WHERE id IN (SELECT id FROM webhook_events WHERE status = 'pending' AND next_at <= ?
                              AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_at LIMIT ?)
               RETURNING id, token_id, video_id, type, url, from_client, payload, attempts""",
            [owner, now + lease, now, now, limit])
        rows = cursor.fetchall()
    secrets_by_token = _secrets(db, {r[1] for r in rows})
    return [Event(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6].encode(), r[7], secrets_by_token.get(r[1]))
            for r in rows]


def _secrets(db: sqlite_utils.Database, token_ids: set[int]) -> dict[int, str]:
    if not token_ids:
        return {}
    marks = ", ".join("?" * len(token_ids))
    return {r[0]: r[1] for r in db.conn.execute(
        f"SELECT id, webhook_secret FROM tokens WHERE id IN ({marks}) AND webhook_secret IS NOT NULL",
        list(token_ids))}


def delivered(db: sqlite_utils.Database, event_id: str, owner: str) -> bool:
    with db.conn:
        return db.conn.execute("UPDATE webhook_events SET status = 'delivered', attempts = attempts + 1, "
                               "done_at = ?, lease_owner = NULL, lease_until = NULL, last_error = NULL "
                               "WHERE id = ? AND lease_owner = ? AND status = 'pending'",
                               [time.time(), event_id, owner]).rowcount == 1


def attempt_failed(db: sqlite_utils.Database, event_id: str, owner: str, error: str, next_at: float | None) -> None:
    """Count a failed attempt: due again at `next_at`, or failed for good when None."""
    with db.conn:
        if next_at is None:
            db.conn.execute("UPDATE webhook_events SET status = 'failed', attempts = attempts + 1, done_at = ?, "
                            "last_error = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                            [time.time(), error, event_id, owner])
        else:
            db.conn.execute("UPDATE webhook_events SET attempts = attempts + 1, next_at = ?, last_error = ?, "
                            "lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                            [next_at, error, event_id, owner])


def release(db: sqlite_utils.Database, event_id: str, owner: str) -> None:
    """Give a lease back untried (shutting down): whoever runs next sends it at once."""
    with db.conn:
        db.conn.execute("UPDATE webhook_events SET lease_owner = NULL, lease_until = NULL "
                        "WHERE id = ? AND lease_owner = ?", [event_id, owner])


def lease_owners(db: sqlite_utils.Database) -> list[str]:
    return [r[0] for r in db.conn.execute("SELECT DISTINCT lease_owner FROM webhook_events "
                                          "WHERE lease_owner IS NOT NULL AND status = 'pending'")]


def free_dead_leases(db: sqlite_utils.Database, dead_owners: list[str]) -> int:
    if not dead_owners:
        return 0
    marks = ", ".join("?" * len(dead_owners))
    with db.conn:
        return db.conn.execute(f"UPDATE webhook_events SET lease_owner = NULL, lease_until = NULL "
                               f"WHERE status = 'pending' AND lease_owner IN ({marks})", dead_owners).rowcount


def prune(db: sqlite_utils.Database, before: float) -> int:
    """Forget delivered and failed events that ended before `before`."""
    with db.conn:
        return db.conn.execute("DELETE FROM webhook_events WHERE status != 'pending' AND done_at < ?",
                               [before]).rowcount


# -- a token's webhook settings -----------------------------------------------------------

def token_webhook(db: sqlite_utils.Database, token_id: int) -> TokenWebhook:
    row = db.conn.execute("SELECT webhook_url, webhook_secret FROM tokens WHERE id = ?", [token_id]).fetchone()
    return TokenWebhook(row[0], bool(row[1])) if row else TokenWebhook(None, False)


def set_webhook_in(conn: sqlite3.Connection, token_id: int, url: object, rotate: bool, keep: object) -> str | None:
    """Set (a URL), clear (None) or keep (`keep`) the token's webhook URL, in the caller's
    transaction; returns a new secret when one was made (the first URL, or `rotate`), to be
    shown once. Clearing the URL keeps the secret: a task's callback_url still needs it."""
    if url is not keep:
        conn.execute("UPDATE tokens SET webhook_url = ? WHERE id = ?", [url, token_id])
    had = conn.execute("SELECT webhook_secret FROM tokens WHERE id = ?", [token_id]).fetchone()
    if rotate or (url is not keep and url is not None and not (had and had[0])):
        secret = webhook_signing.new_secret()
        conn.execute("UPDATE tokens SET webhook_secret = ? WHERE id = ?", [secret, token_id])
        return secret
    return None
