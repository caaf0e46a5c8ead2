"""Token operations, one implementation each for the CLI and the Admin API; every
change is audited in its own transaction (server/admin/audit.py)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlite_utils

from server.admin import audit, rules
from server.admin.errors import AdminError, Conflict, NotFound
from server.billing import money
from server.store import quota as quota_store
from server.store import token_edits, webhook_events
from server.store import tokens as token_store
from server.store.rate_limits import Limits
from server.store.token_edits import KEEP
from server.store.tokens import Token


@dataclass(frozen=True)
class TokenChanges:
    """What `token update` changes; KEEP leaves a setting as it is."""
    new_name: str | None = None
    models: object = KEEP      # list[str], or None for every model
    expires_at: object = KEEP  # Unix seconds, or None for never
    quota: object = KEEP       # micro-units, or None for unlimited
    add_quota: int | None = None
    # rpm, tpm, max_concurrency, allow_ip (server/token_rules.py) -> value, or None to clear
    limits: dict = field(default_factory=dict)
    webhook_url: object = KEEP  # str (trusted: the operator's), or None to clear it
    rotate_webhook_secret: bool = False

    def empty(self) -> bool:
        return (self.new_name is None and self.models is KEEP and self.expires_at is KEEP
                and self.quota is KEEP and self.add_quota is None and not self.limits
                and self.webhook_url is KEEP and not self.rotate_webhook_secret)

    def summary(self) -> dict:
        shown: dict = {}
        if self.new_name is not None:
            shown["name"] = self.new_name
        if self.models is not KEEP:
            shown["models"] = sorted(self.models) if self.models else "all"
        if self.expires_at is not KEEP:
            shown["expires_at"] = self.expires_at
        if self.quota is not KEEP:
            shown["quota"] = _amount(self.quota)
        if self.add_quota is not None:
            shown["add_quota"] = money.format_amount(self.add_quota)
        shown.update(_limits_shown(self.limits))
        if self.webhook_url is not KEEP:  # never the URL itself in the audit: it may hold a token
            shown["webhook_url"] = "set" if self.webhook_url else "cleared"
        if self.rotate_webhook_secret:
            shown["webhook_secret"] = "rotated"
        return shown


def _limits_shown(limits: dict) -> dict:
    return {key: [str(n) for n in value] if key == "allow_ip" and value is not None else value
            for key, value in limits.items()}


def _amount(micros: int | None) -> str:
    return "unlimited" if micros is None else money.format_amount(micros)


def get(db: sqlite_utils.Database, name: str) -> Token:
    try:
        return token_store.get(db, name)
    except token_store.TokenError:
        raise NotFound(f"no token named {name!r}") from None


def view(db: sqlite_utils.Database, token: Token) -> dict:
    """A token as the operator reads it (`token show --json`, the Admin API): a hint of
    its key, never the key; amounts as decimal strings."""
    status = quota_store.status(db, token.name)
    return {"name": token.name, "key_hint": token.key_hint, "enabled": token.enabled,
            "models": sorted(token.models) if token.models else None, "all_models": token.models is None,
            "expires_at": token.expires_at, "created_at": token.created_at,
            "quota": None if status.quota is None else money.format_amount(status.quota),
            "used": money.format_amount(status.used), "reserved": money.format_amount(status.reserved),
            "remaining": None if status.remaining is None else money.format_amount(status.remaining),
            "currency": money.CURRENCY, "rpm": token.limits.rpm, "tpm": token.limits.tpm,
            "max_concurrency": token.limits.max_concurrency,
            "allow_ip": [str(n) for n in token.allow_ip] if token.allow_ip is not None else None,
            **_webhook_view(db, token)}


def _webhook_view(db: sqlite_utils.Database, token: Token) -> dict:
    hook = webhook_events.token_webhook(db, token.id)
    return {"webhook_url": hook.url, "has_webhook_secret": hook.has_secret}


def list_views(db: sqlite_utils.Database) -> list[dict]:
    return [view(db, token) for token in token_store.all_tokens(db)]


def _free(db: sqlite_utils.Database, name: str) -> None:
    if db.conn.execute("SELECT 1 FROM tokens WHERE name = ?", [name]).fetchone():
        raise Conflict(f"a token named {name!r} already exists")


def create(db: sqlite_utils.Database, actor: audit.Actor, name: str, models: list[str] | None = None,
           expires_at: int | None = None, quota: int | None = None,
           limits: dict | None = None) -> tuple[Token, str]:
    """The new token and its key, which is shown once and never stored. `limits` as in
    TokenChanges (rpm, tpm, max_concurrency, allow_ip; checked by server/token_rules.py)."""
    rules.name(name)
    models = rules.models(models) if models is not None else None
    limits = {key: value for key, value in (limits or {}).items() if value is not None}
    summary = {"models": sorted(set(models)) if models else "all", "expires_at": expires_at, "quota": _amount(quota),
               **_limits_shown(limits)}
    with audit.change(db, actor, "token.create", name, summary):
        _free(db, name)
        token, key = token_store.create(db, name, models, expires_at, quota,
                                        Limits(limits.get("rpm"), limits.get("tpm"), limits.get("max_concurrency")),
                                        limits.get("allow_ip"))
    return token, key


def update(db: sqlite_utils.Database, actor: audit.Actor, name: str, changes: TokenChanges) -> Token:
    return change(db, actor, name, changes)[0]


def change(db: sqlite_utils.Database, actor: audit.Actor, name: str,
           changes: TokenChanges) -> tuple[Token, str | None]:
    """update(), and the token's new webhook secret when this change made one (shown once)."""
    if changes.webhook_url is not KEEP and changes.webhook_url is not None:
        rules.webhook_url(changes.webhook_url)
    if changes.empty():
        raise AdminError("nothing to update: give a new name, models, expiry, quota, quota to add, "
                         "rate limits (rpm, tpm, max_concurrency), address rules (allow_ip) or the webhook URL")
    if changes.new_name is not None:
        rules.name(changes.new_name)
    models = changes.models
    if models is not KEEP and models is not None:
        models = rules.models(models)
    with audit.change(db, actor, "token.update", name, changes.summary()) as conn:
        token = get(db, name)
        if changes.new_name is not None and changes.new_name != name:
            _free(db, changes.new_name)
        token_edits.update(conn, token.id, name=changes.new_name, models=models, expires_at=changes.expires_at,
                           limits=changes.limits)
        secret = webhook_events.set_webhook_in(conn, token.id, changes.webhook_url, changes.rotate_webhook_secret,
                                               KEEP)
        current = changes.new_name or name
        if changes.quota is not KEEP or changes.add_quota is not None:
            # last: it commits the whole change (or rolls it all back when refused)
            quota_store.set_quota(db, current, None if changes.quota is KEEP else changes.quota,
                                  unlimited=changes.quota is None, add=changes.add_quota)
    return get(db, current), secret


