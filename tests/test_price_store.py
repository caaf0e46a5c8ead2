"""server/store/prices.py: operator prices over the defaults, merged and stored exactly."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from server.billing.defaults import DEFAULT_PRICES
from server.billing.prices import ModelPrice, PriceChanges, PriceError
from server.store import prices as price_store
from server.store.db import open_db


@pytest.fixture
def db(tmp_path: Path):
    database = open_db(str(tmp_path / "prices.db"))
    yield database
    database.close()


def test_a_new_database_has_the_prices_table_and_only_the_defaults(db):
    assert "prices" in db.table_names()
    assert price_store.operator_prices(db) == {}
    assert list(price_store.effective_prices(db).values()) == sorted(DEFAULT_PRICES, key=lambda p: p.model)


def test_set_stores_integers_and_reads_back_the_same_price(db):
    changes = PriceChanges(input=1_250_000, cached_input=125_000, output=10_000_000, cache_write=1_500_000,
                           per_image={"1024x1024:hd": 80_000}, per_second={"*": 100_000, "720p": 300_000},
                           per_request=500)
    written = price_store.set_price(db, "m", changes)
    assert price_store.lookup(db, "m") == written == ModelPrice(
        "m", input=1_250_000, cached_input=125_000, output=10_000_000, cache_write=1_500_000,
        per_image={"1024x1024:hd": 80_000}, per_second={"*": 100_000, "720p": 300_000}, per_request=500)
    row = db.execute("SELECT typeof(input), typeof(per_request) FROM prices WHERE model = 'm'").fetchone()
    assert row == ("integer", "integer")


def test_an_unknown_model_has_no_price(db):
    assert price_store.lookup(db, "nobody-priced-this") is None


def test_setting_nothing_writes_nothing(db):
    with pytest.raises(PriceError, match="nothing to set"):
        price_store.set_price(db, "m", PriceChanges())
    assert price_store.operator_prices(db) == {}


def test_concurrent_sets_from_two_connections_lose_no_key(tmp_path):
    path = str(tmp_path / "race.db")
    open_db(path).close()
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        conn = open_db(path)
        try:
            for i in range(25):
                price_store.set_price(conn, "m", PriceChanges(per_image={f"{prefix}{i + 1}x1": i + 1}))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("1", "2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    db = open_db(path)
    assert len(price_store.lookup(db, "m").per_image) == 50
    db.close()
