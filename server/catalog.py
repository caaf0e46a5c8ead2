"""The hot path's view of tokens, channels and prices: an in-memory snapshot, reloaded
within a second of any change another process (the CLI, another worker) commits to them;
what other tables change (the ledger, a token's spending) reloads nothing. A key or model
the snapshot lacks makes it catch up first (`refresh`), so what was made a moment ago serves.
Prices load in the same snapshot as channels, so a model is never seen without the
price that was set before it."""
from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Awaitable, Callable

import sqlite_utils

from server import call_record, client_address
from server.billing import limits
from server.billing.prices import ModelPrice
from server.errors import invalid_api_key
from server.store import channel_health
from server.store import channels as channel_store
from server.store import prices as price_store
from server.store import tokens as token_store
from server.core.resilience import DEFAULT_TIMEOUTS
from server.store.channel_health import HealthState
from server.store.channels import Channel, Timeouts
from server.store.db import DbWorker, catalog_version
from server.store.tokens import Token, hash_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    tokens_by_hash: dict[str, Token] = field(default_factory=dict)
    # public model name -> enabled channels serving it, best priority first
    channels_by_model: dict[str, tuple[Channel, ...]] = field(default_factory=dict)
    channels_by_id: dict[int, Channel] = field(default_factory=dict)
    prices: dict[str, ModelPrice] = field(default_factory=dict)  # effective price per public model
    health: dict[int, HealthState] = field(default_factory=dict)  # channels' circuit-breaker state, by id
    # models served only by channels st-ai disabled (a rejected key): they still exist, and
    # are answered 503 until a probe or `channel test` brings a channel back
    resting_models: frozenset[str] = frozenset()


def load_snapshot(db: sqlite_utils.Database, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> tuple[int, Snapshot]:
    """`timeouts`: the gateway's defaults, filled into each channel's own."""
    version = catalog_version(db)  # first: a change made while the rest is read reloads again
    tokens = {t.key_hash: t for t in token_store.all_tokens(db)}
    by_model: dict[str, list[Channel]] = {}
    channels = [replace(c, timeouts=c.timeouts.filled(timeouts)) for c in channel_store.all_channels(db)]
    for channel in channels:
        if channel.enabled:
            for model in channel.models:
                by_model.setdefault(model, []).append(channel)
    ordered = {m: tuple(sorted(cs, key=lambda c: -c.priority)) for m, cs in by_model.items()}
    resting = frozenset(m for c in channels if c.auto_disabled for m in c.models if m not in ordered)
    return version, Snapshot(tokens, ordered, {c.id: c for c in channels}, price_store.effective_prices(db),
                             channel_health.load_all(db), resting)


class _SharedReads:
    """A value read on the database thread, for callers that need it as of a read begun
    after they asked: callers at the same time share reads (one under way, and one more
    that begins once it is done for those who came meanwhile), so a flood of them (keys
    nobody made) costs a read at a time, not one each."""

    def __init__(self, read: Callable[[], Awaitable[int]]) -> None:
        self._read = read
        self._current: asyncio.Future | None = None
        self._next: asyncio.Future | None = None

    async def get(self) -> int:
        if self._current is None:
            self._current = shared = asyncio.ensure_future(self._first())
        elif self._next is None:
            self._next = shared = asyncio.ensure_future(self._after(self._current))
        else:
            shared = self._next
        return await asyncio.shield(shared)

    async def _first(self) -> int:
        try:
            return await self._read()
        finally:
            self._current = None

    async def _after(self, current: asyncio.Future) -> int:
        await asyncio.wait([current])
        self._next = None  # who comes from now on needs a read that begins later than this one
        return await self._read()


class Catalog:
    def __init__(self, worker: DbWorker, refresh_interval: float = 0.25,
                 timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
        self._worker = worker
        self._interval = refresh_interval
        self._timeouts = timeouts
        self._version = -1
        self._versions = _SharedReads(lambda: worker.run(catalog_version))
        self._reloading: asyncio.Future | None = None
        self.snapshot = Snapshot()

    async def load(self) -> None:
        self._version, self.snapshot = await self._worker.run(load_snapshot, self._timeouts)

    async def refresh(self) -> None:
        """Catch up with the database now: reload if any process changed the catalog since
        the snapshot was read. Callers at the same time share one reload."""
        wanted = await self._versions.get()
        for _ in range(2):  # a reload already under way may have read the catalog before `wanted`
            if self._version == wanted:
                return
            if self._reloading is None or self._reloading.done():
                self._reloading = asyncio.ensure_future(self.load())
            await asyncio.shield(self._reloading)

    async def catch_up(self) -> None:
        """`refresh` for a lookup that missed (a key, a model): if the database cannot be
        read now, the snapshot stays as it is and the lookup answers from it."""
        try:
            await self.refresh()
        except Exception:
            log.exception("catching up with the database's tokens and channels failed")

    async def watch(self) -> None:
        """Reload whenever the catalog changed; runs until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception:  # a locked or briefly unreadable file: try again next tick
                log.exception("reloading tokens and channels failed")

    async def authenticate(self, authorization: str | None, check_address: bool = True) -> Token:
        """The token behind an `Authorization: Bearer ...` value, or a 401; a 403 when the
        client's address is outside the token's rules. A request that uses a model passes
        `check_address=False`: its admission (server/billing/admission.py `request`) checks
        the address instead, so the refusal is booked in the ledger like any other. A key
        the snapshot lacks is looked for again once the snapshot has caught up with the
        database: a token made a moment ago (`st-ai token create`, another worker's Admin
        API) works at once, not after the next reload."""
        if not authorization:
            raise invalid_api_key("You didn't provide an API key. Send it as 'Authorization: Bearer <token>'.")
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise invalid_api_key("Send the API key as 'Authorization: Bearer <token>'.")
        digest = hash_key(key.strip())
        token = self.snapshot.tokens_by_hash.get(digest)
        if token is None:
            await self.catch_up()
            token = self.snapshot.tokens_by_hash.get(digest)
        # The dict lookup is keyed by a hash of the secret; compare again in constant time
        # so that no code path compares secret-derived bytes early-exit style.
        if token is None or not hmac.compare_digest(token.key_hash, digest):
            raise invalid_api_key()
        if not token.enabled:
            raise invalid_api_key("This API key has been disabled.")
        if token.expired(time.time()):
            raise invalid_api_key("This API key has expired.")
        call_record.note_token(token.name)
        record = call_record.current()
        if check_address:
            client_address.check(token, record.client_address if record is not None else None)
        limits.note_token(token)
        return token