def add_quota(db: sqlite_utils.Database, actor: audit.Actor, name: str, amount: int) -> Token:
    with audit.change(db, actor, "token.add_quota", name, {"add_quota": money.format_amount(amount)}):
        get(db, name)
        quota_store.set_quota(db, name, add=amount)
    return get(db, name)


def set_enabled(db: sqlite_utils.Database, actor: audit.Actor, name: str, enabled: bool) -> Token:
    with audit.change(db, actor, "token.enable" if enabled else "token.disable", name, {}):
        get(db, name)
        token_store.set_enabled(db, name, enabled)
    return get(db, name)


def delete(db: sqlite_utils.Database, actor: audit.Actor, name: str) -> None:
    with audit.change(db, actor, "token.delete", name, {}):
        get(db, name)
        token_store.delete(db, name)


def rotate(db: sqlite_utils.Database, actor: audit.Actor, name: str) -> tuple[Token, str]:
    """A new key for the token (the old one stops working); shown once, never stored."""
    with audit.change(db, actor, "token.rotate", name, {}) as conn:
        key = token_edits.rotate(conn, get(db, name).id)
    return get(db, name), key


def expiry(expires_in: int | None, now: float | None = None) -> int | None:
    return int(now if now is not None else time.time()) + expires_in if expires_in else None

