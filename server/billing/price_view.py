"""A price as operators read it: amounts as decimal strings, in a table row or JSON."""
from __future__ import annotations

from server.billing.money import CURRENCY, format_amount
from server.billing.prices import ModelPrice


def _amount(micros: int | None) -> str | None:
    return None if micros is None else format_amount(micros)


def price_json(price: ModelPrice) -> dict:
    """One model's effective price; token prices are per 1M tokens."""
    return {
        "model": price.model, "currency": CURRENCY,
        "input": _amount(price.input), "cached_input": _amount(price.cached_input),
        "output": _amount(price.output), "cache_write": _amount(price.cache_write),
        "per_image": {k: format_amount(v) for k, v in sorted(price.per_image.items())},
        "per_second": {k: format_amount(v) for k, v in sorted(price.per_second.items())},
        "per_request": _amount(price.per_request),
        "source": price.origin.kind, "source_url": price.origin.source_url, "checked": price.origin.checked,
    }


def price_row(price: ModelPrice) -> list[str]:
    def cell(micros: int | None) -> str:
        return "-" if micros is None else format_amount(micros)

    def keyed(prices: dict[str, int]) -> str:
        return ",".join(f"{k}={format_amount(v)}" for k, v in sorted(prices.items())) or "-"

    source = price.origin.kind if price.origin.checked is None else f"{price.origin.kind} ({price.origin.checked})"
    return [price.model, cell(price.input), cell(price.cached_input), cell(price.output), cell(price.cache_write),
            keyed(price.per_image), keyed(price.per_second), cell(price.per_request), source]


PRICE_HEADER = ["MODEL", "INPUT/1M", "CACHED/1M", "OUTPUT/1M", "CACHE WRITE/1M", "PER IMAGE", "PER SECOND",
                "PER REQUEST", "SOURCE"]


def price_summary(price: ModelPrice) -> str:
    """One line: the prices set, e.g. "input=1.25/1M, output=10/1M, 1024x1024:hd=0.08/image"."""
    shown = price_json(price)
    parts = [f"{name}={shown[name]}/1M" for name in ("input", "cached_input", "output", "cache_write")
             if shown[name] is not None]
    parts += [f"{key}={value}/image" for key, value in shown["per_image"].items()]
    parts += [f"{key}={value}/second" for key, value in shown["per_second"].items()]
    if shown["per_request"] is not None:
        parts.append(f"{shown['per_request']}/request")
    return ", ".join(parts)
