"""The operator's prices, stored per public model over st-ai's dated defaults.

A row holds a model's whole price (amounts in micro-units); `price set` merges into the
model's effective price and stores the result, so removing the row (`price delete`) brings
the default back.
"""
from __future__ import annotations

import json
import time

import sqlite_utils

from server.billing.defaults import DEFAULT_PRICES
from server.billing.prices import ModelPrice, PriceChanges, PriceError, check_model

_SCALARS = ("input", "cached_input", "output", "cache_write", "per_request")


def operator_prices(db: sqlite_utils.Database) -> dict[str, ModelPrice]:
    return {row["model"]: _from_row(row) for row in db["prices"].rows_where(order_by="model")}


def effective_prices(db: sqlite_utils.Database) -> dict[str, ModelPrice]:
    """Every priced model: the operator's price where set, else st-ai's default."""
    prices = {p.model: p for p in DEFAULT_PRICES}
    prices.update(operator_prices(db))
    return dict(sorted(prices.items()))


def lookup(db: sqlite_utils.Database, model: str) -> ModelPrice | None:
    rows = list(db["prices"].rows_where("model = ?", [model]))
    if rows:
        return _from_row(rows[0])
    return next((p for p in DEFAULT_PRICES if p.model == model), None)


def set_price(db: sqlite_utils.Database, model: str, changes: PriceChanges) -> ModelPrice:
    """Merge `changes` into the model's effective price and store it as the operator's."""
    check_model(model)
    if changes.empty():
        raise PriceError("nothing to set: give at least one price (see st-ai price set --help)")
    with db.conn:  # one write transaction from read to write: a concurrent `price set` cannot lose keys
        if not db.conn.in_transaction:
            db.execute("BEGIN IMMEDIATE")
        price = (lookup(db, model) or ModelPrice(model)).merged(changes)
        row = {"model": model, **{name: getattr(price, name) for name in _SCALARS},
               "per_image": json.dumps(price.per_image, sort_keys=True),
               "per_second": json.dumps(price.per_second, sort_keys=True),
               "updated_at": int(time.time())}
        columns = ", ".join(row)
        db.execute(f"INSERT OR REPLACE INTO prices ({columns}) VALUES ({', '.join('?' * len(row))})",
                   list(row.values()))
    return price


def delete_price(db: sqlite_utils.Database, model: str) -> None:
    """Remove the operator's price for `model`; its default, if any, applies again."""
    with db.conn:
        deleted = db.execute("DELETE FROM prices WHERE model = ?", [model]).rowcount
    if not deleted:
        raise PriceError(f"no operator price for {model!r}"
                         + (" (its price is st-ai's default)" if lookup(db, model) else ""))


def _from_row(row: dict) -> ModelPrice:
    return ModelPrice(model=row["model"], **{name: row[name] for name in _SCALARS},
                      per_image=json.loads(row["per_image"]), per_second=json.loads(row["per_second"]))
