"""`st-ai usage prune` (server/store/usage_prune.py): ledger rows of whole UTC days are
folded into daily totals and deleted, so every report over whole days is the same before and
after, no token's `used` changes, running it again changes nothing, and requests settled
while it runs (also by a live st-ai) are never lost."""
from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from server.billing.prices import PriceChanges
from server.store import channels as channel_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store import usage_prune
from server.store import usage_report as reports
from server.store.db import open_db
from server.store.quota import LedgerRow, Settlement
from server.store.usage_report import UsageQuery
from tests.test_cli import run
from tests.test_quota_relay import chat, priced_model, quota_token, status_of
from tests.test_quota_relay import fake, upstream  # noqa: F401  (pytest fixtures)

pytestmark = pytest.mark.timeout(120)

UTC = dt.timezone.utc
DAY0 = dt.datetime(2026, 3, 1, tzinfo=UTC)
NOW = DAY0 + dt.timedelta(days=7, hours=15)  # "today" in these tests: day 7


def day(n: int, hours: float = 0.0) -> dt.datetime:
    return DAY0 + dt.timedelta(days=n, hours=hours)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    path = str(tmp_path / "st-ai.db")
    open_db(path).close()
    return path


@pytest.fixture
def db(db_path):
    db = open_db(db_path)
    yield db
    db.close()


def row(token, channel, model: str, when: dt.datetime, **fields) -> LedgerRow:
    return LedgerRow(ts=when.timestamp(), request_id="req", token_id=token.id, model=model, upstream_model=model,
                     channel_id=channel.id if channel else None, kind=fields.pop("kind", "chat"),
                     status=fields.pop("status", 200), **fields)


@pytest.fixture
def week(db):
    """A week of requests: two tokens with quotas, two channels, chat, images and video,
    errors and a request refused before routing, rows at midnight and just before it."""
    alice, _ = token_store.create(db, "alice", quota=100_000_000)
    bob, _ = token_store.create(db, "bob", quota=100_000_000)
    east = channel_store.add(db, "east", "simulator", "", "", ["gpt-4o"], {}, 0)
    west = channel_store.add(db, "west", "simulator", "", "", ["gpt-4o"], {}, 0)
    rows = []
    for n, hours in itertools.product(range(8), (0.0, 6.5, 23.999999)):
        rows += [
            row(alice, east, "gpt-4o", day(n, hours), prompt_tokens=100 + n, cached_tokens=n, completion_tokens=7,
                cache_write_tokens=2 * n, cost=1_337 + n),
            row(bob, west, "sora-2", day(n, hours), kind="video", video_seconds=f"{n}.{n + 1}", cost=300_001 * n),
            row(bob, east, "dall-e-3", day(n, hours), kind="images", images=n % 3, cost=40_000 * (n % 3)),
            row(alice, None, "gpt-4o", day(n, hours), status=429, error_code="insufficient_quota"),
            row(bob, west, "gpt-4o", day(n, hours), status=502, error_code="upstream_error", estimate=True),
        ]
    quota_store.settle_many(db, [Settlement(None, r) for r in rows])
    return {"alice": alice, "bob": bob, "east": east, "west": west, "rows": len(rows)}


GROUPINGS = [(), ("token",), ("model",), ("channel",), ("day",), ("token", "model", "channel", "day")]


def whole_day_reports(db) -> dict:
    """Every report over every period of whole days (open ends included), every grouping."""
    bounds = [None, *(day(n) for n in range(9))]
    answer = {}
    for since, until in itertools.product(bounds, bounds):
        if since and until and since >= until:
            continue
        for by in GROUPINGS:
            answer[since, until, by] = reports.report(db, UsageQuery(since=since, until=until, by=by))
    for name in ("alice", "bob"):
        answer[name] = reports.report(db, UsageQuery(token=name, by=("day", "model")))
    answer["west"] = reports.report(db, UsageQuery(channel="west", model="sora-2", by=("day",)))
    return answer


def used(db) -> dict[str, int]:
    return {t.name: quota_store.status(db, t.name).used for t in token_store.all_tokens(db)}


def ledger_days_left(db) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT date(CAST(ts AS INTEGER), 'unixepoch') FROM ledger ORDER BY 1")]


