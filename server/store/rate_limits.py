"""A token's rate limits in the database: requests and tokens of the last minute, and the
requests it has in flight, shared by every st-ai process on the file.

Counters are a sliding log (one `rate_events` row per admitted request, with the tokens it
counts; rows older than the window are pruned as the token is checked), so a minute is
any 60 seconds, not a calendar minute, and a limit can never be doubled at a window's
edge. Requests in flight are rows of `inflight` with their process's owner, released when
the request is settled and swept like quota reservations when their process died.

Every function here works on a connection inside a write transaction its caller holds
(server/billing/limits.py: the same `BEGIN IMMEDIATE` transaction as the quota
reservation and the settlement), so a check and its take cannot be split by another
process. The clock is a parameter: tests move it, nothing sleeps.
"""
from __future__ import annotations

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
class Hold:
    """What an admitted request took: its log row (corrected at settlement) and its slot."""
    event_id: int | None
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


def _window(conn: sqlite3.Connection, token_id: int, now: float) -> list[tuple[float, int]]:
    """(ts, tokens) of the token's requests in the window, oldest first."""
    return conn.execute("SELECT ts, tokens FROM rate_events WHERE token_id = ? AND ts > ? ORDER BY ts",
                        [token_id, now - WINDOW]).fetchall()


def _figures(limits: Limits, events: list[tuple[float, int]], now: float) -> Figures:
    requests = tokens = None
    if limits.rpm is not None:
        reset = events[-1][0] + WINDOW - now if events else 0.0
        requests = Figure(limits.rpm, max(0, limits.rpm - len(events)), max(0.0, reset))
    if limits.tpm is not None:
        counted = [ts for ts, n in events if n > 0]
        reset = counted[-1] + WINDOW - now if counted else 0.0
        tokens = Figure(limits.tpm, max(0, limits.tpm - sum(n for _, n in events)), max(0.0, reset))
    return Figures(requests, tokens)


def _tokens_free_in(events: list[tuple[float, int]], limit: int, wanted: int, now: float) -> float:
    """Seconds until enough of the window's tokens have aged out for `wanted` more."""
    total = sum(n for _, n in events)
    for ts, n in events:
        total -= n
        if total + wanted <= limit:
            return ts + WINDOW - now
    return WINDOW


def peek(conn: sqlite3.Connection, token_id: int, limits: Limits, now: float) -> Figures:
    """The token's figures as they stand, taking nothing (for reads)."""
    return _figures(limits, _window(conn, token_id, now), now)


def take(conn: sqlite3.Connection, token_id: int, limits: Limits, tokens: int, owner: str,
         now: float) -> tuple[Hold, Figures]:
    """Check every limit the token has and, if all let the request through, count it; the
    figures then include it. Raises RateLimited, having taken nothing."""
    conn.execute("DELETE FROM rate_events WHERE token_id = ? AND ts <= ?", [token_id, now - WINDOW])
    events = _window(conn, token_id, now) if limits.rpm is not None or limits.tpm is not None else []
    before = _figures(limits, events, now)
    if limits.rpm is not None and len(events) >= limits.rpm:
        raise RateLimited("requests", limits.rpm, events[len(events) - limits.rpm][0] + WINDOW - now, before)
    if limits.tpm is not None:
        if tokens > limits.tpm:
            raise RateLimited("tokens", limits.tpm, WINDOW, before, too_large=True)
        if sum(n for _, n in events) + tokens > limits.tpm:
            raise RateLimited("tokens", limits.tpm, _tokens_free_in(events, limits.tpm, tokens, now), before)
    slot_id = None
    if limits.max_concurrency is not None:
        in_flight = conn.execute("SELECT COUNT(*) FROM inflight WHERE token_id = ?", [token_id]).fetchone()[0]
        if in_flight >= limits.max_concurrency:
            # no clock says when a request in flight ends; a second is a fair first retry
            raise RateLimited("concurrency", limits.max_concurrency, 1.0, before)
        slot_id = conn.execute("INSERT INTO inflight (token_id, owner, created_at) VALUES (?, ?, ?)",
                               [token_id, owner, now]).lastrowid
    event_id = None
    if limits.rpm is not None or limits.tpm is not None:
        event_id = conn.execute("INSERT INTO rate_events (token_id, ts, tokens) VALUES (?, ?, ?)",
                                [token_id, now, tokens]).lastrowid
        events = [*events, (now, tokens)]
    return Hold(event_id, slot_id), _figures(limits, events, now)


def settle(conn: sqlite3.Connection, hold: Hold, tokens: int | None) -> None:
    """The request ended: its slot is free, and its tokens are the real ones (None: keep
    what was counted at admission)."""
    if hold.slot_id is not None:
        conn.execute("DELETE FROM inflight WHERE id = ?", [hold.slot_id])
    if hold.event_id is not None and tokens is not None:
        conn.execute("UPDATE rate_events SET tokens = ? WHERE id = ?", [tokens, hold.event_id])


def release_stale(conn: sqlite3.Connection, older_than: float, keep_owner: str | None) -> int:
    """Free the slots of requests a dead process left in flight (see quota.release_stale),
    and forget requests of tokens no longer checked (each check prunes its own)."""
    conn.execute("DELETE FROM rate_events WHERE ts < ?", [older_than])
    return conn.execute("DELETE FROM inflight WHERE created_at < ? AND owner IS NOT ?",
                        [older_than, keep_owner]).rowcount
