"""The Admin API's requests as JSON-shaped dicts (the keys of protos/st_ai/v1/admin.proto),
checked and turned into the shared operations; answers as dicts. No transport here: the
servicer (server/services/admin.py) converts protobuf, and runs these on the database
thread. Only keys a request gives change anything."""
from __future__ import annotations

from collections.abc import Mapping

import sqlite_utils

from server import channel_rules
from server.admin import audit, channels, prices, rules, token_limits, tokens
from server.admin.errors import AdminError
from server.billing import price_view
from server.billing import prices as price_rules
from server.providers.interface import ProviderSpec
from server.store import channel_health
from server.store import channels as channel_store
from server.store.channels import Timeouts
from server.store.token_edits import KEEP


def _listed(data: list[dict]) -> dict:
    return {"object": "list", "data": data}


def _strings(body: dict, key: str) -> dict[str, str]:
    """A JSON object of strings (a Struct field), e.g. a model map."""
    value = body.get(key) or {}
    for name, item in value.items():
        if not isinstance(item, str):
            raise AdminError(f"{key}: the value of {name!r} must be a string")
    return dict(value)


# -- tokens ---------------------------------------------------------------------------

def list_tokens(db: sqlite_utils.Database, body: dict) -> dict:
    return _listed(tokens.list_views(db))


def get_token(db: sqlite_utils.Database, body: dict) -> dict:
    return tokens.view(db, tokens.get(db, body.get("name", "")))


def create_token(db: sqlite_utils.Database, actor: audit.Actor, body: dict) -> dict:
    expires_at = tokens.expiry(rules.duration(body["expires_in"])) if "expires_in" in body else None
    quota = rules.amount(body["quota"]) if "quota" in body else None
    token, key = tokens.create(db, actor, body.get("name", ""), body.get("models") or None, expires_at, quota,
                               token_limits.given(body, clearable=False))
    return {"token": tokens.view(db, token), "key": key}


def update_token(db: sqlite_utils.Database, actor: audit.Actor, body: dict) -> dict:
    if body.get("models") and body.get("all_models"):
        raise AdminError("give either models or all_models, not both")
    if "expires_in" in body and body.get("never_expires"):
        raise AdminError("give either expires_in or never_expires, not both")
    models = body["models"] if body.get("models") else (None if body.get("all_models") else KEEP)
    expires_at = (tokens.expiry(rules.duration(body["expires_in"])) if "expires_in" in body
                  else None if body.get("never_expires") else KEEP)
    changes = tokens.TokenChanges(
        new_name=body.get("new_name"), models=models, expires_at=expires_at,
        quota=rules.quota(body["quota"]) if "quota" in body else KEEP,
        add_quota=rules.amount(body["add_quota"]) if "add_quota" in body else None,
        limits=token_limits.given(body, clearable=True), **_webhook_changes(body))
    token, secret = tokens.change(db, actor, body.get("name", ""), changes)
    shown = tokens.view(db, token)
    if secret is not None:  # only in the answer that made it
        shown["webhook_secret"] = secret
    return shown


def _webhook_changes(body: dict) -> dict:
    if "webhook_url" in body and body.get("no_webhook_url"):
        raise AdminError("give either webhook_url or no_webhook_url, not both")
    changes: dict = {"rotate_webhook_secret": bool(body.get("rotate_webhook_secret"))}
    if "webhook_url" in body:
        changes["webhook_url"] = body["webhook_url"]
    elif body.get("no_webhook_url"):
        changes["webhook_url"] = None
    return changes


def add_token_quota(db: sqlite_utils.Database, actor: audit.Actor, body: dict) -> dict:
    if "amount" not in body:
        raise AdminError("give the amount to add, e.g. {\"amount\": \"5\"}")
    return tokens.view(db, tokens.add_quota(db, actor, body.get("name", ""), rules.amount(body["amount"])))


def enable_token(db: sqlite_utils.Database, actor: audit.Actor, body: dict) -> dict:
    return tokens.view(db, tokens.set_enabled(db, actor, body.get("name", ""), True))


def disable_token(db: sqlite_utils.Database, actor: audit.Actor, body: dict) -> dict:
    return tokens.view(db, tokens.set_enabled(db, actor, body.get("name", ""), False))


def delete_token(db: sqlite_utils.Database, actor: audit.Actor, body: dict) -> dict:
    tokens.delete(db, actor, body.get("name", ""))
    return {"name": body.get("name", ""), "deleted": True}


def rotate_token_key(db: sqlite_utils.Database, actor: audit.Actor, body: dict) -> dict:
    token, key = tokens.rotate(db, actor, body.get("name", ""))
    return {"token": tokens.view(db, token), "key": key}


# -- channels -------------------------------------------------------------------------

def list_channels(db: sqlite_utils.Database, body: dict, specs: Mapping[str, ProviderSpec]) -> dict:
    health = channel_health.load_all(db)
    return _listed([channels.view(c, specs, health.get(c.id)) for c in channel_store.all_channels(db)])


