"""The one admit step and the one settle step around every request that uses a model.

request: the context every such request runs in from the moment its token authenticated;
it ends as exactly ONE ledger row. A request refused before it was admitted (bad body,
unknown or forbidden model, no channel, no price, no quota, a limit) is booked there, at
zero cost with its status and error code; admitted ones end through settle or abandon.
admit: reserve the request's worst-case cost from its token's quota before anything goes
upstream (429 `insufficient_quota` when the remaining quota cannot cover it).
settle: book the real cost (ledger row, its upstream attempts and the token's `used`, one
transaction, group committed) and release the rest; awaited before the client sees the
end of its answer.
abandon: a request that failed before any byte reached its client is booked at zero cost.

Transport-free: the relays call it with plain values. Costs are the pure functions of
server/billing/cost.py, prices come from memory (the catalog's snapshot); a model
without a price is served at zero cost, with one warning per model, or refused with 403
`model_not_priced` when the operator chose `--unpriced deny`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, NoReturn

from server import call_record, client_address, metrics, tracing
from server.billing import limits
from server.billing.cost import Unpriced
from server.billing.group_commit import GroupCommit
from server.billing.prices import ModelPrice
from server.catalog import Catalog
from server.draining import cancelled_status
from server.errors import GatewayError
from server.store import quota as quota_store
from server.store.channels import Channel
from server.store.db import DbWorker
from server.store.quota import Attempt, InsufficientQuota, LedgerRow, Settlement
from server.store.rate_limits import Hold, RateLimited
from server.store.tokens import Token

log = logging.getLogger("st-ai.billing")

# What a request costs given its model's price (None: no price); may raise Unpriced.
Charge = Callable[[ModelPrice | None], int]
# a request's worst case as reserved: its charge, and its tokens for a tokens-per-minute limit
Reservation = tuple[Charge, int]


def not_priced(model: str, what: str) -> GatewayError:
    shown = model if len(model) <= 80 else model[:80] + "\u2026"
    return GatewayError(403, f"The model '{shown}' has no price for {what} on this gateway, which serves "
                             "priced models only.", "model_not_priced", "model", type="permission_error")


def insufficient_quota() -> GatewayError:
    return GatewayError(429, "You exceeded your current quota: this token's remaining quota cannot "
                             "cover this request.", "insufficient_quota", type="insufficient_quota")


@dataclass
class Ticket:
    """One client request that uses a model: what it holds, what it tried upstream, and
    what its ledger row needs."""
    token: Token
    kind: str  # chat | images | embeddings | video
    stream: bool = False
    model: str | None = None  # the public model asked for
    price: ModelPrice | None = None
    reservation_id: int | None = None
    reserved: int = 0
    admitted: bool = False  # its worst case is reserved: settle or abandon ends it
    started: float = field(default_factory=time.monotonic)
    request_id: str | None = None
    client_address: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    settled: bool = False
    rate_hold: Hold | None = None  # what it counts against its token's rate limits
    api: str | None = None  # the client API it came in by; None: its kind's (quota_store.API_OF_KIND)

    def attempted(self, channel: Channel, upstream_model: str | None, status: int, error_code: str | None,
                  seconds: float) -> None:
        """An upstream call on `channel` ended with `status`; recorded before the request
        is settled, so its ledger row carries it."""
        call_record.note_attempt(channel.name, seconds)
        metrics.attempt(channel.name, status, error_code, seconds)
        if (record := call_record.current()) is not None:
            tracing.attempt(record.span, channel.name, upstream_model, status, error_code, seconds)
        self.attempts.append(Attempt(channel.id, upstream_model, status, error_code, int(seconds * 1000)))


@dataclass
class Outcome:
    """What a finished request did, for its ledger row."""
    status: int = 200
    channel_id: int | None = None
    upstream_model: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
    estimate: bool = False
    error_code: str | None = None
    ttft_ms: int | None = None
    cache_write_tokens: int = 0  # of prompt_tokens: written to the upstream's prompt cache


class _Opened:
    """`Admission.request`'s block. A class, not a generator: every request opens one."""
    __slots__ = ("_admission", "_ticket")

    def __init__(self, admission: "Admission", ticket: Ticket) -> None:
        self._admission, self._ticket = admission, ticket

    async def __aenter__(self) -> Ticket:
        self._admission.open_requests += 1  # until __aexit__, which a raise here skips
        try:
            return await self._enter()
        except BaseException:
            self._admission.open_requests -= 1
            raise

    async def _enter(self) -> Ticket:
        model = self._ticket.model
        if model is not None and model not in self._admission._catalog.snapshot.channels_by_model:
            await self._admission._catalog.catch_up()  # a channel added a moment ago serves its first request
        try:
            client_address.check(self._ticket.token, self._ticket.client_address)
        except BaseException as exc:
            await self._admission._reject(self._ticket, exc)
            raise
        return self._ticket

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._admission.open_requests -= 1
        if exc is not None and not self._ticket.admitted:
            await self._admission._reject(self._ticket, exc)