def test_reports_over_whole_days_add_up_the_same_before_and_after_a_prune(db, week):
    before, spent = whole_day_reports(db), used(db)
    assert before[None, None, ()][0]["cache_write_tokens"] == 3 * sum(2 * n for n in range(8))  # folded too
    pruned = usage_prune.prune(db, day(4), now=NOW)
    assert pruned.rows == 4 * 3 * 5 and pruned.days == {"2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"}
    assert ledger_days_left(db) == ["2026-03-05", "2026-03-06", "2026-03-07", "2026-03-08"]
    assert whole_day_reports(db) == before
    assert used(db) == spent
    for token in (week["alice"], week["bob"]):
        assert reports.booked_cost(db, token.id) == spent[token.name]


def test_a_time_inside_a_day_prunes_up_to_that_days_midnight(db, week):
    pruned = usage_prune.prune(db, dt.datetime(2026, 3, 3, 18, 30, tzinfo=dt.timezone(dt.timedelta(hours=5))), now=NOW)
    assert pruned.before == day(2)  # 18:30 at +05:00 is 13:30 UTC on March 3rd
    assert ledger_days_left(db)[0] == "2026-03-03"


def test_today_is_never_pruned_even_when_before_lies_in_the_future(db, week):
    before = whole_day_reports(db)
    pruned = usage_prune.prune(db, day(30), now=NOW)
    assert pruned.before == day(7) and ledger_days_left(db) == ["2026-03-08"]
    assert whole_day_reports(db) == before


def test_pruning_twice_changes_nothing_the_second_time(db, week):
    usage_prune.prune(db, day(5), now=NOW)
    totals = db.execute("SELECT * FROM usage_daily ORDER BY id").fetchall()
    ledger = db.execute("SELECT * FROM ledger ORDER BY id").fetchall()
    again = usage_prune.prune(db, day(5), now=NOW)
    assert (again.rows, again.batches) == (0, 0)
    assert db.execute("SELECT * FROM usage_daily ORDER BY id").fetchall() == totals
    assert db.execute("SELECT * FROM ledger ORDER BY id").fetchall() == ledger


def test_small_batches_fold_exactly_what_one_batch_does(db_path, db, week, tmp_path):
    other_path = str(tmp_path / "copy.db")
    db.conn.backup(sqlite3.connect(other_path))
    other = open_db(other_path)
    try:
        small = usage_prune.prune(db, day(6), now=NOW, batch_rows=7)
        whole = usage_prune.prune(other, day(6), now=NOW, batch_rows=10_000)
        assert small.batches > 10 and whole.batches == 1 and small.rows == whole.rows
        assert whole_day_reports(db) == whole_day_reports(other)
        # one total per day and key, however many batches fed it
        assert db.execute("SELECT COUNT(*) FROM usage_daily").fetchone() == other.execute(
            "SELECT COUNT(*) FROM usage_daily").fetchone()
    finally:
        other.close()


def test_a_late_row_of_a_pruned_day_joins_that_days_total_and_the_table_stops_growing(db, week):
    usage_prune.prune(db, day(3), now=NOW)
    daily_rows = db.execute("SELECT COUNT(*) FROM usage_daily").fetchone()[0]
    quota_store.settle_many(db, [Settlement(None, row(week["alice"], week["east"], "gpt-4o", day(1, 23.9999),
                                                      prompt_tokens=3, cost=9))])
    before = whole_day_reports(db)
    usage_prune.prune(db, day(3), now=NOW)
    assert db.execute("SELECT COUNT(*) FROM usage_daily").fetchone()[0] == daily_rows
    assert whole_day_reports(db) == before


def test_prune_while_requests_are_being_settled_loses_nothing(db_path, db, week):
    """Writers on their own connections (as other st-ai processes are) settle requests of
    past days and of today while the prune runs in small batches."""
    stop = threading.Event()
    settled = {"alice": 0, "bob": 0}
    errors: list[BaseException] = []

    def settle(name: str, token) -> None:
        conn = open_db(db_path)
        try:
            n = 0
            while not stop.is_set() and n < 400:
                when = day(n % 8, 12.0 + (n % 7))
                quota_store.settle_many(conn, [Settlement(None, row(token, week["east"], "gpt-4o", when,
                                                                    prompt_tokens=1, cost=3))])
                n += 1
            settled[name] = n
        except BaseException as exc:  # surfaced below: a writer must never fail
            errors.append(exc)
        finally:
            conn.close()

    requests_before = reports.report(db, UsageQuery())[0]["requests"]
    writers = [threading.Thread(target=settle, args=(t.name, t)) for t in (week["alice"], week["bob"])]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 30
    while any(w.is_alive() for w in writers) and time.monotonic() < deadline:
        usage_prune.prune(db, day(7), now=NOW, batch_rows=5)
        time.sleep(0.005)
    stop.set()
    for writer in writers:
        writer.join(timeout=30)
    usage_prune.prune(db, day(7), now=NOW, batch_rows=5)
    assert not errors
    assert reports.report(db, UsageQuery())[0]["requests"] == requests_before + sum(settled.values())
    for token in (week["alice"], week["bob"]):
        assert reports.booked_cost(db, token.id) == quota_store.status(db, token.name).used
    assert ledger_days_left(db) == ["2026-03-08"]


