"""The rate-limit counters as one-second buckets (server/store/rate_limits.py): a check
costs the same whatever the minute's traffic, a limit is never exceeded over any 60
seconds and refuses at most a second early, settlements correct the bucket a request was
counted in, and a database from before the buckets keeps its minute. The clock is passed
in; nothing sleeps."""
from __future__ import annotations

import random
import sqlite3

import pytest
import sqlite_utils

from server.billing import limits
from server.store import quota as quota_store
from server.store import rate_limits as rate_store
from server.store import schema
from server.store import tokens as token_store
from server.store.db import open_db
from server.store.rate_limits import Limits, RateLimited
from tests.test_rate_limits_store import T0, db, limited, settle, take  # noqa: F401 (db: the fixture)


def figures_at(db, token, at: float) -> rate_store.Figures:
    return limits.peek(db, limits.RateState(token.id, token.limits), at)


# -- a check's cost ------------------------------------------------------------------------

def work_of_one_admission(db, token, tokens: int, at: float) -> tuple[int, int, str]:
    """(SQL statements run, SQLite VM instructions executed, what became of it) for one
    admission: rows read show up as instructions, whatever the machine's speed."""
    statements: list[str] = []
    instructions = [0]

    def count() -> int:
        instructions[0] += 1
        return 0  # go on

    db.conn.set_trace_callback(statements.append)
    db.conn.set_progress_handler(count, 1)
    try:
        take(db, token, tokens=tokens, at=at)
        outcome = "admitted"
    except RateLimited as exc:
        outcome = f"refused: {exc.kind}"
    finally:
        db.conn.set_progress_handler(None, 1)
        db.conn.set_trace_callback(None)
    return len(statements), instructions[0], outcome


def busy_and_quiet(db, busy_limits: Limits, quiet_limits: Limits) -> tuple[token_store.Token, token_store.Token]:
    """Two tokens that used the same seconds of the last minute, 10 tokens a request: the
    busy one for 20,000 requests, the quiet one for one request a second."""
    busy = token_store.create(db, "busy", limits=busy_limits)[0]
    quiet = token_store.create(db, "quiet", limits=quiet_limits)[0]
    with quota_store.write(db) as conn:  # one transaction: filling the minute is not what is measured
        for i in range(20_000):
            rate_store.take(conn, busy.id, busy.limits, 10, "me", T0 + i * 59 / 20_000)
        for second in range(59):
            rate_store.take(conn, quiet.id, quiet.limits, 10, "me", T0 + second + 0.5)
    return busy, quiet


def assert_same_work(busy: tuple[int, int, str], quiet: tuple[int, int, str]) -> None:
    # the same statements; the same instructions but for a couple where the two tokens' rows
    # sit in the table (a log of the 20,000 requests would take well over 100,000)
    assert busy[0] == quiet[0] and busy[2] == quiet[2]
    assert busy[1] <= quiet[1] * 1.02


def test_an_admission_costs_the_same_with_20000_requests_in_the_minute_as_with_one_a_second(db):
    generous = Limits(rpm=1_000_000, tpm=1_000_000_000)
    busy, quiet = busy_and_quiet(db, generous, generous)
    assert figures_at(db, busy, T0 + 58.9).requests.remaining == 1_000_000 - 20_000

    busy_work = work_of_one_admission(db, busy, 10, T0 + 58.9)
    quiet_work = work_of_one_admission(db, quiet, 10, T0 + 58.9)

    assert_same_work(busy_work, quiet_work)
    assert busy_work[2] == "admitted"
    assert figures_at(db, busy, T0 + 58.9).requests.remaining == 1_000_000 - 20_001


@pytest.mark.parametrize("busy_limits, quiet_limits, kind", [
    (Limits(rpm=20_000), Limits(rpm=59), "requests"),
    (Limits(tpm=200_000), Limits(tpm=590), "tokens"),
], ids=["rpm", "tpm"])
def test_a_refusal_costs_the_same_with_20000_requests_in_the_minute_as_with_one_a_second(
        db, busy_limits, quiet_limits, kind):
    busy, quiet = busy_and_quiet(db, busy_limits, quiet_limits)  # both at their limit

    busy_work = work_of_one_admission(db, busy, 10, T0 + 58.9)
    quiet_work = work_of_one_admission(db, quiet, 10, T0 + 58.9)

    assert_same_work(busy_work, quiet_work)
    assert busy_work[2] == f"refused: {kind}"


# -- the window's edge ---------------------------------------------------------------------

def test_a_bucket_counts_until_its_latest_request_is_a_minute_old(db):
    token = limited(db, rpm=3)
    for at in (T0 + 0.2, T0 + 0.7, T0 + 1.5):  # two in the same second
        take(db, token, at=at)
    with pytest.raises(RateLimited) as refused:
        take(db, token, at=T0 + 30)
    assert refused.value.retry_after == pytest.approx(30.7)  # when the bucket of +0.2 and +0.7 leaves
    with pytest.raises(RateLimited):
        # +0.2 left its own minute, but its second still counts whole: up to a second early
        take(db, token, at=T0 + 60.6)
    take(db, token, at=T0 + 60.7)
    take(db, token, at=T0 + 60.8)
    with pytest.raises(RateLimited) as again:
        take(db, token, at=T0 + 60.9)
    assert again.value.retry_after == pytest.approx(0.6)  # +1.5 leaves at +61.5


