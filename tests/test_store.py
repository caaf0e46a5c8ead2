"""server/store (tokens, channels) and server/catalog.py (snapshot, authenticate, reload)."""
from __future__ import annotations

import asyncio
import hashlib
import re
import time
from pathlib import Path

import pytest

from server.catalog import Catalog
from server.errors import GatewayError
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import DbWorker, open_db


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "st-ai.db")


@pytest.fixture
def db(db_path):
    database = open_db(db_path)
    yield database
    database.close()


def db_bytes(path: str) -> bytes:
    """Every byte SQLite wrote: the main file, the WAL and the shared-memory index."""
    return b"".join(Path(path + suffix).read_bytes() for suffix in ("", "-wal", "-shm")
                    if Path(path + suffix).exists())


# -- tokens ---------------------------------------------------------------------------------

def test_token_key_is_sk_and_at_least_32_random_chars(db):
    keys = [token_store.create(db, f"t{i}")[1] for i in range(20)]
    for key in keys:
        assert re.fullmatch(r"sk-[A-Za-z0-9]{32,}", key), key
    assert len(set(keys)) == len(keys)
    # the random part uses the whole alphabet, not a few characters
    assert len(set("".join(k[3:] for k in keys))) > 40


def test_only_the_sha256_of_the_key_is_stored(db, db_path):
    token, key = token_store.create(db, "secret-holder")
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    row = db.execute("SELECT * FROM tokens WHERE name = ?", ["secret-holder"]).fetchone()
    assert key not in [str(v) for v in row]
    assert key[3:] not in "".join(str(v) for v in row)  # nor its random part
    db.conn.close()  # flush everything to the file
    raw = db_bytes(db_path)
    assert key.encode() not in raw
    assert key[3:].encode() not in raw
    assert token.key_hash.encode() in raw


def test_key_hint_shows_only_a_few_characters(db):
    token, key = token_store.create(db, "hinted")
    assert token.key_hint == f"{key[:5]}...{key[-4:]}"
    assert len(token.key_hint.replace("...", "")) < 12


def test_duplicate_token_names_are_rejected(db):
    token_store.create(db, "dup")
    with pytest.raises(token_store.TokenError, match="already exists"):
        token_store.create(db, "dup")
    assert [t.name for t in token_store.all_tokens(db)] == ["dup"]


def test_token_needs_a_name(db):
    with pytest.raises(token_store.TokenError):
        token_store.create(db, "")


def test_token_expiry(db):
    now = time.time()
    token, _ = token_store.create(db, "soon", expires_at=int(now) + 60)
    assert not token.expired(now)
    assert token.expired(now + 60) and token.expired(now + 3600)
    forever, _ = token_store.create(db, "forever")
    assert forever.expires_at is None and not forever.expired(now + 10**9)


def test_token_model_allow_list(db):
    limited, _ = token_store.create(db, "limited", models=["b", "a", "a"])
    assert limited.models == frozenset({"a", "b"})
    assert limited.allows("a") and limited.allows("b") and not limited.allows("c")
    everyone, _ = token_store.create(db, "everyone")
    assert everyone.models is None and everyone.allows("anything")


def test_token_enable_disable_delete(db):
    token_store.create(db, "t")
    assert not token_store.set_enabled(db, "t", False).enabled
    assert token_store.set_enabled(db, "t", True).enabled
    token_store.delete(db, "t")
    with pytest.raises(token_store.TokenError, match="no token"):
        token_store.get(db, "t")
    with pytest.raises(token_store.TokenError):
        token_store.set_enabled(db, "missing", True)


# -- channels -------------------------------------------------------------------------------

def test_channel_model_map(db):
    channel = channel_store.add(db, "up", "openai", "https://api.example.com/v1/", "sk-upstream-0123456789",
                                ["a", "b", "a"], {"a": "up-a"})
    assert channel.models == ("a", "b")
    assert channel.model_map == {"a": "up-a"}
    assert channel.upstream_model("a") == "up-a"
    assert channel.upstream_model("b") == "b"
    assert channel.base_url == "https://api.example.com/v1"
    again = channel_store.get(db, "up")
    assert again == channel


def test_channel_key_is_never_in_repr_and_hint_is_masked(db):
    key = "sk-upstream-0123456789abcdef"
    channel = channel_store.add(db, "up", "openai", "https://x", key, ["a"])
    assert key not in repr(channel)
    assert channel.key_hint == "...cdef"
    assert channel_store.add(db, "short", "openai", "https://x", "abc", ["a"]).key_hint == "(set)"
    assert channel_store.add(db, "none", "simulator", "", "", ["a"]).key_hint == "(none)"


