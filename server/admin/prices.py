"""Price operations, one implementation each for the CLI and the Admin API, audited."""
from __future__ import annotations

import sqlite_utils

from server.admin import audit
from server.admin.errors import NotFound
from server.billing import money
from server.billing import price_view
from server.billing.prices import ModelPrice, PriceChanges, check_model
from server.store import prices as price_store


def _summary(changes: PriceChanges) -> dict:
    shown: dict = {}
    for name in ("input", "cached_input", "output", "cache_write", "per_request"):
        if getattr(changes, name) is not None:
            shown[name] = money.format_amount(getattr(changes, name))
    for name in ("per_image", "per_second"):
        if getattr(changes, name):
            shown[name] = {k: money.format_amount(v) for k, v in sorted(getattr(changes, name).items())}
    return shown


def list_views(db: sqlite_utils.Database) -> list[dict]:
    return [price_view.price_json(p) for p in price_store.effective_prices(db).values()]


def set_price(db: sqlite_utils.Database, actor: audit.Actor, model: str, changes: PriceChanges) -> ModelPrice:
    check_model(model)
    with audit.change(db, actor, "price.set", model, _summary(changes)):
        return price_store.set_price(db, model, changes)


def delete_price(db: sqlite_utils.Database, actor: audit.Actor, model: str) -> bool:
    """Remove the operator's price; True when st-ai's default price applies again."""
    with audit.change(db, actor, "price.delete", model, {}):
        if model not in price_store.operator_prices(db):
            default = " (its price is st-ai's default)" if price_store.lookup(db, model) else ""
            raise NotFound(f"no operator price for {model!r}{default}")
        price_store.delete_price(db, model)
    return price_store.lookup(db, model) is not None
