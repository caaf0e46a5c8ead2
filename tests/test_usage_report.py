"""`st-ai usage` on the ledger (server/store/usage_report.py, server/cli_usage.py): every
grouping alone and combined, every filter, the exact JSON shape, exact decimal costs and
video seconds, the period rules (UTC days, --since inclusive, --until exclusive, offsets),
deleted tokens and channels, and one-line refusals."""
from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest

from server.store import channels as channel_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store import usage_report as reports
from server.store.db import open_db
from server.store.quota import LedgerRow, Settlement
from server.store.usage_report import UsageQuery
from tests.test_cli import run

UTC = dt.timezone.utc
JAN_1 = dt.datetime(2026, 1, 1, tzinfo=UTC)
COUNTS = ("requests", "errors", "prompt_tokens", "cached_tokens", "cache_write_tokens", "completion_tokens", "images")


def at(day: int, hour: float = 12.0) -> float:
    """Epoch seconds of January `day`, 2026, at `hour` UTC."""
    return (JAN_1 + dt.timedelta(days=day - 1, hours=hour)).timestamp()


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


def book(db, rows: list[LedgerRow]) -> None:
    """As the relays do: each row settled with its token's `used`, in one transaction."""
    quota_store.settle_many(db, [Settlement(None, row) for row in rows])


def request(token, channel, model: str, ts: float, **fields) -> LedgerRow:
    kind = fields.pop("kind", "chat")
    return LedgerRow(ts=ts, request_id="req", token_id=token.id, model=model, upstream_model=model,
                     channel_id=channel.id if channel else None, kind=kind, status=fields.pop("status", 200),
                     **fields)


@pytest.fixture
def booked(db):
    """Two tokens, two channels, three models over three days."""
    alice, _ = token_store.create(db, "alice")
    bob, _ = token_store.create(db, "bob")
    east = channel_store.add(db, "east", "simulator", "", "", ["gpt-4o", "dall-e-3"], {}, 0)
    west = channel_store.add(db, "west", "simulator", "", "", ["gpt-4o", "sora-2"], {}, 0)
    book(db, [
        request(alice, east, "gpt-4o", at(1, 9), prompt_tokens=100, cached_tokens=40, completion_tokens=10, cost=1250),
        request(alice, west, "gpt-4o", at(1, 23.99), prompt_tokens=50, completion_tokens=5, cost=125),
        request(alice, east, "dall-e-3", at(2, 0), kind="images", images=2, cost=80_000),
        request(bob, west, "sora-2", at(2, 10), kind="video", video_seconds="5.5", cost=1_650_000),
        request(bob, west, "sora-2", at(3, 10), kind="video", video_seconds="0.1", cost=30_000),
        request(bob, east, "gpt-4o", at(3, 11), status=400, error_code="invalid_value"),
        request(bob, None, "gpt-4o", at(3, 12), status=429, error_code="insufficient_quota"),
    ])
    return {"alice": alice, "bob": bob, "east": east, "west": west}


def totals(groups: list[dict]) -> dict:
    return {c: sum(g[c] for g in groups) for c in COUNTS}


def test_without_grouping_one_total_row_adds_every_request(db, booked):
    assert reports.report(db, UsageQuery()) == [{
        "requests": 7, "errors": 2, "prompt_tokens": 150, "cached_tokens": 40, "cache_write_tokens": 0, "completion_tokens": 15,
        "images": 2, "video_seconds": "5.6", "cost": "1.761375"}]


def test_an_empty_ledger_still_gives_one_total_row_of_zeros(db):
    assert reports.report(db, UsageQuery()) == [{
        "requests": 0, "errors": 0, "prompt_tokens": 0, "cached_tokens": 0, "cache_write_tokens": 0, "completion_tokens": 0,
        "images": 0, "video_seconds": "0", "cost": "0"}]


def test_grouped_by_token_each_token_with_its_name_id_and_spend(db, booked):
    groups = reports.report(db, UsageQuery(by=("token",)))
    assert [(g["token"], g["token_id"], g["token_deleted"], g["requests"], g["cost"]) for g in groups] == [
        ("alice", booked["alice"].id, False, 3, "0.081375"), ("bob", booked["bob"].id, False, 4, "1.68")]


