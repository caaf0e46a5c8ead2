"""A token's rate limits in the database: requests and tokens of the last minute, and the
requests it has in flight, shared by every st-ai process on the file.

Counters are one `rate_buckets` row per token and second of the clock in which the token
was admitted anything: the second's requests, the tokens they count and the time of its
latest request. A check sums at most 61 such rows (one range of the primary key), so its
cost does not grow with the traffic of the minute. A bucket counts whole until its latest
request is a minute old, so a minute is any 60 seconds, not a calendar minute, and a limit
is never exceeded nor doubled at a window's edge; the one price of the buckets is that a
request may go on counting for up to a second longer than its own minute (never shorter):
a limit can refuse a little early, never admit too much. Buckets out of the window are
pruned as the token is checked. Requests in flight are rows of `inflight` with their
process's owner, released when the request is settled and swept like quota reservations
when their process died.

Every function here works on a connection inside a write transaction its caller holds
(server/billing/limits.py: the same `BEGIN IMMEDIATE` transaction as the quota
reservation and the settlement), so a check and its take cannot be split by another
process. The clock is a parameter: tests move it, nothing sleeps.
"""
from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

WINDOW = 60.0  # seconds: requests and tokens "per minute"


@dataclass(frozen=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    @property
    def any(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.max_concurrency is not None


@dataclass(frozen=True)
class Figure:
    """One limit as a client sees it after (or without) this request."""
    limit: int
    remaining: int
    reset: float  # seconds until the window holds nothing of this kind again


@dataclass(frozen=True)
class Figures:
    requests: Figure | None = None
    tokens: Figure | None = None


@dataclass(frozen=True)
class Counted:
    """Where an admitted request was counted: its token's bucket, and the tokens it added
    there (what its settlement corrects to the real ones)."""
    token_id: int
    second: int
    tokens: int


@dataclass(frozen=True)
class Hold:
    """What an admitted request took: its count in a bucket and its slot."""
    counted: Counted | None
    slot_id: int | None


class RateLimited(Exception):
    """A limit refuses the request; nothing was taken."""

    def __init__(self, kind: str, limit: int, retry_after: float, figures: Figures, too_large: bool = False) -> None:
        super().__init__(f"{kind} per minute limit {limit} reached")
        self.kind = kind  # "requests", "tokens" or "concurrency"
        self.limit = limit
        self.retry_after = retry_after  # seconds until the limit lets this request through
        self.figures = figures
        self.too_large = too_large  # the request alone asks more tokens than the limit


@dataclass(frozen=True)
class _Window:
    """The token's buckets that still count, summed."""
    requests: int = 0
    tokens: int = 0
    newest: float | None = None  # the latest request counted
    newest_tokens: float | None = None  # the latest request of a bucket that counts tokens


# the range on the primary key bounds the rows read to the window's 61 seconds (a bucket's
# latest request is less than a second after its start); the latest request says whether
# the bucket still counts
_IN_WINDOW = "token_id = ? AND second > ? AND last_ts > ?"


def _in_window(token_id: int, now: float) -> tuple[int, float, float]:
    return token_id, now - WINDOW - 1, now - WINDOW


def _window(conn: sqlite3.Connection, token_id: int, now: float) -> _Window:
    requests, tokens, newest, newest_tokens = conn.execute(
        "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(tokens), 0), MAX(last_ts), "
        f"MAX(CASE WHEN tokens > 0 THEN last_ts END) FROM rate_buckets WHERE {_IN_WINDOW}",
        _in_window(token_id, now)).fetchone()
    return _Window(requests, tokens, newest, newest_tokens)


def _buckets(conn: sqlite3.Connection, token_id: int, now: float) -> list[tuple[float, int, int]]:
    """(latest request, requests, tokens) of the buckets that count, oldest first."""
    return conn.execute(f"SELECT last_ts, requests, tokens FROM rate_buckets WHERE {_IN_WINDOW} ORDER BY second",
                        _in_window(token_id, now)).fetchall()


def _figures(limits: Limits, window: _Window, now: float) -> Figures:
    requests = tokens = None
    if limits.rpm is not None:
        reset = window.newest + WINDOW - now if window.newest is not None else 0.0
        requests = Figure(limits.rpm, max(0, limits.rpm - window.requests), max(0.0, reset))
    if limits.tpm is not None:
        reset = window.newest_tokens + WINDOW - now if window.newest_tokens is not None else 0.0
        tokens = Figure(limits.tpm, max(0, limits.tpm - window.tokens), max(0.0, reset))
    return Figures(requests, tokens)


def _free_in(buckets: list[tuple[float, int]], limit: int, wanted: int, now: float) -> float:
    """Seconds until enough of the window's (latest request, amount) buckets have aged out
    for `wanted` more."""
    total = sum(amount for _, amount in buckets)
    for last_ts, amount in buckets:
        total -= amount
        if total + wanted <= limit:
            return last_ts + WINDOW - now
    return WINDOW


def peek(conn: sqlite3.Connection, token_id: int, limits: Limits, now: float) -> Figures:
    """The token's figures as they stand, taking nothing (for reads)."""
    return _figures(limits, _window(conn, token_id, now), now)


def take(conn: sqlite3.Connection, token_id: int, limits: Limits, tokens: int, owner: str,
         now: float) -> tuple[Hold, Figures]:
    """Check every limit the token has and, if all let the request through, count it; the
    figures then include it. Raises RateLimited, having taken nothing."""
    counting = limits.rpm is not None or limits.tpm is not None
    window = _Window()
    if counting:
        window = _window(conn, token_id, now)
    before = _figures(limits, window, now)
    if limits.rpm is not None and window.requests >= limits.rpm:
        buckets = [(last_ts, requests) for last_ts, requests, _ in _buckets(conn, token_id, now)]
        raise RateLimited("requests", limits.rpm, _free_in(buckets, limits.rpm, 1, now), before)
    if limits.tpm is not None:
        if tokens > limits.tpm:
            raise RateLimited("tokens", limits.tpm, WINDOW, before, too_large=True)
        if window.tokens + tokens > limits.tpm:
            buckets = [(last_ts, counted) for last_ts, _, counted in _buckets(conn, token_id, now)]
            raise RateLimited("tokens", limits.tpm, _free_in(buckets, limits.tpm, tokens, now), before)
    slot_id = None
    if limits.max_concurrency is not None:
        # the count and the slot in one statement: a slot is taken only while one is free
        taken = conn.execute("INSERT INTO inflight (token_id, owner, created_at) SELECT ?, ?, ? "
                             "WHERE (SELECT COUNT(*) FROM inflight WHERE token_id = ?) < ?",
                             [token_id, owner, now, token_id, limits.max_concurrency])
        if taken.rowcount == 0:
            # no clock says when a request in flight ends; a second is a fair first retry
            raise RateLimited("concurrency", limits.max_concurrency, 1.0, before)
        slot_id = taken.lastrowid
    counted = None
    if counting:
        second = math.floor(now)
        bucket_requests, bucket_tokens = conn.execute(
            "INSERT INTO rate_buckets (token_id, second, requests, tokens, last_ts) VALUES (?, ?, 1, ?, ?) "
            "ON CONFLICT (token_id, second) DO UPDATE SET requests = requests + 1, "
            "tokens = tokens + excluded.tokens, last_ts = MAX(last_ts, excluded.last_ts) RETURNING requests, tokens",
            [token_id, second, tokens, now]).fetchone()
        if bucket_requests == 1:
            # A new second's bucket: the token's buckets out of the window go, once a second
            # rather than on every request (the window's query skips them anyway).
            conn.execute("DELETE FROM rate_buckets WHERE token_id = ? AND second <= ? AND last_ts <= ?",
                         [token_id, now - WINDOW, now - WINDOW])
        counted = Counted(token_id, second, tokens)
        newest = max(now, window.newest) if window.newest is not None else now
        window = _Window(window.requests + 1, window.tokens + tokens, newest,
                         newest if bucket_tokens > 0 else window.newest_tokens)
    return Hold(counted, slot_id), _figures(limits, window, now)


def settle(conn: sqlite3.Connection, hold: Hold, tokens: int | None) -> None:
    """The request ended: its slot is free, and its tokens are the real ones (None: keep
    what was counted at admission)."""
    if hold.slot_id is not None:
        conn.execute("DELETE FROM inflight WHERE id = ?", [hold.slot_id])
    counted = hold.counted
    if counted is not None and tokens is not None and tokens != counted.tokens:
        # a bucket already out of the window (or pruned) no longer counts: correcting it is moot
        conn.execute("UPDATE rate_buckets SET tokens = tokens + ? WHERE token_id = ? AND second = ?",
                     [tokens - counted.tokens, counted.token_id, counted.second])


def release_stale(conn: sqlite3.Connection, older_than: float, keep_owner: str | None) -> int:
    """Free the slots of requests a dead process left in flight (see quota.release_stale),
    and forget requests of tokens no longer checked (each check prunes its own)."""
    conn.execute("DELETE FROM rate_buckets WHERE last_ts < ?", [older_than])
    return conn.execute("DELETE FROM inflight WHERE created_at < ? AND owner IS NOT ?",
                        [older_than, keep_owner]).rowcount
