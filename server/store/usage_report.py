"""Usage reports on the ledger: spend, requests, errors and tokens, filtered and grouped.

One report reads both the ledger (one row per client request) and the daily totals that
`st-ai usage prune` folded older rows into (server/store/usage_prune.py), so a report over
whole UTC days is the same before and after a prune. A pruned day counts in a report only
when the whole day lies inside the period asked.

Transport-free: the CLI (server/cli_usage.py) and the Admin API build a `UsageQuery`, and
get back plain dicts, one per group, amounts as decimal strings (server/billing/money.py).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlite_utils

from server.billing import money
from server.store import ledger_days
from server.store.ledger_days import LEDGER_DAY

GROUPS = ("token", "model", "channel", "day", "api")
COUNTS = ("requests", "errors", "prompt_tokens", "cached_tokens", "cache_write_tokens", "completion_tokens", "images")


class UsageQueryError(ValueError):
    """A query st-ai cannot answer; the message says why in one line."""


@dataclass(frozen=True)
class UsageQuery:
    token: str | None = None    # a token's name (a deleted token's remembered name too)
    model: str | None = None    # a public model
    channel: str | None = None  # a channel's name (a deleted channel's too)
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive
    by: tuple[str, ...] = ()    # any of GROUPS; none: one total row


# the ledger starts with the epoch; beyond 9998 a day's end would overflow datetime
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)


def parse_when(text: str) -> dt.datetime:
    """`YYYY-MM-DD` (that day's UTC midnight) or an ISO-8601 time with its offset."""
    stripped = text.strip()
    moment = None
    try:
        if stripped.isascii() and len(stripped) == 10:
            day = dt.date.fromisoformat(stripped)
            moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
        elif stripped.isascii():  # fromisoformat would take other scripts' digits
            moment = dt.datetime.fromisoformat(stripped)
    except ValueError:
        pass
    if moment is None:
        raise UsageQueryError(f"{text!r} is not a date: write YYYY-MM-DD (UTC) or an ISO-8601 time with "
                              "its offset, such as 2026-01-31T18:00:00+01:00")
    if moment.tzinfo is None:
        raise UsageQueryError(f"{text!r} has no offset: add one (Z for UTC, or +01:00), or give a date alone")
    try:
        moment = moment.astimezone(dt.timezone.utc)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise UsageQueryError(f"{text!r} is out of range: dates run from 1970-01-01 to 9998-12-31")
    return moment


def parse_by(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Groupings from repeated and/or comma-separated values, in the order given."""
    chosen: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if name not in GROUPS:
                raise UsageQueryError(f"{part.strip()!r} is not a grouping: use {', '.join(GROUPS)}")
            if name not in chosen:
                chosen.append(name)
    return tuple(chosen)


def _check(query: UsageQuery) -> None:
    unknown = [g for g in query.by if g not in GROUPS]
    if unknown:
        raise UsageQueryError(f"{unknown[0]!r} is not a grouping: use {', '.join(GROUPS)}")
    for moment in (query.since, query.until):
        if moment is not None and moment.tzinfo is None:
            raise UsageQueryError("since and until must carry their offset")
    if query.since and query.until and query.since >= query.until:
        raise UsageQueryError("the period is empty: since must be before until")


@dataclass
class _Where:
    """WHERE terms and their values, for the ledger and for the daily totals."""
    ledger: list[str] = field(default_factory=list)
    ledger_args: list = field(default_factory=list)
    daily: list[str] = field(default_factory=list)
    daily_args: list = field(default_factory=list)

    def add(self, ledger: str, ledger_args: list, daily: str, daily_args: list) -> None:
        self.ledger.append(ledger)
        self.ledger_args += ledger_args
        self.daily.append(daily)
        self.daily_args += daily_args


def _filters(db: sqlite_utils.Database, query: UsageQuery) -> _Where:
    where = _Where()
    for kind, name in (("token", query.token), ("channel", query.channel)):
        if name is None:
            continue
        ids = ledger_days.ids_named(db.conn, kind, name)
        if not ids:
            raise UsageQueryError(f"no {kind} is or was named {name!r}")
        term = f"{kind}_id IN ({', '.join('?' * len(ids))})"
        where.add(term, ids, term, ids)
    if query.model is not None:
        where.add("model = ?", [query.model], "model = ?", [query.model])
    # a pruned day counts only when the whole day lies inside the period
    if query.since is not None:
        where.add("ts >= ?", [query.since.timestamp()],
                  "day >= ?", [ledger_days.day_of(ledger_days.midnight_after(query.since))])
    if query.until is not None:
        where.add("ts < ?", [query.until.timestamp()],
                  "day < ?", [ledger_days.day_of(ledger_days.midnight_before(query.until))])
    return where


def _where(terms: list[str]) -> str:
    return f"WHERE {' AND '.join(terms)}" if terms else ""


_KEY_COLUMN = {"token": "token_id", "model": "model", "channel": "channel_id", "day": "day", "api": "api"}


def _rows(db: sqlite_utils.Database, query: UsageQuery) -> list[dict]:
    where = _filters(db, query)
    day = LEDGER_DAY if "day" in query.by else "NULL"  # computed only when grouped by
    keys = [_KEY_COLUMN[g] for g in query.by]
    group = f"GROUP BY {', '.join(keys)}" if keys else ""
    sums = ", ".join(f"COALESCE(SUM({c}), 0) AS {c}" for c in (*COUNTS, "cost"))
    sql = f"""SELECT {''.join(k + ', ' for k in keys)}{sums},
                     COALESCE(seconds_sum(video_seconds) FILTER (WHERE video_seconds IS NOT NULL), '0') AS video_seconds
              FROM (SELECT token_id, model, channel_id, {day} AS day, api, 1 AS requests, status >= 400 AS errors,
                           prompt_tokens, cached_tokens, cache_write_tokens, completion_tokens, images,
                           video_seconds, cost
                    FROM ledger {_where(where.ledger)}
                    UNION ALL
                    SELECT token_id, model, channel_id, day, api, requests, errors, prompt_tokens, cached_tokens,
                           cache_write_tokens, completion_tokens, images, video_seconds, cost
                    FROM usage_daily {_where(where.daily)})
              {group}"""
    ledger_days.register(db.conn)
    cursor = db.conn.execute(sql, [*where.ledger_args, *where.daily_args])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor]


def _named(known: dict[int, ledger_days.Named], id_: int | None) -> ledger_days.Named:
    return known.get(id_) or ledger_days.Named(id_, None, id_ is not None)


def report(db: sqlite_utils.Database, query: UsageQuery) -> list[dict]:
    """One dict per group, ordered by its keys: the keys (`token`, `token_id`,
    `token_deleted`; `model`; `channel`, `channel_id`, `channel_deleted`; `day`; `api`: the
    client API, null for rows booked before st-ai recorded it), then
    `requests`, `errors`, `prompt_tokens`, `cached_tokens` (read from a prompt cache),
    `cache_write_tokens` (written to one), `completion_tokens`, `images`,
    `video_seconds` (exact decimal text) and `cost` (decimal string)."""
    _check(query)
    rows = _rows(db, query)
    known = {kind: ledger_days.names(db.conn, kind) for kind in ("token", "channel") if kind in query.by}
    answer = []
    for row in rows:
        group: dict = {}
        for key in query.by:
            if key in known:
                named = _named(known[key], row[f"{key}_id"])
                group.update({key: named.name, f"{key}_id": named.id, f"{key}_deleted": named.deleted})
            else:
                group[key] = row[key]
        group.update({c: row[c] for c in COUNTS})
        group["video_seconds"] = row["video_seconds"]
        group["cost"] = money.format_amount(row["cost"])
        answer.append(group)
    return sorted(answer, key=lambda g: [_order(g, key) for key in query.by])


def _order(group: dict, key: str) -> tuple:
    value = group[key]
    return (value is None, value or "", group.get(f"{key}_id") or 0)


def booked_cost(db: sqlite_utils.Database, token_id: int) -> int:
    """What a token's requests cost in all, live ledger rows and pruned days together: always
    the token's `used`."""
    return db.conn.execute("SELECT (SELECT COALESCE(SUM(cost), 0) FROM ledger WHERE token_id = ?) + "
                           "(SELECT COALESCE(SUM(cost), 0) FROM usage_daily WHERE token_id = ?)",
                           [token_id, token_id]).fetchone()[0]