def test_grouped_by_model(db, booked):
    groups = reports.report(db, UsageQuery(by=("model",)))
    assert [(g["model"], g["requests"], g["errors"], g["images"], g["video_seconds"], g["cost"]) for g in groups] == [
        ("dall-e-3", 1, 0, 2, "0", "0.08"), ("gpt-4o", 4, 2, 0, "0", "0.001375"),
        ("sora-2", 2, 0, 0, "5.6", "1.68")]


def test_grouped_by_channel_a_request_refused_before_routing_has_no_channel(db, booked):
    groups = reports.report(db, UsageQuery(by=("channel",)))
    assert [(g["channel"], g["channel_id"], g["requests"], g["cost"]) for g in groups] == [
        ("east", booked["east"].id, 3, "0.08125"), ("west", booked["west"].id, 3, "1.680125"),
        (None, None, 1, "0")]


def test_grouped_by_day_days_are_utc_and_a_row_a_moment_before_midnight_stays_in_its_day(db, booked):
    book(db, [request(booked["alice"], booked["east"], "gpt-4o", at(4, 0) - 1e-6, cost=1)])  # 23:59:59.999999
    groups = reports.report(db, UsageQuery(by=("day",)))
    assert [(g["day"], g["requests"], g["cost"]) for g in groups] == [
        ("2026-01-01", 2, "0.001375"), ("2026-01-02", 2, "1.73"), ("2026-01-03", 4, "0.030001")]


def keys_of(by: tuple[str, ...]) -> list[str]:
    named = {"token": ["token", "token_id", "token_deleted"], "channel": ["channel", "channel_id", "channel_deleted"]}
    return [k for key in by for k in named.get(key, [key])] + [*COUNTS, "video_seconds", "cost"]


def test_groupings_combine_in_the_order_given_and_every_combination_adds_up_to_the_total(db, booked):
    total = reports.report(db, UsageQuery())[0]
    for size in (1, 2, 3, 4):
        for by in itertools.permutations(reports.GROUPS, size):
            groups = reports.report(db, UsageQuery(by=by))
            assert all(list(g) == keys_of(by) for g in groups), by
            assert len({tuple(str(g[k]) for k in keys_of(by)[:-8]) for g in groups}) == len(groups), by
            assert totals(groups) == {c: total[c] for c in COUNTS}, by
            assert sum(_micros(g["cost"]) for g in groups) == 1_761_375, by
            assert sum(Decimal(g["video_seconds"]) for g in groups) == Decimal("5.6"), by
    groups = reports.report(db, UsageQuery(by=("token", "model")))
    assert [(g["token"], g["model"], g["requests"], g["cost"]) for g in groups] == [
        ("alice", "dall-e-3", 1, "0.08"), ("alice", "gpt-4o", 2, "0.001375"),
        ("bob", "gpt-4o", 2, "0"), ("bob", "sora-2", 2, "1.68")]


