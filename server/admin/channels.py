"""Channel operations, one implementation each for the CLI and the Admin API. Input is
checked by server/channel_rules.py, as `channel add` checks it; every change is audited
with a summary that names no key and no base URL (both may hold secrets)."""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field, replace

import sqlite_utils

from server import channel_rules
from server.admin import audit, channel_state
from server.admin.errors import AdminError, Conflict, NotFound
from server.providers.interface import ProviderSpec
from server.store import channel_edits, channel_health
from server.store import channels as channel_store
from server.store.channel_health import HealthState
from server.store.channels import Channel, Timeouts

TIMEOUT_NAMES = ("connect", "first_byte", "idle", "total")  # Timeouts' fields, in order

@dataclass(frozen=True)
class ChannelChanges:
    """What `channel update` changes; None leaves a setting as it is."""
    base_url: str | None = None
    key: str | None = None
    no_key: bool = False
    models: list[str] | None = None
    model_map: dict[str, str] | None = None
    priority: int | None = None
    weight: int | None = None
    # timeout name (TIMEOUT_NAMES) -> seconds, or None for the gateway's default; absent: unchanged
    timeouts: dict[str, float | None] = field(default_factory=dict)
    api_version: str | None = None  # "": back to the provider's current version
    native_apis: frozenset[str] | str | None = None  # channel_rules.DEFAULT: back to the type's own

    def empty(self) -> bool:
        return self == ChannelChanges()

    def timeouts_of(self, current: Timeouts) -> Timeouts:
        return replace(current, **self.timeouts)

    def summary(self) -> dict:
        shown: dict = {}
        if self.base_url is not None:
            shown["base_url"] = "changed"
        if self.key is not None or self.no_key:
            shown["key"] = "none" if self.no_key else "changed"
        if self.models is not None:
            shown["models"] = list(self.models)
        if self.model_map is not None:
            shown["model_map"] = dict(self.model_map)
        if self.priority is not None:
            shown["priority"] = self.priority
        if self.weight is not None:
            shown["weight"] = self.weight
        for name, seconds in self.timeouts.items():
            shown[f"timeout_{name}"] = "default" if seconds is None else seconds
        if self.api_version is not None:
            shown["api_version"] = self.api_version or "default"
        if self.native_apis is not None:
            shown["native_apis"] = _native_apis_summary(self.native_apis)
        return shown


def _native_apis_summary(apis: frozenset[str] | str | None) -> str:
    if apis is None or apis == channel_rules.DEFAULT:
        return channel_rules.DEFAULT
    return channel_rules.native_apis_text(frozenset(apis))


def get(db: sqlite_utils.Database, name: str) -> Channel:
    try:
        return channel_store.get(db, name)
    except channel_store.ChannelError:
        raise NotFound(f"no channel named {name!r}") from None


def health(db: sqlite_utils.Database, channel: Channel) -> HealthState | None:
    return channel_health.load_all(db).get(channel.id)


def view(channel: Channel, specs: Mapping[str, ProviderSpec], health: HealthState | None = None,
         now: float | None = None) -> dict:
    """A channel as the admin reads it: the key only as a hint. The base URL is the
    operator's own setting and is shown here, never in logs or the audit. A timeout of
    None (left out of the answer) is the gateway's default."""
    spec = specs.get(channel.type)
    return {"name": channel.name, "type": channel.type,
            "label": spec.label if spec else f"{channel.type} (unknown type)",
            "base_url": channel.base_url, "models": list(channel.models), "model_map": dict(channel.model_map),
            "priority": channel.priority, "enabled": channel.enabled, "key_hint": channel.key_hint,
            "weight": channel.weight, **_timeouts_view(channel.timeouts), "api_version": channel.api_version,
            "native_apis": [a for a in channel_rules.NATIVE_APIS if a in channel.native_apis],
            "native_apis_default": channel.native_apis_chosen is None,
            **channel_state.fields(channel, health, time.time() if now is None else now)}