def _asked_model(model: object) -> str | None:
    # a client-chosen name can be anything: the ledger keeps a bounded part of a string
    return model[:call_record.MAX_NOTED_CHARS] if isinstance(model, str) and model else None


class Admission:
    def __init__(self, worker: DbWorker, writer: GroupCommit, owner: str, catalog: Catalog,
                 deny_unpriced: bool = False, clock: Callable[[], float] = time.time) -> None:
        self._worker = worker
        self._catalog = catalog
        self._clock = clock  # wall time: rate-limit windows are shared with other processes
        self._deny_unpriced = deny_unpriced
        self._writer = writer
        self._owner = owner
        self._warned: set[str] = set()
        self._releasing: set[asyncio.Future] = set()
        self.open_requests = 0  # opened and not yet ended: each may still reserve or settle

    def request(self, token: Token, kind: str, model: object = None,
                stream: bool = False, api: str | None = None) -> "_Opened":
        """The one way a request that uses a model is opened (`async with
        admission.request(...) as ticket`): whatever ends it before it was admitted is
        booked here, so no endpoint books its own refusals. `api`: the client API it came
        in by, when it is not its kind's own ("responses", "messages")."""
        if api is not None and api not in quota_store.APIS:  # a route's typo, caught by its first test
            raise ValueError(f"unknown client API {api!r}; one of {', '.join(quota_store.APIS)}")
        record = call_record.current()
        return _Opened(self, Ticket(token, kind, stream, _asked_model(model),
                                    request_id=record.request_id if record else None,
                                    client_address=record.client_address if record else None, api=api))

    async def refuse(self, token: Token, kind: str, model: object, error: GatewayError,
                     stream: bool = False, api: str | None = None) -> NoReturn:
        """A request refused before it could be opened (a body its route cannot read):
        booked as every refusal is, then raised."""
        async with self.request(token, kind, model, stream=stream, api=api):
            raise error

    async def _reject(self, ticket: Ticket, exc: BaseException) -> None:
        status, code = failure_status(exc)
        settlement = self._settlement(ticket, Outcome(status, error_code=code), 0)
        if settlement is None:
            return
        if isinstance(exc, GatewayError):
            await self._writer.commit(settlement)  # the refusal is an answer: booked before it is sent
        else:
            self._writer.submit(settlement)  # the client left, or st-ai failed: nobody waits on it

    async def admit(self, ticket: Ticket, model: str, worst_case: Charge, tokens: int = 0,
                    exactly: Callable[[], Reservation] | None = None) -> Ticket:
        """Reserve the worst case of a request about to be relayed (`tokens`: its most
        prompt and output tokens, for a tokens-per-minute limit), or refuse it. `exactly`:
        a tighter worst case, dearer to work out, tried before refusing the first."""
        ticket.model = model
        price = self._catalog.snapshot.prices.get(model)
        if self._deny_unpriced:
            try:
                worst_case(price)
            except Unpriced as exc:
                call_record.note_error("model_not_priced", 403)
                raise not_priced(model, exc.what) from None
        amount = self.cost(price, model, worst_case)
        try:
            try:
                taken = await self._reserve(ticket, amount, tokens)
            except (InsufficientQuota, RateLimited) as refusal:
                if exactly is None or (isinstance(refusal, RateLimited) and refusal.kind != "tokens"):
                    raise
                worst_case, exact_tokens = exactly()
                exact_amount = self.cost(price, model, worst_case)
                if (exact_amount, exact_tokens) == (amount, tokens):
                    raise
                amount, tokens = exact_amount, exact_tokens
                taken = await self._reserve(ticket, amount, tokens)
        except InsufficientQuota:
            call_record.note_error("insufficient_quota", 429)
            raise insufficient_quota() from None
        except RateLimited as exc:
            raise limits.refused(exc, tokens) from None
        limits.note_taken(taken.figures, taken.hold)
        ticket.price, ticket.reservation_id, ticket.reserved, ticket.admitted = price, taken.reservation_id, amount, True
        ticket.rate_hold = taken.hold
        return ticket

    async def _reserve(self, ticket: Ticket, amount: int, tokens: int) -> limits.Taken:
        # The client leaving while the reservation is written cancels the wait only: once
        # made, the reservation is given back (the group's `unclaimed`, or here when it was
        # made just as the cancellation came).
        reserving = self._writer.reserve(ticket.token, amount, tokens, self._owner, self._clock(),
                                         self._release_unused)
        try:
            return await reserving
        except asyncio.CancelledError:
            if reserving.done() and not reserving.cancelled() and reserving.exception() is None:
                self._release_unused(reserving.result())
            raise

    def _release_unused(self, taken: limits.Taken) -> None:
        if taken.reservation_id is None and taken.hold is None:
            return
        task = asyncio.ensure_future(self._worker.run(limits.release, taken))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    def price(self, model: str) -> ModelPrice | None:
        """The model's price now (a task settling long after its admission)."""
        return self._catalog.snapshot.prices.get(model)

    def cost(self, price: ModelPrice | None, model: str, charge: Charge) -> int:
        try:
            return charge(price)
        except Unpriced as exc:
            if model not in self._warned:
                self._warned.add(model)
                log.warning("%s: served at zero cost (set one with st-ai price set)", exc)
            return 0

    async def settle(self, ticket: Ticket, outcome: Outcome, charge: Charge) -> None:
        """Book the real cost; returns once it is committed."""
        settlement = self._settlement(ticket, outcome, self.cost(ticket.price, ticket.model, charge))
        if settlement is not None:
            await self._writer.commit(settlement)

    def abandon(self, ticket: Ticket, status: int, error_code: str | None, outcome: Outcome | None = None) -> None:
        """The request failed before any byte reached its client: it costs nothing. Not
        awaited: the client sees no answer whose booking it could rely on."""
        outcome = outcome or Outcome()
        outcome.status, outcome.error_code = status, error_code
        settlement = self._settlement(ticket, outcome, 0)
        if settlement is not None:
            self._writer.submit(settlement)

    def hand_over(self, ticket: Ticket) -> None:
        """The request is over, but its reservation now belongs to what outlives it (a video
        task, settled once it ends: server/billing/video_billing.py); nothing is booked here."""
        ticket.settled = True

    def _settlement(self, ticket: Ticket, outcome: Outcome, cost: int) -> Settlement | None:
        if ticket.settled:  # every path settles once, whichever ends the request
            return None
        ticket.settled = True
        limits.note_settled(ticket.rate_hold)
        channel_id, upstream_model = outcome.channel_id, outcome.upstream_model
        if channel_id is None and ticket.attempts:  # failed on every channel: name the last one tried
            channel_id, upstream_model = ticket.attempts[-1].channel_id, ticket.attempts[-1].upstream_model
        row = LedgerRow(ts=time.time(), request_id=ticket.request_id, token_id=ticket.token.id,
                        model=ticket.model, upstream_model=upstream_model,
                        channel_id=channel_id, kind=ticket.kind, status=outcome.status, cost=cost,
                        prompt_tokens=outcome.prompt_tokens, cached_tokens=outcome.cached_tokens,
                        completion_tokens=outcome.completion_tokens, images=outcome.images,
                        latency_ms=int((time.monotonic() - ticket.started) * 1000), ttft_ms=outcome.ttft_ms,
                        error_code=outcome.error_code, stream=ticket.stream,
                        client_address=ticket.client_address, estimate=outcome.estimate,
                        cache_write_tokens=outcome.cache_write_tokens, api=ticket.api)
        return Settlement(ticket.reservation_id, row, attempts=tuple(ticket.attempts), rate_hold=ticket.rate_hold)


def failure_status(exc: BaseException) -> tuple[int, str | None]:
    """The status and code a request that raised `exc` ended with."""
    if isinstance(exc, GatewayError):
        return exc.http_status, exc.code
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return cancelled_status()  # its client left, or a shutdown cut it
    return 500, "internal_error"


# A reservation older than the longest request could last belongs to a process that died.
STALE_MARGIN = 60.0


# How often a running st-ai looks for them: another process on the database may be killed
# while this one runs on, and nobody else would give its reservations back.
STALE_SWEEP_INTERVAL = 60.0


async def release_stale_reservations(worker: DbWorker, owner: str, upstream_timeout: float) -> None:
    released = await worker.run(quota_store.release_stale, time.time() - upstream_timeout - STALE_MARGIN, owner)
    if released:
        log.info("released %d reservations left by processes that stopped", released)


async def sweep_stale_reservations(worker: DbWorker, owner: str, upstream_timeout: float,
                                   interval: float = STALE_SWEEP_INTERVAL) -> None:
    """release_stale_reservations every `interval` seconds; runs until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            await release_stale_reservations(worker, owner, upstream_timeout)
        except Exception:  # a locked database: try again next time
            log.exception("releasing stale reservations failed")