def _micros(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * 1_000_000 + int(fraction.ljust(6, "0"))


def test_each_filter_narrows_the_report(db, booked):
    def total(**filters) -> tuple[int, str]:
        [row] = reports.report(db, UsageQuery(**filters))
        return row["requests"], row["cost"]

    assert total(token="alice") == (3, "0.081375")
    assert total(model="sora-2") == (2, "1.68")
    assert total(channel="west") == (3, "1.680125")
    assert total(since=dt.datetime(2026, 1, 2, tzinfo=UTC)) == (5, "1.76")
    assert total(until=dt.datetime(2026, 1, 2, tzinfo=UTC)) == (2, "0.001375")
    assert total(token="bob", model="gpt-4o", channel="east") == (1, "0")
    assert total(model="no-such-model") == (0, "0")


def test_since_is_inclusive_until_exclusive_and_offsets_are_honoured(db, booked):
    def requests(since: str | None = None, until: str | None = None) -> int:
        query = UsageQuery(since=since and reports.parse_when(since), until=until and reports.parse_when(until))
        return reports.report(db, query)[0]["requests"]

    assert requests(since="2026-01-02T00:00:00Z") == 5   # the image at midnight is in
    assert requests(until="2026-01-02T00:00:00Z") == 2   # and here it is out
    # 01:00 at +01:00 is midnight UTC
    assert requests(since="2026-01-02T01:00:00+01:00", until="2026-01-02T10:00:00.000001+00:00") == 2
    assert requests(since="2026-01-03", until="2026-01-04") == 3


def test_a_deleted_token_and_channel_still_report_under_their_names(db, booked):
    token_store.delete(db, "bob")
    channel_store.delete(db, "west")
    groups = reports.report(db, UsageQuery(by=("token", "channel")))
    assert [(g["token"], g["token_deleted"], g["channel"], g["channel_deleted"], g["requests"]) for g in groups] == [
        ("alice", False, "east", False, 2), ("alice", False, "west", True, 1),
        ("bob", True, "east", False, 1), ("bob", True, "west", True, 2), ("bob", True, None, False, 1)]
    [row] = reports.report(db, UsageQuery(token="bob"))
    assert (row["requests"], row["cost"]) == (4, "1.68")


def test_a_new_token_never_takes_a_deleted_tokens_id_or_its_spend(db, booked):
    token_store.delete(db, "bob")  # the newest token: SQLite would hand its id out again
    carol, _ = token_store.create(db, "carol")
    assert carol.id > booked["bob"].id
    [row] = reports.report(db, UsageQuery(token="carol"))
    assert (row["requests"], row["cost"]) == (0, "0")


def test_a_name_reused_after_a_delete_reports_both_tokens_apart_and_filters_both(db, booked):
    token_store.delete(db, "bob")
    bob2, _ = token_store.create(db, "bob")
    book(db, [request(bob2, booked["east"], "gpt-4o", at(3, 13), cost=5)])
    groups = [g for g in reports.report(db, UsageQuery(by=("token",))) if g["token"] == "bob"]
    assert [(g["token_id"], g["token_deleted"], g["requests"]) for g in groups] == [
        (booked["bob"].id, True, 4), (bob2.id, False, 1)]
    assert reports.report(db, UsageQuery(token="bob"))[0]["requests"] == 5


def test_unknown_token_or_channel_names_and_empty_periods_are_refused(db, booked):
    for query, said in ((UsageQuery(token="nobody"), "no token is or was named 'nobody'"),
                        (UsageQuery(channel="nowhere"), "no channel is or was named 'nowhere'"),
                        (UsageQuery(since=JAN_1, until=JAN_1), "the period is empty"),
                        (UsageQuery(by=("week",)), "'week' is not a grouping")):
        with pytest.raises(reports.UsageQueryError, match=said):
            reports.report(db, query)


# -- the CLI -----------------------------------------------------------------------------------

def test_usage_json_is_a_list_of_objects_with_exact_keys_and_decimal_strings(db_path, db, booked):
    result = run("usage", "--by", "token", "--by", "model", "--since", "2026-01-02", "--json", db=db_path)
    assert result.code == 0, result.err
    assert json.loads(result.out) == [
        {"token": "alice", "token_id": booked["alice"].id, "token_deleted": False, "model": "dall-e-3",
         "requests": 1, "errors": 0, "prompt_tokens": 0, "cached_tokens": 0, "cache_write_tokens": 0, "completion_tokens": 0, "images": 2,
         "video_seconds": "0", "cost": "0.08"},
        {"token": "bob", "token_id": booked["bob"].id, "token_deleted": False, "model": "gpt-4o",
         "requests": 2, "errors": 2, "prompt_tokens": 0, "cached_tokens": 0, "cache_write_tokens": 0, "completion_tokens": 0, "images": 0,
         "video_seconds": "0", "cost": "0"},
        {"token": "bob", "token_id": booked["bob"].id, "token_deleted": False, "model": "sora-2",
         "requests": 2, "errors": 0, "prompt_tokens": 0, "cached_tokens": 0, "cache_write_tokens": 0, "completion_tokens": 0, "images": 0,
         "video_seconds": "5.6", "cost": "1.68"}]


def test_usage_by_comma_list_prints_a_table_with_spend_requests_errors_and_tokens(db_path, db, booked):
    token_store.delete(db, "bob")
    result = run("usage", "--by", "day,token", "--channel", "west", db=db_path)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["DAY", "(UTC)", "TOKEN", "REQUESTS", "ERRORS", "PROMPT", "CACHED", "CACHE", "WRITE", "COMPLETION",
                                "IMAGES", "VIDEO", "S", "COST", "(USD)"]
    assert [line.split() for line in lines[1:]] == [
        ["2026-01-01", "alice", "1", "0", "50", "0", "0", "5", "0", "0", "0.000125"],
        ["2026-01-02", "bob", "(deleted)", "1", "0", "0", "0", "0", "0", "0", "5.5", "1.65"],
        ["2026-01-03", "bob", "(deleted)", "1", "0", "0", "0", "0", "0", "0", "0.1", "0.03"]]


@pytest.mark.parametrize("args, said", [
    (("--since", "2026-02-30"), "'2026-02-30' is not a date"),
    (("--until", "yesterday"), "'yesterday' is not a date"),
    (("--since", "2026-01-05T10:00:00"), "has no offset"),
    (("--since", "\u0662\u0660\u0662\u0666-01-01"), "is not a date"),  # Arabic-Indic digits
    (("--since", "0001-01-01T00:00:00+01:00"), "is out of range"),
    (("--until", "1969-12-31"), "is out of range"),
    (("--by", "token,week"), "'week' is not a grouping"),
    (("--since", "2026-01-05", "--until", "2026-01-01"), "the period is empty"),
    (("--token", "nobody"), "no token is or was named 'nobody'"),
    (("prune",), "the following arguments are required: --before"),
    (("prune", "--before", "soon"), "'soon' is not a date"),
])
def test_bad_usage_input_is_refused_in_one_line(db_path, args, said):
    result = run("usage", *args, db=db_path)
    assert result.code != 0 and result.out == ""
    assert len(result.err.strip().splitlines()) == 1 and said in result.err, result.err


# -- which client API a request came in by ---------------------------------------------------

def test_a_ledger_row_without_an_api_gets_its_kinds_own():
    def api(kind: str) -> str | None:
        return LedgerRow(ts=0.0, request_id=None, token_id=1, model="m", upstream_model="m", channel_id=None,
                         kind=kind, status=200).api
    assert [api(k) for k in ("chat", "images", "embeddings", "video")] == ["chat", "images", "embeddings", "videos"]


def test_grouped_by_api_chat_requests_of_the_responses_and_messages_apis_stay_apart(db, booked):
    alice, east = booked["alice"], booked["east"]
    book(db, [request(alice, east, "gpt-4o", at(3, 13), api="responses", prompt_tokens=7, cost=3),
              request(alice, east, "gpt-4o", at(3, 14), api="messages", prompt_tokens=11, cost=5),
              request(alice, east, "gpt-4o", at(3, 15), kind="embeddings", prompt_tokens=2, cost=1)])
    db.conn.execute("UPDATE ledger SET api = NULL WHERE ts = ?", [at(1, 9)])  # booked before st-ai kept it
    db.conn.commit()
    groups = reports.report(db, UsageQuery(by=("api",)))
    assert [(g["api"], g["requests"], g["prompt_tokens"], g["cost"]) for g in groups] == [
        ("chat", 3, 50, "0.000125"), ("embeddings", 1, 2, "0.000001"), ("images", 1, 0, "0.08"),
        ("messages", 1, 11, "0.000005"), ("responses", 1, 7, "0.000003"), ("videos", 2, 0, "1.68"),
        (None, 1, 100, "0.00125")]


def test_usage_by_api_prints_an_api_column(db_path, db, booked):
    result = run("usage", "--by", "api", db=db_path)
    assert result.code == 0, result.err
    lines = [line.split() for line in result.out.splitlines()]
    assert lines[0][:2] == ["API", "REQUESTS"]
    assert [(line[0], line[1]) for line in lines[1:]] == [("chat", "4"), ("images", "1"), ("videos", "2")]