def _timeouts_view(timeouts: Timeouts) -> dict:
    return {f"timeout_{name}": value for name, value in zip(TIMEOUT_NAMES, astuple(timeouts))}


def _summary(new: channel_rules.NewChannel) -> dict:
    return {"type": new.type, "models": list(new.models), "model_map": dict(new.model_map),
            "priority": new.priority, "weight": new.weight, "key": "none" if not new.key else "set",
            **{k: "default" if v is None else v for k, v in _timeouts_view(new.timeouts).items()},
            "api_version": new.api_version or "default", "native_apis": _native_apis_summary(new.native_apis)}


def create(db: sqlite_utils.Database, actor: audit.Actor, new: channel_rules.NewChannel,
           specs: Mapping[str, ProviderSpec]) -> Channel:
    checked = channel_rules.check(new, specs)
    with audit.change(db, actor, "channel.create", checked.name, _summary(checked)):
        if db.conn.execute("SELECT 1 FROM channels WHERE name = ?", [checked.name]).fetchone():
            raise Conflict(f"a channel named {checked.name!r} already exists")
        return channel_store.add(db, checked.name, checked.type, checked.base_url or "", checked.key or "",
                                 checked.models, checked.model_map, checked.priority, checked.weight,
                                 checked.timeouts, checked.api_version, checked.native_apis)


def update(db: sqlite_utils.Database, actor: audit.Actor, name: str, changes: ChannelChanges,
           specs: Mapping[str, ProviderSpec]) -> Channel:
    """The channel with `changes` applied, checked whole as `channel add` checks a new one."""
    if changes.empty():
        raise AdminError("nothing to update: give --base-url, --key, --no-key, --models, --model-map, --priority, "
                         "--weight, a --timeout-*, --api-version or --native-apis")
    with audit.change(db, actor, "channel.update", name, changes.summary()) as conn:
        current = get(db, name)
        spec = specs.get(current.type)
        keyless = bool(spec and spec.upstream and not current.key)
        if changes.key is not None or changes.no_key:
            key, no_key = changes.key, changes.no_key
        else:
            key, no_key = current.key or None, keyless
        models = changes.models if changes.models is not None else list(current.models)
        model_map = changes.model_map if changes.model_map is not None else {
            public: upstream for public, upstream in current.model_map.items() if public in models}
        merged = channel_rules.NewChannel(
            name=current.name, type=current.type, models=models,
            base_url=changes.base_url if changes.base_url is not None else (current.base_url or None),
            key=key, no_key=no_key, model_map=model_map,
            priority=changes.priority if changes.priority is not None else current.priority,
            weight=changes.weight if changes.weight is not None else current.weight,
            timeouts=changes.timeouts_of(current.timeouts),
            api_version=(changes.api_version or None) if changes.api_version is not None else current.api_version,
            native_apis=_native_apis_after(changes.native_apis, current))
        checked = channel_rules.check(merged, specs)
        channel_edits.replace_settings(conn, current.id, base_url=checked.base_url or "", key=checked.key or "",
                                       models=checked.models, model_map=checked.model_map,
                                       priority=checked.priority, weight=checked.weight, timeouts=checked.timeouts,
                                       api_version=checked.api_version, native_apis=checked.native_apis)
    return get(db, name)


def _native_apis_after(change: frozenset[str] | str | None, current: Channel) -> frozenset[str] | None:
    if change is None:
        return current.native_apis_chosen
    return None if change == channel_rules.DEFAULT else frozenset(change)


def set_enabled(db: sqlite_utils.Database, actor: audit.Actor, name: str, enabled: bool) -> Channel:
    with audit.change(db, actor, "channel.enable" if enabled else "channel.disable", name, {}):
        get(db, name)
        channel_store.set_enabled(db, name, enabled)
    return get(db, name)


def delete(db: sqlite_utils.Database, actor: audit.Actor, name: str) -> None:
    with audit.change(db, actor, "channel.delete", name, {}):
        get(db, name)
        channel_store.delete(db, name)