def test_duplicate_channel_names_are_rejected(db):
    channel_store.add(db, "c", "simulator", "", "", ["m"])
    with pytest.raises(channel_store.ChannelError, match="already exists"):
        channel_store.add(db, "c", "simulator", "", "", ["m"])


def test_channel_needs_models(db):
    with pytest.raises(channel_store.ChannelError):
        channel_store.add(db, "c", "simulator", "", "", [])


# -- catalog --------------------------------------------------------------------------------

@pytest.fixture
async def catalog(db_path):
    open_db(db_path).close()
    worker = DbWorker(db_path)
    catalog = Catalog(worker, refresh_interval=0.05)
    yield catalog
    worker.close()


async def test_authenticate_valid_unknown_disabled_expired_and_malformed(catalog, db_path):
    db = open_db(db_path)
    _, good = token_store.create(db, "good")
    _, off = token_store.create(db, "off")
    token_store.set_enabled(db, "off", False)
    _, old = token_store.create(db, "old", expires_at=int(time.time()) - 1)
    db.close()
    await catalog.load()

    assert (await catalog.authenticate(f"Bearer {good}")).name == "good"
    assert (await catalog.authenticate(f"bearer {good}")).name == "good"
    assert (await catalog.authenticate(f"  Bearer   {good}  ")).name == "good"

    async def refused(header: str | None) -> GatewayError:
        with pytest.raises(GatewayError) as caught:
            await catalog.authenticate(header)
        assert caught.value.http_status == 401
        assert caught.value.code == "invalid_api_key"
        return caught.value

    assert "Incorrect API key" in (await refused("Bearer sk-" + "x" * 48)).message
    assert "Incorrect API key" in (await refused(f"Bearer {good}x")).message
    assert "disabled" in (await refused(f"Bearer {off}")).message
    assert "expired" in (await refused(f"Bearer {old}")).message
    for header in (None, "", "Bearer", "Bearer ", good, f"Basic {good}", f"Token {good}"):
        error = await refused(header)
        assert good not in error.message


async def test_catalog_snapshot_orders_channels_by_priority_and_skips_disabled(catalog, db_path):
    db = open_db(db_path)
    channel_store.add(db, "low", "simulator", "", "", ["m"], priority=1)
    channel_store.add(db, "high", "simulator", "", "", ["m", "n"], priority=5)
    channel_store.add(db, "off", "simulator", "", "", ["m"], priority=9)
    channel_store.set_enabled(db, "off", False)
    db.close()
    await catalog.load()
    assert [c.name for c in catalog.snapshot.channels_by_model["m"]] == ["high", "low"]
    assert [c.name for c in catalog.snapshot.channels_by_model["n"]] == ["high"]
    assert len(catalog.snapshot.channels_by_id) == 3


async def wait_until(condition, timeout: float = 1.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_catalog_reloads_after_another_connection_changes_the_db(db_path):
    open_db(db_path).close()
    worker = DbWorker(db_path)
    catalog = Catalog(worker)  # the default interval
    await catalog.load()
    watcher = asyncio.create_task(catalog.watch())
    other = open_db(db_path)
    try:
        _, key = token_store.create(other, "late")
        await wait_until(lambda: any(t.name == "late" for t in catalog.snapshot.tokens_by_hash.values()))
        assert (await catalog.authenticate(f"Bearer {key}")).name == "late"

        token_store.set_enabled(other, "late", False)
        await wait_until(lambda: not next(iter(catalog.snapshot.tokens_by_hash.values())).enabled)
        with pytest.raises(GatewayError, match="disabled"):
            await catalog.authenticate(f"Bearer {key}")

        channel_store.add(other, "sim", "simulator", "", "", ["sim-model"])
        await wait_until(lambda: "sim-model" in catalog.snapshot.channels_by_model)

        token_store.delete(other, "late")
        await wait_until(lambda: not catalog.snapshot.tokens_by_hash)
        with pytest.raises(GatewayError, match="Incorrect"):
            await catalog.authenticate(f"Bearer {key}")
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher
        other.close()
        worker.close()


async def test_catalog_does_not_reload_without_changes(catalog, db_path):
    await catalog.load()
    first = catalog.snapshot
    watcher = asyncio.create_task(catalog.watch())
    try:
        await asyncio.sleep(0.3)
        assert catalog.snapshot is first
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher
