"""Quotas that cannot be overspent: reserve before relaying, settle after, in the database.

Every function that changes money is ONE `BEGIN IMMEDIATE` transaction: SQLite's write lock
serializes reservations of every process sharing the file, so two st-ai processes cannot
both spend the last of a quota. A token's `used` and its ledger row change in the same
transaction, so the ledger's sum of `cost` always equals `used`.

Amounts are integers of micro-units (server/billing/money.py).
"""
from __future__ import annotations

import sqlite3
import time
import operator
from dataclasses import dataclass, fields
from typing import Callable, TypeVar

import sqlite_utils

from server.billing import money
from server.store import rate_limits
from server.store import tokens as token_store
from server.store.quick_init import quick_init

T = TypeVar("T")


class InsufficientQuota(Exception):
    """The token's remaining quota cannot cover the reservation; nothing was reserved."""

    def __init__(self, remaining: int, wanted: int) -> None:
        super().__init__(f"remaining {remaining} micro-units cannot cover {wanted}")
        self.remaining = remaining
        self.wanted = wanted


@dataclass(frozen=True)
class QuotaStatus:
    name: str
    quota: int | None  # None: unlimited
    used: int
    reserved: int      # held by requests in flight

    @property
    def remaining(self) -> int | None:
        return None if self.quota is None else self.quota - self.used - self.reserved


# The client API a request came in by, when its route does not name another: a request of
# the Responses or Messages API is a chat request by kind, and its route says so.
APIS = ("chat", "responses", "messages", "embeddings", "images", "videos")
API_OF_KIND = {"chat": "chat", "images": "images", "embeddings": "embeddings", "video": "videos"}


@quick_init
@dataclass(frozen=True)
class LedgerRow:
    """One client request, as it ended (attempts on several channels are one row)."""
    ts: float
    request_id: str | None
    token_id: int
    model: str | None
    upstream_model: str | None
    channel_id: int | None
    kind: str  # chat | images | embeddings | video
    status: int  # HTTP-equivalent status the client got
    cost: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
    video_seconds: str | None = None  # exact decimal text
    latency_ms: int | None = None
    ttft_ms: int | None = None
    error_code: str | None = None
    stream: bool = False
    client_address: str | None = None
    estimate: bool = False  # counted by st-ai, the upstream gave no usage
    history: bool = False  # folded from a release's per-attempt `usage` row (schema step 5)
    cache_write_tokens: int = 0  # of prompt_tokens: written to the upstream's prompt cache (schema v11)
    api: str | None = None  # the client API it came in by (APIS; schema v13); None: its kind's

    def __post_init__(self) -> None:
        if self.api is None:  # one rule for every booking path: the kind's own API
            object.__setattr__(self, "api", API_OF_KIND.get(self.kind))


@quick_init
@dataclass(frozen=True)
class Attempt:
    """One upstream call made for a request, on one channel."""
    channel_id: int | None
    upstream_model: str | None
    status: int
    error_code: str | None = None
    latency_ms: int | None = None


@quick_init
@dataclass(frozen=True)
class Settlement:
    """Close a reservation (if any) and book its request at its real cost, with the
    upstream attempts it made."""
    reservation_id: int | None
    row: LedgerRow
    attempts: tuple[Attempt, ...] = ()
    rate_hold: rate_limits.Hold | None = None  # its rate-limit hold: real tokens counted, slot freed


_LEDGER_COLUMNS = [f.name for f in fields(LedgerRow)]
_INSERT_LEDGER = (f"INSERT INTO ledger ({', '.join(_LEDGER_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(_LEDGER_COLUMNS))})")
# a row's values, field by field: dataclasses.astuple deep-copies each one, a cost on
# every request
_ledger_values = operator.attrgetter(*_LEDGER_COLUMNS)
_attempt_values = operator.attrgetter(*(f.name for f in fields(Attempt)))
_ATTEMPT_COLUMNS = ["ledger_id", *(f.name for f in fields(Attempt))]
_INSERT_ATTEMPT = (f"INSERT INTO attempts ({', '.join(_ATTEMPT_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(_ATTEMPT_COLUMNS))})")


class _Write:
    """A write transaction that holds SQLite's write lock from its first statement."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._conn = db.conn

    def __enter__(self) -> sqlite3.Connection:
        if not self._conn.in_transaction:  # else it joins the caller's (an audited admin change)
            self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self._conn.commit()
        else:
            self._conn.rollback()


write = _Write  # for a store that changes its rows in the same transaction as a reservation


# a limited token's hold, when what is left of its quota (more than nothing) covers `amount`
_RESERVE = ("INSERT INTO reservations (token_id, amount, owner, created_at) SELECT ?, ?, ?, ? FROM tokens "
            "WHERE id = ? AND quota IS NOT NULL AND quota - used - (SELECT COALESCE(SUM(amount), 0) "
            "FROM reservations WHERE token_id = ?) >= MAX(?, 1)")


def _status(conn: sqlite3.Connection, token_id: int) -> tuple[int | None, int, int]:
    row = conn.execute("SELECT quota, used, (SELECT COALESCE(SUM(amount), 0) FROM reservations "
                       "WHERE token_id = ?) FROM tokens WHERE id = ?", [token_id, token_id]).fetchone()
    if row is None:
        raise token_store.TokenError(f"no token with id {token_id}")
    return row[0], row[1], row[2]


def reserve(db: sqlite_utils.Database, token_id: int, amount: int, owner: str) -> int | None:
    """Hold `amount` of the token's quota for a request; returns the reservation's id, or
    None for an unlimited token (nothing to hold). Raises InsufficientQuota."""
    with _Write(db) as conn:
        return reserve_in(conn, token_id, amount, owner)


def reserve_in(conn: sqlite3.Connection, token_id: int, amount: int, owner: str) -> int | None:
    """`reserve`, inside a write transaction the caller holds."""
    if amount < 0:
        raise ValueError("a reservation is 0 or more micro-units")
    # the check and the hold in one statement; only a token it did not hold for is looked at again
    held = conn.execute(_RESERVE, [token_id, amount, owner, time.time(), token_id, token_id, amount])
    if held.rowcount:
        return held.lastrowid
    quota, used, reserved = _status(conn, token_id)
    if quota is None:
        return None
    raise InsufficientQuota(quota - used - reserved, amount)


def settle_many(db: sqlite_utils.Database, settlements: list[Settlement]) -> None:
    """Book every request in one transaction: each closes its reservation, adds its cost to
    its token's `used` and writes its ledger row and its attempts. (The gateway's group
    commit runs `settle_in` per settlement through `write_each` instead.)"""
    with _Write(db) as conn:
        settle_in(conn, settlements)


def settle_in(conn: sqlite3.Connection, settlements: list[Settlement]) -> None:
    """settle_many inside a write transaction the caller holds (a video task's final
    status commits with its settlement)."""
    attempts = []
    for item in settlements:
        if item.reservation_id is not None:
            conn.execute("DELETE FROM reservations WHERE id = ?", [item.reservation_id])
        if item.row.cost:
            conn.execute("UPDATE tokens SET used = used + ? WHERE id = ?", [item.row.cost, item.row.token_id])
        if item.rate_hold is not None:
            rate_limits.settle(conn, item.rate_hold, item.row.prompt_tokens + item.row.completion_tokens)
        ledger_id = conn.execute(_INSERT_LEDGER, _ledger_values(item.row)).lastrowid
        attempts.extend((ledger_id, *_attempt_values(attempt)) for attempt in item.attempts)
    if len(attempts) == 1:  # most requests: executemany costs twice what one execute does
        conn.execute(_INSERT_ATTEMPT, attempts[0])
    elif attempts:
        conn.executemany(_INSERT_ATTEMPT, attempts)


def write_each(db: sqlite_utils.Database, ops: list[Callable[[sqlite3.Connection], T]]) -> list[T | Exception]:
    """Run every op in one write transaction (one commit for all): an op that raises takes
    back only what it wrote, and its exception is its result. A failure of the transaction
    itself (the database locked too long) raises.

    Ops run one after the other with no savepoint between them: a savepoint and its release
    are two statements an op, a third of a request's, and the usual failure (a refused
    reservation) writes nothing before it raises. An op that raises having written something
    (SQLite's change count moved) needs its own undone alone: the transaction is rolled
    back and the group run again, each op in a savepoint (`_each_in_savepoints`)."""
    conn = db.conn
    if conn.in_transaction:  # a caller's transaction cannot be rolled back and run again
        return _each_in_savepoints(db, ops)
    conn.execute("BEGIN IMMEDIATE")
    results: list[T | Exception] = []
    try:
        for op in ops:
            changes = conn.total_changes
            try:
                results.append(op(conn))
            except Exception as exc:
                if conn.total_changes != changes:
                    conn.rollback()
                    return [exc] if len(ops) == 1 else _each_in_savepoints(db, ops)
                results.append(exc)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return results


def _each_in_savepoints(db: sqlite_utils.Database, ops: list[Callable[[sqlite3.Connection], T]]
                        ) -> list[T | Exception]:
    results: list[T | Exception] = []
    with _Write(db) as conn:
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                results.append(op(conn))
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                results.append(exc)
            conn.execute("RELEASE op")
    return results


def release(db: sqlite_utils.Database, reservation_id: int) -> None:
    """Give a reservation back without booking anything."""
    with _Write(db) as conn:
        conn.execute("DELETE FROM reservations WHERE id = ?", [reservation_id])


def release_stale(db: sqlite_utils.Database, older_than: float, keep_owner: str | None = None) -> int:
    """Give back reservations made before `older_than` (epoch seconds) by any process but
    `keep_owner`: a process that was killed never settles them, and no request of a live
    one lasts that long. Returns how many were released. A video task's reservation is
    never one of them: it lives as long as its task (server/billing/video_billing.py)."""
    with _Write(db) as conn:
        rate_limits.release_stale(conn, older_than, keep_owner)  # their slots in flight too
        return conn.execute("DELETE FROM reservations WHERE created_at < ? AND owner IS NOT ? "
                            "AND video_id IS NULL", [older_than, keep_owner]).rowcount


def release_owner(db: sqlite_utils.Database, owner_prefix: str) -> int:
    """Give back at once what a process that died held: its reservations and its slots in
    flight (`owner_prefix`: "host:pid:", a worker of `serve --workers` its parent saw
    die). A video task's reservation stays with its task. Returns the reservations freed."""
    with _Write(db) as conn:
        conn.execute("DELETE FROM inflight WHERE substr(owner, 1, ?) = ?", [len(owner_prefix), owner_prefix])
        return conn.execute("DELETE FROM reservations WHERE substr(owner, 1, ?) = ? AND video_id IS NULL",
                            [len(owner_prefix), owner_prefix]).rowcount


def status(db: sqlite_utils.Database, name: str) -> QuotaStatus:
    token = token_store.get(db, name)
    quota, used, reserved = _status(db.conn, token.id)
    return QuotaStatus(token.name, quota, used, reserved)


def set_quota(db: sqlite_utils.Database, name: str, quota: int | None = None, *, unlimited: bool = False,
              add: int | None = None) -> QuotaStatus:
    """Set a token's quota (or make it unlimited) and/or add to it, in one transaction."""
    token = token_store.get(db, name)
    with _Write(db) as conn:
        if unlimited:
            conn.execute("UPDATE tokens SET quota = NULL WHERE id = ?", [token.id])
        elif quota is not None:
            conn.execute("UPDATE tokens SET quota = ? WHERE id = ?", [quota, token.id])
        if add is not None:
            current = conn.execute("SELECT quota FROM tokens WHERE id = ?", [token.id]).fetchone()[0]
            if current is None:
                raise token_store.TokenError(f"token {name!r} has no quota to add to (it is unlimited): "
                                             "set one with --quota")
            if current + add >= money.MAX_UNITS * money.MICROS:
                raise token_store.TokenError(f"token {name!r}: a quota stays below {money.MAX_UNITS}")
            conn.execute("UPDATE tokens SET quota = quota + ? WHERE id = ?", [add, token.id])
    return status(db, name)


def ledger_total(db: sqlite_utils.Database, token_id: int) -> int:
    return db.conn.execute("SELECT COALESCE(SUM(cost), 0) FROM ledger WHERE token_id = ?", [token_id]).fetchone()[0]
