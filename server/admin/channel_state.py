"""A channel's state as the operator reads it (`st-ai channel list`, the Admin API):
enabled, cooling until when after how many failures, disabled by the operator, or
disabled by st-ai and why."""
from __future__ import annotations

import datetime as dt

from server.store.channel_health import HealthState
from server.store.channels import Channel

ENABLED, COOLING, DISABLED, AUTO_DISABLED = "enabled", "cooling", "disabled", "auto_disabled"


def state(channel: Channel, health: HealthState | None, now: float) -> str:
    if not channel.enabled:
        return AUTO_DISABLED if channel.auto_disabled else DISABLED
    if health is not None and health.cooling(now):
        return COOLING
    return ENABLED


def fields(channel: Channel, health: HealthState | None, now: float) -> dict:
    """The Admin API's view of the state."""
    current = state(channel, health, now)
    shown: dict = {"state": current}
    if current == COOLING and health is not None:
        shown.update(cooling_until=health.cooling_until, failures=health.failures, last_error=health.last_error)
    if current == AUTO_DISABLED:
        shown["disabled_reason"] = channel.disabled_reason or "disabled by st-ai"
    return shown


def line(channel: Channel, health: HealthState | None, now: float) -> str:
    """The state in a few words, for `channel list`."""
    current = state(channel, health, now)
    if current == AUTO_DISABLED:
        return f"disabled by st-ai: {channel.disabled_reason or 'no reason recorded'}"
    if current == DISABLED:
        return "disabled (operator)"
    if current == COOLING and health is not None and health.cooling_until is not None:
        failures = f"{health.failures} failure{'s' if health.failures != 1 else ''}"
        return f"cooling until {_when(health.cooling_until)} ({failures}, last {health.last_error or '-'})"
    if health is not None and health.trial:
        return "enabled (its next request is a trial)"
    return "enabled"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