def test_prune_while_a_running_st_ai_settles_real_requests_loses_nothing(gateway, upstream):
    upstream.delay = 0.01
    model = priced_model(gateway, upstream, PriceChanges(per_request=1_000))
    name, key = quota_token(gateway, 10_000_000)
    db = open_db(gateway.db_path)
    tomorrow = dt.datetime.now(UTC) + dt.timedelta(days=1)  # so today's rows are whole days past
    statuses: list[int] = []

    def client() -> None:
        for _ in range(15):
            statuses.append(chat(gateway, key, model)[0])

    try:
        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 60
        while any(t.is_alive() for t in clients) and time.monotonic() < deadline:
            usage_prune.prune(db, tomorrow, now=tomorrow, batch_rows=3)
            time.sleep(0.005)
        for thread in clients:
            thread.join(timeout=30)
        usage_prune.prune(db, tomorrow, now=tomorrow, batch_rows=3)
        assert statuses == [200] * 60
        [row_] = reports.report(db, UsageQuery(token=name))
        assert (row_["requests"], row_["cost"]) == (60, "0.06")
        assert status_of(gateway, name).used == 60_000
        token = token_store.get(db, name)
        assert db.execute("SELECT COUNT(*) FROM ledger WHERE token_id = ?", [token.id]).fetchone()[0] == 0
    finally:
        db.close()


def test_cli_prune_says_what_it_folded_and_then_that_nothing_is_left(db_path, week):
    result = run("usage", "prune", "--before", "2026-03-03", db=db_path)
    assert result.code == 0, result.err
    assert result.out.strip() == ("folded 30 ledger rows of 2 days (2026-03-01 to 2026-03-02, UTC) into daily "
                                  "totals and deleted them (whole days before 2026-03-03 00:00 UTC)")
    again = run("usage", "prune", "--before", "2026-03-03T12:00:00+00:00", db=db_path)
    assert again.code == 0, again.err
    assert again.out.strip() == "nothing to fold: the ledger has no rows before 2026-03-03 00:00 UTC"


def test_a_batch_that_fails_half_way_leaves_every_row_in_the_ledger(db, week, monkeypatch):
    before, ledger_rows = whole_day_reports(db), db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    real_add = usage_prune._add_to_day
    calls = []

    def add_then_fail(conn, group):  # a disk error after the first day's total was written
        calls.append(group)
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        real_add(conn, group)

    monkeypatch.setattr(usage_prune, "_add_to_day", add_then_fail)
    with pytest.raises(sqlite3.OperationalError):
        usage_prune.prune(db, day(4), now=NOW)
    assert db.execute("SELECT COUNT(*) FROM usage_daily").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == ledger_rows
    assert whole_day_reports(db) == before
    monkeypatch.setattr(usage_prune, "_add_to_day", real_add)
    assert usage_prune.prune(db, day(4), now=NOW).rows == 4 * 3 * 5
    assert whole_day_reports(db) == before


def test_a_prune_keeps_each_client_api_apart_in_the_daily_totals(db):
    alice, _ = token_store.create(db, "alice")
    east = channel_store.add(db, "east", "simulator", "", "", ["gpt-4o"], {}, 0)
    rows = [row(alice, east, "gpt-4o", day(1, 1.0 + n), api=api, prompt_tokens=10 ** n, cost=n + 1)
            for n, api in enumerate(("chat", "responses", "messages", "responses"))]
    quota_store.settle_many(db, [Settlement(None, r) for r in rows])
    before = reports.report(db, UsageQuery(by=("api", "day")))
    assert [(g["api"], g["requests"]) for g in before] == [("chat", 1), ("messages", 1), ("responses", 2)]
    usage_prune.prune(db, day(2), now=NOW)
    assert db["ledger"].count == 0
    assert sorted(r["api"] for r in db["usage_daily"].rows) == ["chat", "messages", "responses"]
    assert reports.report(db, UsageQuery(by=("api", "day"))) == before
