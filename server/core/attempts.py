"""The one attempt loop: every request that goes upstream (chat plain and streamed,
images, video submission) tries its channels through `AttemptLoop.first`.

Candidates are tried in routing's order, each at most once while others remain untried
(then the loop comes round again), up to `max_attempts` upstream calls, all inside one
deadline the request was given. A retryable failure (the network, a timeout before the
first byte, an upstream 429/5xx, a rejected channel key) moves on to the next channel
after a short jittered pause; anything else (the client's own fault, e.g. an upstream
400) is final at once. Each attempt is recorded on the request's ticket (its ledger row
carries them) and reported to channel health (circuit breaking, cooldowns).

A call's result counts as won once the call returns: for a stream, the call returns its
first event, so a stream falls back only until its first byte reaches the client, and
its caller records the winning attempt when the stream ends (`Won.finish`)."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Generic, Mapping, Protocol, Sequence, TypeVar

from server.billing.admission import Ticket
from server.core.resilience import Resilience
from server.core.time_limit import TimeLimit
from server.draining import cancelled_status
from server import call_record, upstream_errors
from server.errors import GatewayError, all_resting, upstreams_rate_limited
from server.store.channels import Channel

log = logging.getLogger("st_ai.attempts")
T = TypeVar("T")


class Health(Protocol):
    """What the loop tells channel health and asks it (server/core/channel_health.py)."""

    def usable(self, channel: Channel) -> bool:
        """Asked right before an attempt: True means the attempt is made now (so a channel
        whose cooldown is over may hand out its one trial)."""

    def succeeded(self, channel: Channel) -> None: ...

    def failed(self, channel: Channel, error: GatewayError) -> None: ...

    def abandoned(self, channel: Channel) -> None:
        """The attempt ended without an outcome (its client left): a trial it held is free."""


# One upstream call on a channel that must answer within `budget` seconds (its first
# byte: a plain answer, or a stream's first event). The loop also enforces the budget.
Call = Callable[[Channel, float], Awaitable[T]]


def out_of_time() -> GatewayError:
    return GatewayError(504, "The request ran out of time before an upstream answered.", "upstream_timeout")


def exhausted(last: GatewayError | None, model: str, retry_after: float | None = None) -> GatewayError:
    """What a client gets when no attempt answered: the last failure, except that upstreams
    rate limiting st-ai are a 503 (the gateway cannot serve now), not a 429 that would read
    as the client's own rate limit. `retry_after`: seconds until the soonest moment any
    tried channel said it may be asked again, told the client (its Retry-After)."""
    if last is None:
        return out_of_time()
    if last.http_status == 429:
        return upstreams_rate_limited(model, retry_after)
    last.retry_after = retry_after
    return last


def no_first_byte(seconds: float) -> GatewayError:
    return GatewayError(504, f"The upstream sent nothing within {seconds:g} seconds.", "upstream_timeout",
                        retryable=True)


def unreadable_answer() -> GatewayError:
    return GatewayError(502, "The upstream's answer could not be read.", "upstream_bad_answer", retryable=True)


@dataclass
class Won(Generic[T]):
    """The attempt that answered: its channel, what the call returned, and (for an
    open-ended call, a stream) the means to record how it finally ended."""
    channel: Channel
    value: T
    upstream_model: str
    started: float
    _loop: "AttemptLoop" = field(repr=False)
    _ticket: Ticket = field(repr=False)
    finished: bool = False

    def finish(self, status: int = 200, code: str | None = None, error: GatewayError | None = None) -> None:
        """Record the winning attempt's end (once): its status, and for channel health
        whether the channel failed after all (`error`, e.g. a stream that stalled)."""
        if self.finished:
            return
        self.finished = True
        self._ticket.attempted(self.channel, self.upstream_model, status, code, self._loop.clock() - self.started)
        if self._loop.health is not None:
            if error is not None and _counts_against_channel(error):
                self._loop.health.failed(self.channel, error)
            elif status < 500:  # 499 included: the client left, the channel did nothing wrong
                self._loop.health.succeeded(self.channel)


@dataclass
class AttemptLoop:
    resilience: Resilience = field(default_factory=Resilience)
    health: Health | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def deadline(self, timeout: float | None = None) -> float:
        """When a request starting now must be done: the gateway's total timeout, or the
        client's own (a gRPC deadline) when shorter."""
        total = self.resilience.timeouts.total or 600.0
        return self.clock() + (min(timeout, total) if timeout is not None else total)

    async def first(self, ticket: Ticket, channels: Sequence[Channel], model: str, call: Call[T],
                    deadline: float, request: Mapping | None = None, open_ended: bool = False) -> Won[T]:
        """The first answer any of `channels` gives for `model`, or the error that ends
        the request (each upstream error made fit for the client against `request`, the
        client's own body). `open_ended`: the caller records the winner's end (`Won.finish`)."""
        error: GatewayError | None = None
        soonest: float | None = None  # on the loop's clock: when some tried channel may be asked again
        tried: set[int] = set()
        at_fault: set[int] = set()
        for number in range(self.resilience.max_attempts):
            channel = self._next([c for c in channels if c.id not in at_fault], tried)
            if channel is None:
                if not tried:
                    raise all_resting(model)
                break
            if number:
                await self._pause(number, deadline)
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            tried.add(channel.id)
            upstream_model = channel.upstream_model(model)
            timeouts = self.resilience.timeouts_for(channel)
            budget = min(remaining, timeouts.first_byte or remaining, timeouts.total or remaining)
            started = self.clock()
            try:
                try:
                    async with TimeLimit(budget):
                        value = await call(channel, budget)
                except TimeoutError:
                    raise (no_first_byte(budget) if budget < remaining else out_of_time()) from None
                except GatewayError:
                    raise
                except Exception:  # the upstream's answer broke a provider's reading of it
                    log.exception("channel %r: reading the upstream's answer failed", channel.name)
                    raise unreadable_answer() from None
            except GatewayError as exc:
                upstream_errors.for_client(exc, channel, request)
                ticket.attempted(channel, upstream_model, exc.http_status, exc.code, self.clock() - started)
                error = exc
                if exc.retry_after is not None:
                    again = self.clock() + exc.retry_after
                    soonest = again if soonest is None else min(soonest, again)
                if self.health is not None and _counts_against_channel(exc):
                    self.health.failed(channel, exc)
                elif self.health is not None:
                    self.health.succeeded(channel)  # it answered: the request was at fault
                if exc.channel_fault:
                    at_fault.add(channel.id)  # its key, account or setup: asking it again cannot help
                if exc.retryable or exc.channel_fault:
                    continue
                raise
            except asyncio.CancelledError:  # the client went away, or the server is stopping
                ticket.attempted(channel, upstream_model, *cancelled_status(), self.clock() - started)
                if self.health is not None:
                    self.health.abandoned(channel)
                raise
            won = Won(channel, value, upstream_model, started, self, ticket)
            if not open_ended:
                won.finish()
            else:
                call_record.note_first_byte(channel.name, self.clock() - started)
            return won
        raise exhausted(error, model, None if soonest is None else max(0.0, soonest - self.clock()))

    def _next(self, channels: Sequence[Channel], tried: set[int]) -> Channel | None:
        """The first candidate not yet tried; once all were, round again from the best,
        skipping channels health has since put aside (cooling, disabled)."""
        for channel in channels:
            if channel.id not in tried and self._usable(channel):
                return channel
        for channel in channels:
            if self._usable(channel):
                return channel
        return None

    def _usable(self, channel: Channel) -> bool:
        return self.health is None or self.health.usable(channel)

    async def _pause(self, number: int, deadline: float) -> None:
        """A short jittered pause before attempt `number` (from 1): spreads the retries of
        many requests, and never runs past the deadline."""
        ceiling = min(self.resilience.backoff_max, self.resilience.backoff * 2 ** (number - 1))
        await self.sleep(max(0.0, min(random.uniform(0, ceiling), deadline - self.clock())))


def _counts_against_channel(error: GatewayError) -> bool:
    """Failures that say the channel (not the request) is in trouble."""
    return bool(error.retryable or error.channel_fault)
