"""Changes to an existing token beyond enable/disable/quota: rename, models, expiry, rate
limits and address rules, and a new key. Plain SQL that does not commit: the caller's transaction (an audited admin
change, server/admin/audit.py) commits it together with its audit row."""
from __future__ import annotations

import json
import sqlite3

from server.store.tokens import hash_key, new_key

KEEP = object()  # leave this setting as it is


def hint(key: str) -> str:
    return f"{key[:5]}...{key[-4:]}"


def update(conn: sqlite3.Connection, token_id: int, *, name: str | None = None, models: object = KEEP,
           expires_at: object = KEEP, limits: dict | None = None) -> None:
    """`models` None: every model; `expires_at` None: never. `limits` maps rpm, tpm,
    max_concurrency and allow_ip (checked by server/token_rules.py) to a value, or to None
    to clear it; one not named is kept."""
    changes: dict[str, object] = {}
    for column, value in (limits or {}).items():
        if column == "allow_ip":
            value = json.dumps([str(n) for n in value]) if value is not None else None
        elif column not in ("rpm", "tpm", "max_concurrency"):
            raise ValueError(f"not a token limit: {column}")
        changes[column] = value
    if name is not None:
        changes["name"] = name
    if models is not KEEP:
        changes["models"] = json.dumps(sorted(set(models))) if models else None
    if expires_at is not KEEP:
        changes["expires_at"] = expires_at
    if changes:
        conn.execute(f"UPDATE tokens SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                     [*changes.values(), token_id])


def rotate(conn: sqlite3.Connection, token_id: int) -> str:
    """Give the token a new key (the old one stops working); returns it, never stored."""
    key = new_key()
    conn.execute("UPDATE tokens SET key_hash = ?, key_hint = ? WHERE id = ?", [hash_key(key), hint(key), token_id])
    return key
