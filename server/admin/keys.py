"""The admin key: `ST_AI_ADMIN_KEY` when set, otherwise one st-ai creates on the first
start of `serve`/`grpc` and prints once. Stored only as its hash, as token keys are;
`st-ai admin-key rotate` replaces a lost one."""
from __future__ import annotations

import hmac
import secrets
import string
import time
from dataclasses import dataclass

import sqlite_utils

from server.admin import audit
from server.errors import GatewayError
from server.store.db import open_db
from server.store.tokens import hash_key

ENV = "ST_AI_ADMIN_KEY"
PREFIX = "sk-admin-"
RANDOM_CHARS = 48
MIN_ENV_CHARS = 20  # a shorter operator-chosen key is guessable


@dataclass(frozen=True)
class AdminKey:
    """Which admin key a call presented: never the key itself."""
    id: int | None  # None: the key from ST_AI_ADMIN_KEY
    key_hash: str
    hint: str

    @property
    def actor(self) -> str:
        """How the audit log names whoever holds this key."""
        return f"{ENV} ({self.hint})" if self.id is None else f"admin key #{self.id} ({self.hint})"


def new_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return PREFIX + "".join(secrets.choice(alphabet) for _ in range(RANDOM_CHARS))


def hint(key: str) -> str:
    return f"...{key[-4:]}" if len(key) >= MIN_ENV_CHARS else "(set)"


def check_env_key(value: str) -> str:
    """ST_AI_ADMIN_KEY as given, or ValueError saying what is wrong (never echoing it)."""
    if len(value) < MIN_ENV_CHARS or not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError(f"{ENV} must be at least {MIN_ENV_CHARS} printable ASCII characters without "
                         "spaces (it travels in an Authorization header)")
    return value


def active(db: sqlite_utils.Database) -> AdminKey | None:
    row = db.conn.execute("SELECT id, key_hash, key_hint FROM admin_keys WHERE revoked_at IS NULL "
                          "ORDER BY id DESC LIMIT 1").fetchone()
    return AdminKey(*row) if row else None


def _insert(conn, key: str) -> int:
    return conn.execute("INSERT INTO admin_keys (key_hash, key_hint, created_at) VALUES (?, ?, ?)",
                        [hash_key(key), hint(key), int(time.time())]).lastrowid


def ensure(db: sqlite_utils.Database) -> str | None:
    """Create the admin key if there is none; returns it (to print once), or None when
    one exists. Two processes starting at once create one key: the write lock is taken
    before looking."""
    with audit.transaction(db) as conn:
        if active(db) is not None:
            return None
        key = new_key()
        key_id = _insert(conn, key)
        audit.write(conn, audit.Actor("st-ai start"), "admin_key.create", f"#{key_id}", {"hint": hint(key)})
        return key


def ensure_at(db_path: str) -> list[str]:
    """`ensure` on the database at `db_path`: the lines `serve`/`grpc` print, the key
    alone on the last one (none when the key exists)."""
    db = open_db(db_path)
    try:
        key = ensure(db)
    finally:
        db.close()
    if key is None:
        return []
    return ["admin: created the admin key of the Admin API (/api/v1/, st_ai.v1.Admin); it is shown only this "
            "once and st-ai keeps only its hash (a lost one: st-ai admin-key rotate):", key]


def rotate(db: sqlite_utils.Database, actor: audit.Actor) -> str:
    """Revoke every stored admin key and make a new one; returns it (to print once)."""
    with audit.transaction(db) as conn:
        conn.execute("UPDATE admin_keys SET revoked_at = ? WHERE revoked_at IS NULL", [int(time.time())])
        key = new_key()
        key_id = _insert(conn, key)
        audit.write(conn, actor, "admin_key.rotate", f"#{key_id}", {"hint": hint(key)})
        return key


def unauthorized(message: str = "Incorrect admin key provided.") -> GatewayError:
    return GatewayError(401, message, "invalid_api_key", type="invalid_request_error")


class AdminAuth:
    """Checks the admin key of a call. Holds ST_AI_ADMIN_KEY's hash, not the key."""

    def __init__(self, env_key: str | None = None) -> None:
        self._env = AdminKey(None, hash_key(env_key), hint(env_key)) if env_key else None

    @property
    def from_env(self) -> bool:
        return self._env is not None

    def check(self, db: sqlite_utils.Database, authorization: str | None) -> AdminKey:
        """The admin key `authorization` (`Bearer <key>`) presents, or a 401. Reads the
        stored key on every call, so one rotated from the CLI takes effect at once."""
        if not authorization:
            raise unauthorized("You didn't provide the admin key. Send it as 'Authorization: Bearer <admin key>'.")
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise unauthorized("Send the admin key as 'Authorization: Bearer <admin key>'.")
        expected = self._env or active(db)
        digest = hash_key(presented.strip())
        if expected is None or not hmac.compare_digest(expected.key_hash, digest):
            raise unauthorized()
        return expected
