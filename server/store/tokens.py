"""Client tokens: created with a random secret shown once, stored only as its hash."""
from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass

import sqlite_utils

from server.store.rate_limits import Limits

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

KEY_PREFIX = "sk-"
KEY_RANDOM_CHARS = 48


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    key_hash: str
    key_hint: str
    enabled: bool
    expires_at: int | None
    models: frozenset[str] | None  # None: every model
    created_at: int
    quota: int | None = None  # micro-units it may spend in all; None: unlimited
    used: int = 0             # micro-units settled so far (server/store/quota.py)
    limits: Limits = Limits()  # requests and tokens per minute, requests in flight
    allow_ip: tuple[Network, ...] | None = None  # client addresses it may come from; None: any

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


class TokenError(ValueError):
    pass


def hash_key(key: str) -> str:
    # Keys carry ~285 bits of randomness, so a fast hash is safe; it also makes the
    # lookup independent of the secret's bytes.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return KEY_PREFIX + "".join(secrets.choice(alphabet) for _ in range(KEY_RANDOM_CHARS))


def create(db: sqlite_utils.Database, name: str, models: list[str] | None = None,
           expires_at: int | None = None, quota: int | None = None, limits: Limits = Limits(),
           allow_ip: tuple[Network, ...] | None = None) -> tuple[Token, str]:
    """Create a token; returns it and its secret key, which is never stored."""
    if not name:
        raise TokenError("a token needs a name")
    if db["tokens"].count_where("name = ?", [name]):
        raise TokenError(f"a token named {name!r} already exists")
    key = new_key()
    row = {"name": name, "key_hash": hash_key(key), "key_hint": f"{key[:5]}...{key[-4:]}",
           "enabled": 1, "expires_at": expires_at,
           "models": json.dumps(sorted(set(models))) if models else None, "quota": quota,
           "rpm": limits.rpm, "tpm": limits.tpm, "max_concurrency": limits.max_concurrency,
           "allow_ip": json.dumps([str(n) for n in allow_ip]) if allow_ip is not None else None,
           "created_at": int(time.time())}
    with db.conn:
        db["tokens"].insert(row)
    return get(db, name), key


def get(db: sqlite_utils.Database, name: str) -> Token:
    rows = list(db["tokens"].rows_where("name = ?", [name]))
    if not rows:
        raise TokenError(f"no token named {name!r}")
    return _from_row(rows[0])


def all_tokens(db: sqlite_utils.Database) -> list[Token]:
    return [_from_row(r) for r in db["tokens"].rows_where(order_by="id")]


def set_enabled(db: sqlite_utils.Database, name: str, enabled: bool) -> Token:
    token = get(db, name)
    with db.conn:
        db["tokens"].update(token.id, {"enabled": int(enabled)})
    return get(db, name)


def delete(db: sqlite_utils.Database, name: str) -> None:
    token = get(db, name)
    with db.conn:
        db["tokens"].delete(token.id)


def _from_row(row: dict) -> Token:
    models = json.loads(row["models"]) if row.get("models") else None
    allow_ip = json.loads(row["allow_ip"]) if row.get("allow_ip") else None
    return Token(id=row["id"], name=row["name"], key_hash=row["key_hash"],
                 key_hint=row.get("key_hint") or "", enabled=bool(row["enabled"]),
                 expires_at=row.get("expires_at"),
                 models=frozenset(models) if models is not None else None,
                 created_at=row["created_at"], quota=row.get("quota"), used=row.get("used") or 0,
                 limits=Limits(row.get("rpm"), row.get("tpm"), row.get("max_concurrency")),
                 allow_ip=tuple(ipaddress.ip_network(n) for n in allow_ip) if allow_ip is not None else None)