def bursty_arrivals(rng: random.Random, seconds: int) -> list[float]:
    """Request times at 10 ms resolution: quiet stretches and bursts that hit the limits,
    many of them around the edges of seconds and minutes."""
    times, at = [], 0.0
    while at < seconds:
        burst = rng.random() < 0.2
        at += rng.expovariate(20.0 if burst else 0.5)
        times.append(T0 + round(at, 2))
    return times


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_60_seconds_ever_hold_more_than_the_limits_and_a_refusal_is_at_most_a_second_early(db, seed):
    rng = random.Random(seed)
    rpm, tpm = 40, 6000
    token = limited(db, rpm=rpm, tpm=tpm)
    admitted: list[tuple[float, int]] = []  # (time, real tokens)
    refusals: list[tuple[float, str, int, float]] = []  # (time, kind, tokens asked, retry_after)
    for at in bursty_arrivals(rng, 900):
        worst = rng.randint(20, 600)
        try:
            taken = take(db, token, tokens=worst, at=at)
        except RateLimited as exc:
            refusals.append((at, exc.kind, worst, exc.retry_after))
            continue
        real = rng.randint(0, worst)
        settle(db, taken, real)  # corrected before the next request comes
        admitted.append((at, real))

    def within(start: float, end: float) -> list[int]:
        return [real for at, real in admitted if start < at <= end]

    # the busiest 60 seconds end at a request: every window is checked
    for at, _ in admitted:
        assert len(within(at - 60, at)) <= rpm
        assert sum(within(at - 60, at)) <= tpm
    for at, kind, asked, retry_after in refusals:
        recent = within(at - 61, at)
        if kind == "requests":
            assert len(recent) >= rpm
            # nothing gets in before the time the refusal named
            assert not [a for a, _ in admitted if at < a < at + retry_after - 1e-6]
        else:
            assert sum(recent) + asked > tpm
    kinds = {kind for _, kind, _, _ in refusals}
    assert kinds == {"requests", "tokens"} and max(len(within(a - 60, a)) for a, _ in admitted) == rpm


# -- corrections at settlement -------------------------------------------------------------

def test_a_settlement_corrects_the_second_its_request_was_counted_in(db):
    token = limited(db, tpm=1000)
    big = take(db, token, tokens=600, at=T0 + 0.5)
    take(db, token, tokens=300, at=T0 + 30)
    settle(db, big, 100)  # settled after a later request was counted in another second
    assert figures_at(db, token, T0 + 31).tokens.remaining == 1000 - 100 - 300
    # when its second leaves the window, what leaves is its real 100, not the 600 it asked
    assert figures_at(db, token, T0 + 60.5).tokens.remaining == 1000 - 300


def test_a_settlement_after_its_second_left_the_window_changes_nothing(db):
    token = limited(db, tpm=1000)
    old = take(db, token, tokens=900, at=T0)
    take(db, token, tokens=500, at=T0 + 61)  # the check forgets the second of T0
    settle(db, old, 0)
    assert figures_at(db, token, T0 + 62).tokens.remaining == 500
    with pytest.raises(RateLimited):
        take(db, token, tokens=501, at=T0 + 62)


def test_a_released_request_still_counts_as_a_request_but_gives_its_tokens_back(db):
    token = limited(db, rpm=2, tpm=1000)
    limits.release(db, take(db, token, tokens=800, at=T0))
    figures = figures_at(db, token, T0 + 1)
    assert (figures.requests.remaining, figures.tokens.remaining) == (1, 1000)
    assert figures.tokens.reset == 0.0  # the minute holds no tokens any more


def test_a_settlement_that_keeps_the_count_changes_nothing(db):
    token = limited(db, tpm=1000)
    taken = take(db, token, tokens=400, at=T0)
    settle(db, taken, None)
    assert figures_at(db, token, T0 + 1).tokens.remaining == 600


# -- the schema step -----------------------------------------------------------------------

def test_the_minute_logged_before_the_buckets_still_counts_after_the_upgrade(tmp_path):
    path = str(tmp_path / "st-ai.db")
    conn = sqlite3.connect(path)
    schema.migrate(conn, schema.MIGRATIONS[:11])  # the database as the release before the buckets left it
    token, _ = token_store.create(sqlite_utils.Database(conn), "busy", limits=Limits(rpm=2, tpm=1000))
    conn.executemany("INSERT INTO rate_events (token_id, ts, tokens) VALUES (?, ?, ?)",
                     [(token.id, T0 - 100, 999), (token.id, T0 + 0.2, 100), (token.id, T0 + 0.7, 200)])
    conn.commit()
    conn.close()

    db = open_db(path)
    try:
        assert schema.version(db.conn) == schema.LATEST
        assert not db["rate_events"].exists()
        with pytest.raises(RateLimited) as refused:
            take(db, token, at=T0 + 10)
        assert refused.value.retry_after == pytest.approx(50.7)
        assert refused.value.figures.tokens == rate_store.Figure(1000, 700, pytest.approx(50.7))
        take(db, token, at=T0 + 60.7)
    finally:
        db.close()
