"""Upstream channels: where a model's requests go, with which upstream key."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import sqlite_utils


@dataclass(frozen=True)
class Timeouts:
    """Seconds an upstream call may take: to connect, to its first byte (a plain answer,
    or a stream's first event), between two stream events, and in all. None: the
    gateway's default (server/core/resilience.py); a snapshot's channels have them filled."""
    connect: float | None = None
    first_byte: float | None = None
    idle: float | None = None
    total: float | None = None

    def filled(self, defaults: "Timeouts") -> "Timeouts":
        own = _values(self)
        if None not in own:  # a snapshot's channel, filled when it was loaded
            return self
        # field by field: astuple deep-copies, a cost on every request
        return Timeouts(*(mine if mine is not None else theirs for mine, theirs in zip(own, _values(defaults))))


def _values(timeouts: Timeouts) -> tuple[float | None, ...]:
    return timeouts.connect, timeouts.first_byte, timeouts.idle, timeouts.total


@dataclass(frozen=True)
class Channel:
    id: int
    name: str
    type: str
    base_url: str
    key: str = field(repr=False)  # the upstream secret: never printed
    models: tuple[str, ...] = ()
    model_map: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    priority: int = 0
    weight: int = 1  # share of its priority tier's requests, relative to the others' weights
    timeouts: Timeouts = Timeouts()
    # why it is disabled; `auto_disabled`: st-ai disabled it (a rejected key), so a
    # successful probe or `channel test` enables it again, which an operator's disable never is
    disabled_reason: str | None = None
    auto_disabled: bool = False
    # the upstream API version the provider calls (None: the provider's current default)
    api_version: str | None = None
    # the operator's --native-apis (None: the type's default); read `native_apis`
    native_apis_chosen: frozenset[str] | None = None

    def upstream_model(self, model: str) -> str:
        return self.model_map.get(model, model)

    @property
    def native_apis(self) -> frozenset[str]:
        """The client APIs its upstream speaks itself: the operator's choice, else its type's."""
        if self.native_apis_chosen is not None:
            return self.native_apis_chosen
        from server.providers.registry import default_native_apis  # providers import this module
        return default_native_apis().get(self.type, frozenset())

    @property
    def key_hint(self) -> str:
        if not self.key:
            return "(none)"
        return f"...{self.key[-4:]}" if len(self.key) >= 12 else "(set)"


class ChannelError(ValueError):
    pass


def add(db: sqlite_utils.Database, name: str, type: str, base_url: str, key: str,
        models: list[str], model_map: dict[str, str] | None = None, priority: int = 0, weight: int = 1,
        timeouts: Timeouts = Timeouts(), api_version: str | None = None,
        native_apis: frozenset[str] | None = None) -> Channel:
    if not name:
        raise ChannelError("a channel needs a name")
    if not models:
        raise ChannelError("a channel needs at least one model")
    if db["channels"].count_where("name = ?", [name]):
        raise ChannelError(f"a channel named {name!r} already exists")
    row = {"name": name, "type": type, "base_url": base_url.rstrip("/"), "key": key,
           "models": json.dumps(list(dict.fromkeys(models))),
           "model_map": json.dumps(model_map or {}), "enabled": 1, "priority": priority,
           "weight": weight, **timeout_columns(timeouts), "api_version": api_version,
           "native_apis": native_apis_column(native_apis), "created_at": int(time.time())}
    with db.conn:
        db["channels"].insert(row)
    return get(db, name)


def timeout_columns(timeouts: Timeouts) -> dict[str, float | None]:
    return {"timeout_connect": timeouts.connect, "timeout_first_byte": timeouts.first_byte,
            "timeout_idle": timeouts.idle, "timeout_total": timeouts.total}


def native_apis_column(apis: frozenset[str] | None) -> str | None:
    """A JSON list, sorted ([] for none); NULL for the type's default."""
    return None if apis is None else json.dumps(sorted(apis))


def get(db: sqlite_utils.Database, name: str) -> Channel:
    rows = list(db["channels"].rows_where("name = ?", [name]))
    if not rows:
        raise ChannelError(f"no channel named {name!r}")
    return _from_row(rows[0])


def all_channels(db: sqlite_utils.Database) -> list[Channel]:
    return [_from_row(r) for r in db["channels"].rows_where(order_by="id")]


def set_enabled(db: sqlite_utils.Database, name: str, enabled: bool) -> Channel:
    channel = get(db, name)
    with db.conn:
        # the operator's word replaces st-ai's: a reason st-ai recorded no longer applies
        db["channels"].update(channel.id, {"enabled": int(enabled), "auto_disabled": 0, "disabled_reason": None})
    return get(db, name)


def delete(db: sqlite_utils.Database, name: str) -> None:
    channel = get(db, name)
    with db.conn:
        db["channels"].delete(channel.id)


def _from_row(row: dict) -> Channel:
    return Channel(id=row["id"], name=row["name"], type=row["type"], base_url=row.get("base_url") or "",
                   key=row.get("key") or "", models=tuple(json.loads(row["models"])),
                   model_map=json.loads(row.get("model_map") or "{}"), enabled=bool(row["enabled"]),
                   priority=row.get("priority") or 0, weight=row["weight"] if row.get("weight") is not None else 1,
                   timeouts=Timeouts(row.get("timeout_connect"), row.get("timeout_first_byte"),
                                     row.get("timeout_idle"), row.get("timeout_total")),
                   disabled_reason=row.get("disabled_reason"), auto_disabled=bool(row.get("auto_disabled")),
                   api_version=row.get("api_version") or None,
                   native_apis_chosen=(frozenset(json.loads(row["native_apis"]))
                                       if row.get("native_apis") is not None else None))
