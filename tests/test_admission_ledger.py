"""server/billing/admission.py's request context on a real database file: what a request
ends as in the ledger, whoever ends it. The transports fill the call record (request id,
client address); the ledger row copies it."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import threading
import time

import pytest

from server import call_record
from server.billing import limits
from server.billing.admission import Admission, Outcome
from server.billing.group_commit import GroupCommit
from server.billing.prices import PriceChanges
from server.catalog import Catalog
from server.errors import GatewayError, invalid_request
from server.store import prices as price_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store.db import DbWorker, open_db
from server.store.rate_limits import Limits

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def db_path(tmp_path) -> str:
    path = str(tmp_path / "st-ai.db")
    db = open_db(path)
    token_store.create(db, "alice", quota=1_000_000)
    price_store.set_price(db, "m", PriceChanges(per_request=1_000))
    db.close()
    return path


@contextlib.asynccontextmanager
async def billing(db_path: str):
    worker = await asyncio.to_thread(DbWorker, db_path)
    catalog = Catalog(worker)
    await catalog.load()
    writer = GroupCommit(worker)
    running = asyncio.create_task(writer.run())
    try:
        yield Admission(worker, writer, "this-process", catalog), catalog, worker
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(worker.close)


def ledger(db_path: str) -> list[dict]:
    db = open_db(db_path)
    try:
        return [dict(r) for r in db.query("SELECT * FROM ledger ORDER BY id")]
    finally:
        db.close()


def alice(catalog: Catalog):
    return next(t for t in catalog.snapshot.tokens_by_hash.values() if t.name == "alice")


async def test_a_refused_request_is_booked_with_the_client_address_and_request_id(db_path):
    async with billing(db_path) as (admission, catalog, _):
        record = call_record.open_record("req-refused")
        record.client_address = "203.0.113.7"
        with pytest.raises(Exception):
            async with admission.request(alice(catalog), "chat", "m"):
                raise invalid_request("'temperature' must be between 0 and 2.", param="temperature",
                                      code="invalid_value")
    [row] = ledger(db_path)
    assert (row["request_id"], row["client_address"], row["status"], row["error_code"], row["cost"]) == (
        "req-refused", "203.0.113.7", 400, "invalid_value", 0)


async def test_a_settled_request_is_booked_once_with_the_client_address(db_path):
    async with billing(db_path) as (admission, catalog, _):
        record = call_record.open_record("req-answered")
        record.client_address = "2001:db8::1"
        async with admission.request(alice(catalog), "chat", "m", stream=True) as ticket:
            await admission.admit(ticket, "m", lambda price: price.per_request)
            await admission.settle(ticket, Outcome(200, ttft_ms=12), lambda price: price.per_request)
            admission.abandon(ticket, 500, "internal_error")  # a second ending is ignored
    [row] = ledger(db_path)
    assert (row["request_id"], row["client_address"], row["cost"], row["stream"], row["ttft_ms"]) == (
        "req-answered", "2001:db8::1", 1_000, 1, 12)
    db = open_db(db_path)
    try:
        assert quota_store.status(db, "alice").used == 1_000
        assert quota_store.status(db, "alice").reserved == 0
    finally:
        db.close()


async def test_an_error_after_admission_is_ended_by_the_relay_not_booked_twice(db_path):
    async with billing(db_path) as (admission, catalog, _):
        call_record.open_record("req-failed")
        with pytest.raises(RuntimeError):
            async with admission.request(alice(catalog), "images", "m") as ticket:
                await admission.admit(ticket, "m", lambda price: price.per_request)
                admission.abandon(ticket, 500, "internal_error")
                raise RuntimeError("the relay failed after admitting")
    # abandon is not awaited; the writer commits what is queued when it stops
    rows = ledger(db_path)
    assert [(r["status"], r["error_code"], r["cost"]) for r in rows] == [(500, "internal_error", 0)]


async def test_each_request_is_booked_with_the_client_api_it_came_in_by(db_path):
    async with billing(db_path) as (admission, catalog, _):
        for kind, api in (("chat", None), ("chat", "responses"), ("chat", "messages"), ("embeddings", None),
                          ("images", None), ("video", None)):
            call_record.open_record(f"req-{kind}-{api}")
            async with admission.request(alice(catalog), kind, "m", api=api) as ticket:
                await admission.admit(ticket, "m", lambda price: price.per_request)
                await admission.settle(ticket, Outcome(200), lambda price: price.per_request)
        with pytest.raises(Exception):  # refused before admission: booked with its api too
            async with admission.request(alice(catalog), "chat", "m", api="messages"):
                raise invalid_request("'max_tokens' is required.", param="max_tokens")
    assert [(r["kind"], r["api"], r["status"]) for r in ledger(db_path)] == [
        ("chat", "chat", 200), ("chat", "responses", 200), ("chat", "messages", 200), ("embeddings", "embeddings", 200),
        ("images", "images", 200), ("video", "videos", 200), ("chat", "messages", 400)]


async def test_a_route_naming_an_api_st_ai_does_not_know_fails_before_anything_is_booked(db_path):
    async with billing(db_path) as (admission, catalog, _):
        with pytest.raises(ValueError, match="'response'"):
            async with admission.request(alice(catalog), "chat", "m", api="response"):
                pass
    assert ledger(db_path) == []


def held(db_path: str) -> tuple[int, int]:
    """(reservations, slots in flight) the database holds."""
    db = open_db(db_path)
    try:
        return (db.execute("SELECT COUNT(*) FROM reservations").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM inflight").fetchone()[0])
    finally:
        db.close()


async def wait_until_nothing_is_held(db_path: str) -> tuple[int, int]:
    for _ in range(100):  # at most 5 s
        if (now := await asyncio.to_thread(held, db_path)) == (0, 0):
            return now
        await asyncio.sleep(0.05)
    return now


async def until(condition, what: str) -> None:
    """Waits for the request's task to get where the test needs it: its way there passes the
    database thread (the catalog catches up: model "m" has no channel), so a busy machine
    takes more than a few turns of the loop."""
    for _ in range(500):  # at most 5 s
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"waited 5 s for {what}")


@pytest.fixture
def limited_path(db_path) -> str:
    db = open_db(db_path)
    token_store.create(db, "bob", quota=1_000_000, limits=Limits(max_concurrency=5))
    db.close()
    return db_path


def bob(catalog: Catalog):
    return next(t for t in catalog.snapshot.tokens_by_hash.values() if t.name == "bob")


async def test_a_client_leaving_while_its_reservation_waits_for_the_group_gets_it_given_back(limited_path):
    async with billing(limited_path) as (admission, catalog, worker):
        gate = threading.Event()
        call_record.open_record("req-left")
        reserving: list[asyncio.Future] = []
        busy: list[asyncio.Future] = []
        reserve = admission._writer.reserve

        def watched(*args, **kwargs) -> asyncio.Future:
            busy.append(worker.start(lambda db: gate.wait(10)))  # the thread is writing another group
            reserving.append(reserve(*args, **kwargs))
            return reserving[-1]

        admission._writer.reserve = watched

        async def request() -> None:
            async with admission.request(bob(catalog), "chat", "m") as ticket:
                await admission.admit(ticket, "m", lambda price: price.per_request)

        leaving = asyncio.create_task(request())
        await until(lambda: reserving, "the reservation to wait for its group")
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert not busy[0].done() and reserving[0].cancelled()
        gate.set()  # the group is written after the client left
        await busy[0]
        await worker.run(lambda db: None)  # the database thread has committed the group
        assert await wait_until_nothing_is_held(limited_path) == (0, 0)


class HandOverWriter:
    """A group writer whose reservation the test resolves itself, at the moment it chooses."""

    def __init__(self, real: GroupCommit) -> None:
        self.real = real
        self.reserving: asyncio.Future | None = None

    def reserve(self, token, amount, tokens, owner, now, unclaimed=None) -> asyncio.Future:
        self.reserving = asyncio.get_running_loop().create_future()
        return self.reserving

    def __getattr__(self, name: str):
        return getattr(self.real, name)


async def test_a_reservation_made_just_as_its_client_leaves_is_given_back(limited_path):
    async with billing(limited_path) as (admission, catalog, worker):
        token = bob(catalog)
        [taken] = await worker.run(quota_store.write_each, [functools.partial(
            limits.reserve_in, token=token, amount=1_000, tokens=0, owner="this-process", now=time.time())])
        assert await asyncio.to_thread(held, limited_path) == (1, 1)
        writer = HandOverWriter(admission._writer)
        admission._writer = writer
        call_record.open_record("req-raced")

        async def request() -> None:
            async with admission.request(token, "chat", "m") as ticket:
                await admission.admit(ticket, "m", lambda price: price.per_request)

        leaving = asyncio.create_task(request())
        await until(lambda: writer.reserving is not None, "the reservation to be asked for")
        # made, and the client gone, before the request's task ran again
        writer.reserving.set_result(taken)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        assert await wait_until_nothing_is_held(limited_path) == (0, 0)


async def test_open_requests_counts_each_request_from_its_opening_to_its_end_however_it_ends(db_path):
    """The group writer's company (server/billing/group_commit.py): a request still open may
    yet reserve or settle; one ended, however, never will."""
    async with billing(db_path) as (admission, catalog, _):
        call_record.open_record("req-open")
        async with admission.request(alice(catalog), "chat", "m") as ticket:
            async with admission.request(alice(catalog), "chat", "m"):
                assert admission.open_requests == 2
            await admission.admit(ticket, "m", lambda price: price.per_request)
            await admission.settle(ticket, Outcome(200), lambda price: price.per_request)
            assert admission.open_requests == 1
        with pytest.raises(RuntimeError):
            async with admission.request(alice(catalog), "chat", "m"):
                raise RuntimeError("the relay failed")
        elsewhere = dataclasses.replace(alice(catalog), allow_ip=(ipaddress.ip_network("192.0.2.0/24"),))
        call_record.open_record("req-from-outside").client_address = "203.0.113.7"
        with pytest.raises(GatewayError, match="IP address"):  # refused while it was being opened
            async with admission.request(elsewhere, "chat", "m"):
                pass
        assert admission.open_requests == 0
    assert [r["status"] for r in ledger(db_path)] == [200, 500, 403]
