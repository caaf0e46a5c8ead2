"""A token's rate limits in the one admit step and the one settle step, and the figures a
client is told about them (OpenAI's `x-ratelimit-*` headers and `Retry-After`).

admit (server/billing/admission.py) has `reserve_in` run in the group commit's transaction
(server/billing/group_commit.py; `reserve` is the same in a transaction of its own): for a
token with limits, the limits are checked and taken (server/store/rate_limits.py) in the SAME
savepoint as the quota reservation, so a refused request holds nothing, and a request
the quota refuses does not count against the limits. A token without limits takes
exactly the quota's path: no extra statement. settle corrects the request's tokens to the
real ones and frees its slot, inside the settlement's own transaction.

Transport-free: figures travel on the call's CallRecord (`record.rate`), and the gRPC edge
(server/services/client_calls.py) turns them into metadata.
"""
from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

import sqlite_utils

from server import call_record
from server.errors import GatewayError
from server.store import quota as quota_store
from server.store import rate_limits as rate_store
from server.store.rate_limits import Figures, Hold, Limits, RateLimited
from server.store.tokens import Token

# what the bridge copies from response metadata to HTTP headers
HEADER_NAMES = tuple(f"x-ratelimit-{what}-{kind}" for kind in ("requests", "tokens")
                     for what in ("limit", "remaining", "reset")) + ("retry-after",)


@dataclass
class RateState:
    """A limited token's figures for one call: known after admission, or looked up for a
    read; `told` once they went out in the call's initial metadata."""
    token_id: int
    limits: Limits
    figures: Figures | None = None
    retry_after: int | None = None
    told: bool = False
    # a slot in flight not yet freed by a settlement: the call's end frees it (a video
    # create answers long before its task is settled)
    held: Hold | None = None

    @property
    def shown(self) -> bool:
        """Whether the client is told any figures (concurrency has no OpenAI header)."""
        return self.limits.rpm is not None or self.limits.tpm is not None


@dataclass(frozen=True)
class Taken:
    """What admission holds for a request: its quota reservation and its rate-limit hold."""
    reservation_id: int | None
    hold: Hold | None = None
    figures: Figures | None = None  # the limits' figures, this request counted


def note_token(token: Token) -> None:
    """The call's token is known: a limited one's figures will be wanted for its headers."""
    if (record := call_record.current()) is not None and token.limits.any:
        record.rate = RateState(token.id, token.limits)


def reserve(db: sqlite_utils.Database, token: Token, amount: int, tokens: int, owner: str, now: float) -> Taken:
    """Reserve `amount` of the token's quota and, for a limited token, count the request
    and its `tokens` against its limits, in one transaction. Raises RateLimited or
    quota.InsufficientQuota, having taken nothing."""
    with quota_store.write(db) as conn:
        return reserve_in(conn, token, amount, tokens, owner, now)


def reserve_in(conn: sqlite3.Connection, token: Token, amount: int, tokens: int, owner: str, now: float) -> Taken:
    """`reserve`, inside a write transaction the caller holds (server/billing/group_commit.py
    runs many in one)."""
    if not token.limits.any:
        return Taken(quota_store.reserve_in(conn, token.id, amount, owner))
    hold, figures = rate_store.take(conn, token.id, token.limits, tokens, owner, now)
    return Taken(quota_store.reserve_in(conn, token.id, amount, owner), hold, figures)


def release(db: sqlite_utils.Database, taken: Taken) -> None:
    """Give back what an admission took for a request that never went upstream."""
    if taken.reservation_id is not None:
        quota_store.release(db, taken.reservation_id)
    if taken.hold is not None:
        with quota_store.write(db) as conn:
            rate_store.settle(conn, taken.hold, 0)


def free_slot(db: sqlite_utils.Database, hold: Hold) -> None:
    with quota_store.write(db) as conn:
        rate_store.settle(conn, Hold(None, hold.slot_id), None)


def note_taken(figures: Figures | None, hold: Hold | None) -> None:
    note_figures(figures)
    if hold is not None and hold.slot_id is not None and isinstance(state := _state(), RateState):
        state.held = hold


def note_settled(hold: Hold | None) -> None:
    """The request's settlement frees its slot: nothing is left for the call's end."""
    if hold is not None and isinstance(state := _state(), RateState) and state.held == hold:
        state.held = None


def _state() -> object | None:
    record = call_record.current()
    return record.rate if record is not None else None


def peek(db: sqlite_utils.Database, state: RateState, now: float) -> Figures:
    return rate_store.peek(db.conn, state.token_id, state.limits, now)


def note_figures(figures: Figures | None, retry_after: float | None = None) -> None:
    """The call's figures, for its headers (on the event loop: the record is the call's)."""
    if isinstance(state := _state(), RateState) and figures is not None:
        state.figures = figures
        state.retry_after = max(1, math.ceil(retry_after)) if retry_after is not None else None


def refused(exc: RateLimited, tokens: int) -> GatewayError:
    """The 429 a client gets for a limit, with its figures noted for the headers."""
    note_figures(exc.figures, exc.retry_after)
    call_record.note_error("rate_limit_exceeded", 429)
    wait = max(1, math.ceil(exc.retry_after))
    if exc.kind == "concurrency":
        return GatewayError(429, f"Too many requests in flight for this API key: at most {exc.limit} at once. "
                                 f"Please try again in {wait}s.", "rate_limit_exceeded", type="requests")
    if exc.too_large:
        return GatewayError(429, f"Request too large for this API key's tokens per minute: Limit {exc.limit}, "
                                 f"Requested {tokens}. The input or max_tokens must be reduced in order to run "
                                 "successfully.", "rate_limit_exceeded", type="tokens")
    figure = exc.figures.requests if exc.kind == "requests" else exc.figures.tokens
    used = figure.limit - figure.remaining if figure is not None else exc.limit
    requested = 1 if exc.kind == "requests" else tokens
    return GatewayError(429, f"Rate limit reached for {exc.kind} per minute on this API key: Limit {exc.limit}, "
                             f"Used {used}, Requested {requested}. Please try again in {wait}s.",
                        "rate_limit_exceeded", type=exc.kind)


_REQUESTS_NAMES, _TOKENS_NAMES = HEADER_NAMES[0:3], HEADER_NAMES[3:6]


def headers(state: RateState) -> tuple[tuple[str, str], ...]:
    """The call's x-ratelimit-* (for the limits set) and Retry-After, as metadata."""
    out: list[tuple[str, str]] = []
    if state.figures is not None:
        for (limit, remaining, reset), figure in ((_REQUESTS_NAMES, state.figures.requests),
                                                  (_TOKENS_NAMES, state.figures.tokens)):
            if figure is not None:
                out += [(limit, str(figure.limit)), (remaining, str(figure.remaining)),
                        (reset, duration(figure.reset))]
    if state.retry_after is not None:
        out.append(("retry-after", str(state.retry_after)))
    return tuple(out)


def duration(seconds: float) -> str:
    """OpenAI's form of a reset time: `20ms`, `1s`, `8.64s`, `6m0s`."""
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms" if millis > 0 else "0ms"
    if millis < 60_000:  # a minute's window: most resets
        return _seconds(millis) + "s"
    minutes, millis = divmod(millis, 60_000)
    return f"{minutes}m{_seconds(millis)}s"


def _seconds(millis: int) -> str:
    """Whole milliseconds as seconds, without trailing zeros: 8640 -> `8.64`, 1000 -> `1`."""
    whole, part = divmod(millis, 1000)
    return f"{whole}.{part:03d}".rstrip("0") if part else str(whole)
