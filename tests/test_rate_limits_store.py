"""The rate-limit counters in SQLite (server/store/rate_limits.py, taken through
server/billing/limits.py): a sliding minute, window edges, corrections at settlement,
slots in flight, all with the clock passed in; nothing sleeps."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest

from server import call_record
from server.billing import limits
from server.services.client_calls import free_held_slot
from server.store import quota as quota_store
from server.store import rate_limits as rate_store
from server.store import tokens as token_store
from server.store.db import DbWorker, open_db
from server.store.quota import InsufficientQuota
from server.store.rate_limits import Limits, RateLimited
from tests.test_schema import RELEASE_SQL

T0 = 1_800_000_000.0  # any wall time; the store only compares them


@pytest.fixture
def db(tmp_path):
    db = open_db(str(tmp_path / "st-ai.db"))
    yield db
    db.close()


def limited(db, quota: int | None = None, **limits_) -> token_store.Token:
    token, _ = token_store.create(db, f"t{len(token_store.all_tokens(db))}", quota=quota, limits=Limits(**limits_))
    return token


def take(db, token, tokens: int = 0, at: float = T0, owner: str = "me") -> limits.Taken:
    return limits.reserve(db, token, 0, tokens, owner, at)


def settle(db, taken: limits.Taken, tokens: int) -> None:
    with quota_store.write(db) as conn:
        rate_store.settle(conn, taken.hold, tokens)


def in_flight(db) -> int:
    return db.execute("SELECT COUNT(*) FROM inflight").fetchone()[0]


def counted_requests(db) -> int:
    return db.execute("SELECT COALESCE(SUM(requests), 0) FROM rate_buckets").fetchone()[0]


# -- requests per minute -----------------------------------------------------------------

def test_the_request_over_rpm_is_refused_until_the_oldest_leaves_the_minute(db):
    token = limited(db, rpm=3)
    for second in (0, 10, 20):
        take(db, token, at=T0 + second)
    with pytest.raises(RateLimited) as refused:
        take(db, token, at=T0 + 30)
    assert refused.value.kind == "requests" and refused.value.retry_after == pytest.approx(30)
    with pytest.raises(RateLimited):
        take(db, token, at=T0 + 59.999)  # the first request is still inside the minute
    take(db, token, at=T0 + 60)  # exactly a minute later it is not
    with pytest.raises(RateLimited) as again:
        take(db, token, at=T0 + 61)
    assert again.value.retry_after == pytest.approx(9)  # the request at +10 leaves at +70


def test_a_refused_request_takes_nothing(db):
    token = limited(db, rpm=1, max_concurrency=5)
    take(db, token)
    for _ in range(3):
        with pytest.raises(RateLimited):
            take(db, token, at=T0 + 1)
    assert counted_requests(db) == 1
    assert in_flight(db) == 1


def test_remaining_counts_this_request_and_reset_is_when_the_minute_is_empty(db):
    token = limited(db, rpm=5, tpm=1000)
    first = take(db, token, tokens=100, at=T0)
    assert first.figures.requests == rate_store.Figure(5, 4, 60.0)
    assert first.figures.tokens == rate_store.Figure(1000, 900, 60.0)
    second = take(db, token, tokens=300, at=T0 + 15)
    assert second.figures.requests == rate_store.Figure(5, 3, 60.0)
    assert second.figures.tokens == rate_store.Figure(1000, 600, 60.0)
    # a read looks without taking: the window as it stands 30 s later
    seen = limits.peek(db, limits.RateState(token.id, token.limits), T0 + 45)
    assert seen.requests == rate_store.Figure(5, 3, 30.0)
    assert seen.tokens == rate_store.Figure(1000, 600, 30.0)
    assert limits.peek(db, limits.RateState(token.id, token.limits), T0 + 75).requests == rate_store.Figure(5, 5, 0.0)


# -- tokens per minute ---------------------------------------------------------------------

def test_tpm_refuses_what_would_pass_the_limit_and_says_when_enough_has_aged_out(db):
    token = limited(db, tpm=1000)
    take(db, token, tokens=400, at=T0)
    take(db, token, tokens=400, at=T0 + 10)
    with pytest.raises(RateLimited) as refused:
        take(db, token, tokens=300, at=T0 + 20)
    assert refused.value.kind == "tokens" and refused.value.retry_after == pytest.approx(40)
    take(db, token, tokens=200, at=T0 + 20)  # 1000 exactly is within the limit
    with pytest.raises(RateLimited) as later:
        take(db, token, tokens=500, at=T0 + 30)
    assert later.value.retry_after == pytest.approx(40)  # +0 and +10 must both leave: at +70


def test_tpm_is_corrected_to_the_real_tokens_at_settlement(db):
    token = limited(db, tpm=1000)
    big = take(db, token, tokens=900, at=T0)  # reserved at its worst case
    with pytest.raises(RateLimited):
        take(db, token, tokens=900, at=T0 + 1)
    settle(db, big, 20)  # it used 20
    after = take(db, token, tokens=900, at=T0 + 2)
    assert after.figures.tokens.remaining == 1000 - 20 - 900


def test_a_request_larger_than_tpm_is_refused_as_too_large(db):
    token = limited(db, tpm=1000)
    with pytest.raises(RateLimited) as refused:
        take(db, token, tokens=1001)
    assert refused.value.too_large and refused.value.kind == "tokens"
    error = limits.refused(refused.value, 1001)
    assert (error.http_status, error.type, error.code) == (429, "tokens", "rate_limit_exceeded")
    assert "Request too large" in error.message


# -- requests in flight ----------------------------------------------------------------------

def test_a_tokens_buckets_out_of_the_minute_are_deleted_when_a_new_second_begins(db):
    token, other = limited(db, rpm=1000), limited(db, rpm=1000)
    for at in (T0, T0 + 0.5, T0 + 1, T0 + 30):
        take(db, token, at=at)
    take(db, other, at=T0)
    buckets = "SELECT second FROM rate_buckets WHERE token_id = ? ORDER BY second"
    assert [s for (s,) in db.execute(buckets, [token.id])] == [T0, T0 + 1, T0 + 30]
    take(db, token, at=T0 + 61.2)  # a new second: T0's and T0+1's buckets have left the minute
    assert [s for (s,) in db.execute(buckets, [token.id])] == [T0 + 30, T0 + 61]
    take(db, token, at=T0 + 61.7)  # the same second again: nothing more to delete, nothing lost
    assert db.execute("SELECT requests FROM rate_buckets WHERE token_id = ? AND second = ?",
                      [token.id, T0 + 61]).fetchone() == (2,)
    assert [s for (s,) in db.execute(buckets, [other.id])] == [T0]  # another token's are its own


def test_concurrency_slots_are_freed_at_settlement(db):
    token = limited(db, max_concurrency=2)
    first, _second = take(db, token), take(db, token)
    with pytest.raises(RateLimited) as refused:
        take(db, token)
    assert refused.value.kind == "concurrency" and refused.value.retry_after == 1.0
    settle(db, first, 0)
    take(db, token)
    assert in_flight(db) == 2


def test_slots_of_a_dead_process_are_swept_with_its_reservations(db):
    token = limited(db, max_concurrency=2)
    take(db, token, owner="dead", at=T0)
    take(db, token, owner="me", at=T0)
    quota_store.release_stale(db, T0 + 1, keep_owner="me")
    assert in_flight(db) == 1
    take(db, token, owner="me")  # the dead one's slot is free again


# -- one transaction with the quota --------------------------------------------------------

def test_a_request_the_quota_refuses_is_not_counted_against_the_limits(db):
    token = limited(db, quota=10, rpm=5, max_concurrency=5)
    with pytest.raises(InsufficientQuota):
        limits.reserve(db, token, 11, 0, "me", T0)
    assert counted_requests(db) == 0 and in_flight(db) == 0


def test_a_request_a_limit_refuses_reserves_no_quota(db):
    token = limited(db, quota=100, rpm=1)
    limits.reserve(db, token, 10, 0, "me", T0)
    with pytest.raises(RateLimited):
        limits.reserve(db, token, 10, 0, "me", T0 + 1)
    assert quota_store.status(db, token.name).reserved == 10


def test_a_token_without_limits_takes_only_its_quota(db):
    token = limited(db, quota=100)
    taken = limits.reserve(db, token, 10, 500, "me", T0)
    assert taken.hold is None and taken.figures is None and taken.reservation_id is not None
    assert counted_requests(db) == 0


# -- what clients are told ------------------------------------------------------------------

@pytest.mark.parametrize("seconds, shown", [(0.02, "20ms"), (0.0, "0ms"), (1, "1s"), (8.64, "8.64s"),
                                            (60, "1m0s"), (360, "6m0s"), (90.5, "1m30.5s"),
                                            (-3, "0ms"), (0.9996, "1s"), (59.9994, "59.999s"), (59.9996, "1m0s"),
                                            (12.05, "12.05s"), (3.1, "3.1s"), (7.007, "7.007s")])
def test_reset_times_are_written_as_openai_writes_them(seconds, shown):
    assert limits.duration(seconds) == shown


def test_headers_name_only_the_limits_set_and_retry_after_is_whole_seconds_up():
    state = limits.RateState(1, Limits(rpm=5), rate_store.Figures(requests=rate_store.Figure(5, 0, 12.5)))
    state.retry_after = 3
    assert dict(limits.headers(state)) == {"x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "0",
                                           "x-ratelimit-reset-requests": "12.5s", "retry-after": "3"}


# -- the schema step -----------------------------------------------------------------------

def test_a_release_database_migrates_to_tokens_without_limits_and_keeps_them(tmp_path):
    path = str(tmp_path / "release.db")
    conn = sqlite3.connect(path)
    conn.executescript(RELEASE_SQL.read_text())
    before = conn.execute("SELECT name, key_hash, enabled FROM tokens ORDER BY id").fetchall()
    conn.close()
    db = open_db(path)
    try:
        tokens = token_store.all_tokens(db)
        assert [(t.name, t.key_hash, int(t.enabled)) for t in tokens] == before
        assert all(t.limits == Limits() and t.allow_ip is None for t in tokens)
        take(db, limited(db, rpm=1))  # the counters' tables are there
    finally:
        db.close()


def test_a_slot_no_settlement_freed_is_freed_when_its_call_ends(tmp_path):
    """A video create answers long before its task is settled: the call's end frees the slot."""
    worker = DbWorker(str(tmp_path / "st-ai.db"))
    try:
        token = limited(worker.db, max_concurrency=1)

        async def a_call_admitted_but_not_settled() -> None:
            record = call_record.open_record("req-1")
            limits.note_token(token)
            taken = await worker.run(limits.reserve, token, 0, 0, "me", T0)
            limits.note_taken(taken.figures, taken.hold)
            assert await worker.run(in_flight) == 1
            await free_held_slot(worker)
            assert record.rate.held is None

        asyncio.run(a_call_admitted_but_not_settled())
        assert in_flight(worker.db) == 0
    finally:
        worker.close()