def get_channel(db: sqlite_utils.Database, body: dict, specs: Mapping[str, ProviderSpec]) -> dict:
    channel = channels.get(db, body.get("name", ""))
    return channels.view(channel, specs, channels.health(db, channel))


def create_channel(db: sqlite_utils.Database, actor: audit.Actor, body: dict,
                   specs: Mapping[str, ProviderSpec]) -> dict:
    new = channel_rules.NewChannel(
        name=body.get("name", ""), type=body.get("type", ""), models=list(body.get("models") or []),
        base_url=body.get("base_url"), key=body.get("key"), no_key=bool(body.get("no_key")),
        model_map=_strings(body, "model_map"), priority=rules.priority(body.get("priority", 0)),
        weight=rules.weight(body.get("weight", 1)), timeouts=Timeouts(**_timeouts(body)),
        api_version=(channel_rules.api_version_given(body["api_version"]) or None) if "api_version" in body else None,
        native_apis=_native_apis_new(body))
    return channels.view(channels.create(db, actor, new, specs), specs)


def _native_apis_new(body: dict) -> frozenset[str] | None:
    given = channel_rules.native_apis_given(body["native_apis"]) if "native_apis" in body else None
    return None if given is None or given == channel_rules.DEFAULT else given


def update_channel(db: sqlite_utils.Database, actor: audit.Actor, body: dict,
                   specs: Mapping[str, ProviderSpec]) -> dict:
    changes = channels.ChannelChanges(
        base_url=body.get("base_url"), key=body.get("key"), no_key=bool(body.get("no_key")),
        models=list(body["models"]) if body.get("models") else None,
        model_map=_strings(body, "model_map") if "model_map" in body else None,
        priority=rules.priority(body["priority"]) if "priority" in body else None,
        weight=rules.weight(body["weight"]) if "weight" in body else None, timeouts=_timeouts(body),
        api_version=channel_rules.api_version_given(body["api_version"]) if "api_version" in body else None,
        native_apis=channel_rules.native_apis_given(body["native_apis"]) if "native_apis" in body else None)
    channel = channels.update(db, actor, body.get("name", ""), changes, specs)
    return channels.view(channel, specs, channels.health(db, channel))


def _timeouts(body: dict) -> dict[str, float | None]:
    """The timeouts a request sets: "timeout_idle": 30, or 0 for the gateway's default."""
    return {name: rules.timeout(body[f"timeout_{name}"]) for name in channels.TIMEOUT_NAMES
            if f"timeout_{name}" in body}


def enable_channel(db: sqlite_utils.Database, actor: audit.Actor, body: dict,
                   specs: Mapping[str, ProviderSpec]) -> dict:
    return channels.view(channels.set_enabled(db, actor, body.get("name", ""), True), specs)


def disable_channel(db: sqlite_utils.Database, actor: audit.Actor, body: dict,
                    specs: Mapping[str, ProviderSpec]) -> dict:
    return channels.view(channels.set_enabled(db, actor, body.get("name", ""), False), specs)


def delete_channel(db: sqlite_utils.Database, actor: audit.Actor, body: dict,
                   specs: Mapping[str, ProviderSpec]) -> dict:
    channels.delete(db, actor, body.get("name", ""))
    return {"name": body.get("name", ""), "deleted": True}


# -- prices ---------------------------------------------------------------------------

def list_prices(db: sqlite_utils.Database, body: dict) -> dict:
    return _listed(prices.list_views(db))


def set_price(db: sqlite_utils.Database, actor: audit.Actor, body: dict) -> dict:
    def amount(key: str) -> int | None:
        return rules.amount(body[key]) if key in body else None

    changes = price_rules.PriceChanges(
        input=amount("input"), cached_input=amount("cached_input"), output=amount("output"),
        cache_write=amount("cache_write"), per_request=amount("per_request"),
        per_image={price_rules.image_key(k): rules.amount(v) for k, v in _strings(body, "per_image").items()},
        per_second={price_rules.resolution_key(k): rules.amount(v) for k, v in _strings(body, "per_second").items()})
    if changes.empty():
        raise AdminError("nothing to set: give at least one price")
    return price_view.price_json(prices.set_price(db, actor, body.get("model", ""), changes))


def delete_price(db: sqlite_utils.Database, actor: audit.Actor, body: dict) -> dict:
    default = prices.delete_price(db, actor, body.get("model", ""))
    return {"name": body.get("model", ""), "deleted": True,
            "note": "st-ai's default price applies again" if default else "the model is now unpriced"}


# -- audit ----------------------------------------------------------------------------

def list_audit_events(db: sqlite_utils.Database, body: dict) -> dict:
    limit = body.get("limit", 50)
    if not 1 <= limit <= audit.MAX_LIST:
        raise AdminError(f"limit must be from 1 to {audit.MAX_LIST}")
    found, more = audit.events(db, limit, body.get("before_id"), body.get("operation"), body.get("target"))
    return {**_listed([event_view(e) for e in found]), "has_more": more}


def event_view(event: audit.AuditEvent) -> dict:
    return {"id": event.id, "time": event.time, "actor": event.actor, "operation": event.operation,
            "target": event.target, "request_id": event.request_id, "summary": event.summary}
