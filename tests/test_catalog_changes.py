"""What reloads the gateway's catalog (server/catalog.py): a change to the tables it is made
of, by any process (schema step 14's counter, server/store/schema.py), and nothing else: not
the ledger rows and spending every request writes, which under `serve --workers N` are
another process's commits many times a second. And a key the snapshot lacks is looked up
again at once, so a token made a moment ago works on its first request."""
from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from server.billing.prices import PriceChanges
from server.catalog import Catalog
from server.errors import GatewayError
from server.store import channel_health, schema
from server.store import channels as channel_store
from server.store import prices as price_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store.channel_health import HealthState
from server.store.db import DbWorker, catalog_version, open_db
from server.store.quota import LedgerRow, Settlement
from server.store.rate_limits import Limits


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "st-ai.db")


@pytest.fixture
def other(db_path):
    """Another process's connection: the CLI, or another worker."""
    database = open_db(db_path)
    yield database
    database.close()


@pytest.fixture
def worker(db_path, other):
    worker = DbWorker(db_path)
    yield worker
    worker.close()


@pytest.fixture
async def catalog(worker):
    catalog = Catalog(worker, refresh_interval=0.02)
    await catalog.load()
    return catalog


def spend(db, token_id: int, cost: int) -> None:
    """What a request's settlement writes: its ledger row, the token's `used`."""
    quota_store.settle_many(db, [Settlement(None, LedgerRow(time.time(), None, token_id, "m", "m", None, "chat", 200,
                                                            cost=cost))])


def test_a_settlement_moves_no_counter_but_every_catalog_change_does(other):
    token, _ = token_store.create(other, "t", quota=10_000)
    before = catalog_version(other)
    for _ in range(5):
        spend(other, token.id, 7)
    assert quota_store.status(other, "t").used == 35
    assert catalog_version(other) == before, "the ledger and `used` are not the catalog"

    changes = [
        lambda: token_store.create(other, "u"),
        lambda: token_store.set_enabled(other, "u", False),
        lambda: quota_store.set_quota(other, "u", 500),
        lambda: token_store.delete(other, "u"),
        lambda: channel_store.add(other, "c", "simulator", "", "", ["m"]),
        lambda: channel_store.set_enabled(other, "c", False),
        lambda: price_store.set_price(other, "m", PriceChanges(per_request=3)),
        lambda: channel_health.save(other, {channel_store.get(other, "c").id: HealthState(failures=1, updated_at=1.0)}),
        lambda: channel_store.delete(other, "c"),
    ]
    for change in changes:
        version = catalog_version(other)
        change()
        assert catalog_version(other) > version, change


def test_every_column_of_the_catalogs_tables_is_watched_but_a_tokens_spending(other):
    """A later step that adds a column must re-create the triggers (schema.py's how-to)."""
    conn = other.conn
    for table in schema.CATALOG_TABLES:
        columns = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
        expected = columns - set(schema.TOKENS_NOT_IN_CATALOG) if table == "tokens" else columns
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                           [f"{table}_update_moves_catalog"]).fetchone()[0]
        watched = set(re.findall(r'"(\w+)"', sql.split(" ON ")[0].split("UPDATE OF", 1)[1]))
        assert watched == expected, table
        for event in ("insert", "delete"):
            assert conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                                [f"{table}_{event}_moves_catalog"]).fetchone(), (table, event)


async def test_other_processes_spending_never_reloads_the_catalog(catalog, other):
    token, _ = token_store.create(other, "busy", quota=10**9, limits=Limits(rpm=10**6))
    await catalog.refresh()
    loaded = catalog.snapshot
    watcher = asyncio.create_task(catalog.watch())
    try:
        for _ in range(20):  # about ten of the watcher's looks
            spend(other, token.id, 1)
            await asyncio.sleep(0.01)
        assert catalog.snapshot is loaded

        token_store.set_enabled(other, "busy", False)
        deadline = time.monotonic() + 5
        while catalog.snapshot is loaded and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not next(t for t in catalog.snapshot.tokens_by_hash.values() if t.name == "busy").enabled
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


async def test_a_token_made_a_moment_ago_is_found_on_its_first_request(catalog, other):
    """No watcher runs here: only the lookup of a key the snapshot lacks can find it."""
    _, key = token_store.create(other, "fresh")
    assert (await catalog.authenticate(f"Bearer {key}")).name == "fresh"


async def test_many_unknown_keys_at_once_share_one_reload(catalog, other, monkeypatch):
    loads = 0
    real_load = Catalog.load

    async def counted(self):
        nonlocal loads
        loads += 1
        await real_load(self)
    monkeypatch.setattr(Catalog, "load", counted)

    _, key = token_store.create(other, "crowd")
    found = await asyncio.gather(*(catalog.authenticate(f"Bearer {key}") for _ in range(20)))
    assert {t.name for t in found} == {"crowd"}
    assert loads == 1

    results = await asyncio.gather(*(catalog.authenticate(f"Bearer sk-unknown-{i}") for i in range(20)),
                                   return_exceptions=True)
    assert all(isinstance(r, GatewayError) and r.code == "invalid_api_key" for r in results)
    assert loads == 1, "keys no process made reload nothing"


async def test_a_flood_of_unknown_keys_looks_at_the_database_a_few_times_not_once_each(catalog, worker, other):
    looks: list[str] = []

    def record(sql: str) -> None:
        if "catalog_changes" in sql:
            looks.append(sql)
    await worker.run(lambda db: db.conn.set_trace_callback(record))
    results = await asyncio.gather(*(catalog.authenticate(f"Bearer sk-nobody-{i}") for i in range(50)),
                                   return_exceptions=True)
    assert all(isinstance(r, GatewayError) and r.http_status == 401 for r in results)
    assert 1 <= len(looks) <= 2, looks

    # a token made while others' looks are under way is still found by a request after it
    first = asyncio.ensure_future(catalog.authenticate("Bearer sk-nobody"))
    await asyncio.sleep(0)  # its look is asked for
    _, key = token_store.create(other, "amid")
    assert (await catalog.authenticate(f"Bearer {key}")).name == "amid"
    with pytest.raises(GatewayError):
        await first


async def test_an_unknown_key_is_still_a_401_when_the_database_cannot_be_read(catalog, other, monkeypatch):
    async def broken(self):
        raise RuntimeError("database is locked")
    monkeypatch.setattr(Catalog, "refresh", broken)
    with pytest.raises(GatewayError) as caught:
        await catalog.authenticate("Bearer sk-nobody")
    assert caught.value.http_status == 401 and caught.value.code == "invalid_api_key"


# -- through the gateway ------------------------------------------------------------------------

def chat(gateway, key: str, model: str, stream: bool = False) -> int:
    body = json.dumps({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(gateway.base_url + "/chat/completions", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def models(gateway, key: str) -> int:
    request = urllib.request.Request(gateway.base_url + "/models", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status


def test_a_token_and_a_channel_made_a_moment_ago_serve_their_first_requests(gateway):
    db = open_db(gateway.db_path)
    try:
        _, key = token_store.create(db, "just-made")
    finally:
        db.close()
    assert models(gateway, key) == 200

    db = open_db(gateway.db_path)  # the token is known now: only the model is new
    try:
        channel_store.add(db, "just-added", "simulator", "", "", ["gpt-4o-mini"])
    finally:
        db.close()
    assert chat(gateway, key, "gpt-4o-mini") == 200
    assert chat(gateway, key, "gpt-4o-mini", stream=True) == 200
    assert chat(gateway, key, "no-such-model") == 404
