"""The relay core: validate, route, call the provider, fall back, settle the request.
It speaks OpenAI-shaped dicts and knows neither HTTP nor protobuf."""
from __future__ import annotations

import asyncio
import contextlib
import time
import logging
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from server import call_record, routing, upstream_errors
from server.billing import estimate
from server.billing.admission import Admission, Outcome, Reservation, Ticket, failure_status
from server.billing.cost import chat_cost
from server.billing.usage_count import StreamMeter, TokenCounts, answer_texts, counted, from_usage
from server.catalog import Catalog
from server.core.attempts import AttemptLoop, Call, unreadable_answer
from server.core.exchange import EventStream, Exchange
from server.core.stream_pace import Pace
from server.draining import cancelled_status
from server.shielded_stream import ShieldedStream
from server.errors import GatewayError
from server.providers.interface import NativeApis
from server.providers.registry import Registry
from server.store.channels import Channel
from server.store.tokens import Token
from server.validation import validate_chat

# how long a stream whose client left is still read for the upstream's usage chunk, and
# the longest silence it is read through: an upstream still talking is about to send its
# usage, a silent one (thinking, stalled) is closed at once and the rest counted locally
DRAIN_GRACE = 3.0
DRAIN_GAP = 1.0
log = logging.getLogger(__name__)


@dataclass
class ChatRelay:
    catalog: Catalog
    registry: Registry
    admission: Admission
    attempts: AttemptLoop = field(default_factory=AttemptLoop)
    clock: Callable[[], float] = time.monotonic
    # settlements of streams whose client left, still reading the upstream's usage
    _draining: set[asyncio.Task] = field(default_factory=set)

    def _plan(self, token: Token, body: dict, exchange: Exchange | None) -> list[Channel]:
        if exchange is None:
            validate_chat(body)  # another API's request was checked as it was read
            return routing.candidates(self.catalog.snapshot, token, body["model"], self.registry.chat_types)
        channels = routing.candidates(self.catalog.snapshot, token, exchange.model, self.registry.chat_types)
        if exchange.refusal is None:
            return channels
        # Only a channel that speaks the API can take it (a built-in tool): the others are
        # skipped, not tried and refused; with none, the first one gives the refusal.
        providers = self.registry.chat
        return [c for c in channels if _speaks(providers[c.type], c, exchange.api)] or channels[:1]

    def _passes_through(self, channel: Channel, exchange: Exchange) -> bool:
        """The one choice, per channel, for a request in another API: True when the channel's
        upstream speaks it (the body goes as the client sent it), False when it is
        translated to chat completions. Raises the exchange's refusal where only a
        pass-through could serve it."""
        if _speaks(self.registry.chat[channel.type], channel, exchange.api):
            return True
        if exchange.refusal is not None:
            raise exchange.refusal
        return False

    async def _admit(self, ticket: Ticket, body: dict, channels: list[Channel]) -> estimate.Prompt:
        """Reserve the request's worst case: its prompt bounded for the first channel's
        upstream model (counted exactly only if the bound is refused), plus every output
        token it may generate. Returns the prompt's estimate."""
        model, upstream_model = body["model"], channels[0].upstream_model(body["model"])
        prompt = estimate.Prompt(body, upstream_model)
        most = estimate.max_output_tokens(body, upstream_model)

        def worst_case(tokens: int) -> Reservation:
            return (lambda price: chat_cost(price, model, prompt_tokens=tokens, completion_tokens=most),
                    tokens + most)
        await self.admission.admit(ticket, model, *worst_case(prompt.bound),
                                   exactly=lambda: worst_case(prompt.exact()))
        return prompt

    async def complete(self, token: Token, body: dict, timeout: float | None = None) -> dict:
        async with self.admission.request(token, "chat", body.get("model")) as ticket:
            return await self._complete(ticket, body, timeout)

    async def complete_exchange(self, token: Token, exchange: Exchange, timeout: float | None = None) -> dict:
        """A request in another client API (server/core/exchange.py), answered whole in it."""
        async with self.admission.request(token, "chat", exchange.model, api=exchange.api) as ticket:
            return await self._complete(ticket, exchange.chat, timeout, exchange)

    async def _complete(self, ticket: Ticket, body: dict, timeout: float | None,
                        exchange: Exchange | None = None) -> dict:
        body = _unstreamed(body)  # the unary call answers whole, whatever the body says
        channels = self._plan(ticket.token, body, exchange)
        deadline = self.attempts.deadline(timeout)
        prompt = await self._admit(ticket, body, channels)
        call = self._caller(body) if exchange is None else self._exchange_caller(body, exchange)
        try:
            won = await self.attempts.first(ticket, channels, body["model"], call, deadline, request=body)
        except BaseException as exc:
            self.admission.abandon(ticket, *failure_status(exc))
            raise
        answer, metered = won.value
        await self._settle_answer(ticket, won.channel, body, metered, prompt)
        return answer

    def _caller(self, body: dict) -> Call[tuple[dict, dict]]:
        """The attempt loop's call for a chat completion: the answer, and what it is billed
        by (itself)."""
        providers = self.registry.chat

        async def call(channel: Channel, budget: float) -> tuple[dict, dict]:
            completion = await providers[channel.type].complete(channel, _for_channel(body, channel), budget)
            return completion, completion
        return call

    def _exchange_caller(self, body: dict, exchange: Exchange) -> Call[tuple[dict, dict]]:
        """`_caller` for another client API: the answer in that API, and the chat-shaped
        answer it is billed by."""
        providers = self.registry.chat

        async def call(channel: Channel, budget: float) -> tuple[dict, dict]:
            provider = providers[channel.type]
            if self._passes_through(channel, exchange):
                native = await provider.native(channel, exchange.api,
                                               exchange.native_body(channel.upstream_model(exchange.model)), budget)
                return exchange.native_answer(native), exchange.metered(native)
            completion = await provider.complete(channel, _for_channel(body, channel), budget)
            return exchange.answer(completion), completion
        return call

    async def _settle_answer(self, ticket: Ticket, channel: Channel, body: dict, answer: dict,
                             prompt: estimate.Prompt) -> None:
        """Book a whole answer (a chat completion, or what another API's answer counts as)."""
        model, upstream_model = body["model"], channel.upstream_model(body["model"])
        counts = from_usage(answer.get("usage")) or counted(prompt.exact(), answer_texts(answer), upstream_model)
        await self.admission.settle(
            ticket, Outcome(200, channel.id, upstream_model, counts.prompt, counts.cached, counts.completion,
                            estimate=counts.estimate, cache_write_tokens=counts.cache_write),
            lambda price: chat_cost(price, model, prompt_tokens=counts.prompt, completion_tokens=counts.completion,
                                    cached_tokens=counts.cached, cache_write_tokens=counts.cache_write))

    async def stream(self, token: Token, body: dict, timeout: float | None = None) -> AsyncIterator[list[dict]]:
        """The client's chunks, in batches: each holds those that were ready together (one
        network read often brings several), at least one. A batch is never held back for
        more: what passes on per item then passes once per batch."""
        async with self.admission.request(token, "chat", body.get("model"), stream=True) as ticket:
            # closed here, not by the garbage collector: a client that leaves ends it at once
            async with contextlib.aclosing(self._stream(ticket, body, timeout)) as batches:
                async for batch in batches:
                    yield batch

    async def stream_exchange(self, token: Token, exchange: Exchange,
                              timeout: float | None = None) -> AsyncIterator[list[dict]]:
        """A request in another client API (server/core/exchange.py), answered as a stream of
        its events, in batches as `stream`'s chunks are. A failure after the first event
        ends the stream with the API's own error events instead of raising."""
        async with self.admission.request(token, "chat", exchange.model, stream=True, api=exchange.api) as ticket:
            async with contextlib.aclosing(self._stream(ticket, exchange.chat, timeout, exchange)) as batches:
                async for batch in batches:
                    yield batch

    async def _stream(self, ticket: Ticket, body: dict, timeout: float | None,
                      exchange: Exchange | None = None) -> AsyncIterator[list[dict]]:
        call_record.note_stream()
        channels = self._plan(ticket.token, body, exchange)
        deadline = self.attempts.deadline(timeout)
        started = self.clock()
        prompt = await self._admit(ticket, body, channels)
        shows_usage = exchange is None and bool((body.get("stream_options") or {}).get("include_usage"))
        request = body  # the client's own fields, before st-ai adds stream options
        # Ask for usage even when the client did not, so the request can be booked;
        # the usage chunk is then kept from the client.
        body = {**body, "stream": True, "stream_options": {**(body.get("stream_options") or {}),
                                                            "include_usage": True}}
        opener = (self._opener(body, deadline, shows_usage) if exchange is None
                  else self._exchange_opener(body, exchange, deadline))
        try:
            won = await self.attempts.first(ticket, channels, body["model"], opener,
                                            deadline, request=request, open_ended=True)
        except BaseException as exc:
            self.admission.abandon(ticket, *failure_status(exc))
            raise
        opened, channel = won.value, won.channel
        chunks, meter, events = opened.chunks, opened.meter, opened.events
        outcome = Outcome(200, channel.id, won.upstream_model)
        if opened.first:
            outcome.ttft_ms = int((self.clock() - started) * 1000)
        limits = self.attempts.resilience.timeouts_for(channel)
        pace = Pace(limits.idle, min(deadline, won.started + limits.total) if limits.total else deadline,
                    self.clock)
        handed_over = False  # the drain task owns `chunks` now
        try:
            if events is None:
                batch = opened.first and opened.first + _ready_shown(chunks, meter, pace, shows_usage)
                while batch:
                    meter.content_sent = True
                    yield batch
                    batch = (_ready_shown(chunks, meter, pace, shows_usage)
                             or await _next_shown(chunks, meter, pace, shows_usage))
            else:
                batch = opened.first
                while batch:
                    meter.content_sent = True
                    yield batch
                    batch = await _next_events(chunks, meter, pace, events)
            won.finish()  # before the request is settled: its row carries its attempts
            # Settled before the stream ends, so before the client's `data: [DONE]` (or
            # another API's closing events).
            counts = await self._settle_stream(ticket, outcome, meter, prompt)
            if events is not None and (closing := events.finish(_chat_usage(counts))):
                yield closing
        except (asyncio.CancelledError, GeneratorExit):
            outcome.status, outcome.error_code = cancelled_status()  # the client went away, or a shutdown's cut
            won.finish(outcome.status, outcome.error_code)
            if meter.content_sent:
                handed_over = True
                see = meter.saw if events is None else _metering(meter, events)
                self._drain_then_settle(chunks, see, ticket, outcome, meter, prompt)
            else:
                self.admission.abandon(ticket, outcome.status, outcome.error_code, outcome)
            raise
        except Exception as exc:
            if isinstance(exc, GatewayError):
                error = upstream_errors.for_client(exc, channel, request)
            else:  # the upstream's answer broke the reading of it
                log.exception("channel %r: reading the upstream's stream failed", channel.name)
                error = unreadable_answer()
            # past the first byte: no retry, the client gets an error event and is billed
            # for what it got
            outcome.status, outcome.error_code = error.http_status, error.code
            won.finish(error.http_status, error.code, error)
            await self._end_stream(ticket, outcome, meter, prompt)
            if events is not None:
                if failing := events.fail(error):
                    yield failing
                return
            if error is exc:
                raise
            raise error from None
        finally:
            pace.stop()
            if not handed_over:
                await chunks.aclose()

    def _opener(self, body: dict, deadline: float, shows_usage: bool) -> Call["_Opened"]:
        """The attempt loop's call for a stream: open it on a channel and return once its
        first event for the client arrived, the stream still open. The provider gets the
        whole stream's seconds; the loop holds the call to the first-byte budget."""
        providers = self.registry.chat

        async def open_stream(channel: Channel, budget: float) -> _Opened:
            chunks = ShieldedStream(providers[channel.type].stream(
                channel, _for_channel(body, channel), self._stream_seconds(channel, deadline)))
            meter = StreamMeter(channel.upstream_model(body["model"]))
            try:
                async for chunk in chunks:
                    meter.saw(chunk)
                    if _shown(chunk, shows_usage):
                        return _Opened(chunks, meter, [chunk])
                return _Opened(chunks, meter, [])
            except BaseException:  # failed, late or cancelled: nothing of it reached the client
                await chunks.aclose()
                raise
        return open_stream

    def _exchange_opener(self, body: dict, exchange: Exchange, deadline: float) -> Call["_Opened"]:
        """`_opener` for another client API: a channel that speaks it streams its own events
        through; any other streams chat chunks, translated. Either way the attempt is won
        with the client's first events."""
        providers = self.registry.chat

        async def open_stream(channel: Channel, budget: float) -> _Opened:
            provider, seconds = providers[channel.type], self._stream_seconds(channel, deadline)
            upstream_model = channel.upstream_model(exchange.model)
            if self._passes_through(channel, exchange):
                source = provider.native_stream(channel, exchange.api, exchange.native_body(upstream_model), seconds)
                events = exchange.native_events()
            else:
                source = provider.stream(channel, _for_channel(body, channel), seconds)
                events = exchange.translated_events()
            chunks = ShieldedStream(source)
            meter = StreamMeter(upstream_model)
            see = _metering(meter, events)
            try:
                async for item in chunks:
                    see(item)
                    if first := events.feed(item):
                        return _Opened(chunks, meter, first, events)
                return _Opened(chunks, meter, [], events)
            except BaseException:
                await chunks.aclose()
                raise
        return open_stream

    def _stream_seconds(self, channel: Channel, deadline: float) -> float:
        left, total = deadline - self.clock(), self.attempts.resilience.timeouts_for(channel).total
        return min(left, total) if total else left

    async def _settle_stream(self, ticket, outcome: Outcome, meter: StreamMeter, prompt: estimate.Prompt) -> TokenCounts:
        counts = meter.counts(prompt.exact)
        outcome.prompt_tokens, outcome.cached_tokens = counts.prompt, counts.cached
        outcome.completion_tokens, outcome.estimate = counts.completion, counts.estimate
        outcome.cache_write_tokens = counts.cache_write
        model = ticket.model
        await self.admission.settle(ticket, outcome, lambda price: chat_cost(
            price, model, prompt_tokens=counts.prompt, completion_tokens=counts.completion,
            cached_tokens=counts.cached, cache_write_tokens=counts.cache_write))
        return counts

    async def _end_stream(self, ticket, outcome: Outcome, meter: StreamMeter, prompt: estimate.Prompt) -> None:
        """A stream that failed: free if the client got nothing, else billed for what it got."""
        if meter.content_sent:
            await self._settle_stream(ticket, outcome, meter, prompt)
        else:
            self.admission.abandon(ticket, outcome.status, outcome.error_code, outcome)

    async def finish_draining(self) -> None:
        """Shutdown: streams whose client left settle first (each reads DRAIN_GRACE at most)."""
        if self._draining:
            await asyncio.wait(set(self._draining), timeout=DRAIN_GRACE + 5)

    def _drain_then_settle(self, chunks: AsyncIterator[dict], see: Callable[[dict], None], ticket,
                           outcome: Outcome, meter: StreamMeter, prompt: estimate.Prompt) -> None:
        """The client left mid-stream: what was generated is still owed. Keep reading the
        upstream for a short while for its usage chunk, then settle (counting locally if
        the usage never came). Runs on its own task: the client's task is being cancelled."""
        async def drain() -> None:
            pace = Pace(DRAIN_GAP, self.clock() + DRAIN_GRACE, self.clock)
            try:
                while meter.usage is None and (chunk := await pace.next(chunks)) is not None:
                    see(chunk)
            except GatewayError:
                pass
            except Exception:
                log.exception("reading the rest of an abandoned stream failed")
            finally:
                pace.stop()
                try:
                    await chunks.aclose()
                finally:
                    await self._settle_stream(ticket, outcome, meter, prompt)

        task = asyncio.get_running_loop().create_task(drain(), name="settle-abandoned-stream")
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)


@dataclass
class _Opened:
    """A stream that won its attempt: still open, its first events for the client read
    (empty: it ended without one). `events` makes another API's events (None: chat)."""
    chunks: ShieldedStream
    meter: StreamMeter
    first: list[dict]
    events: EventStream | None = None


def _shown(chunk: dict, shows_usage: bool) -> bool:
    """Whether the client sees `chunk`: the usage chunk st-ai asked for itself is kept back."""
    return shows_usage or not (chunk.get("usage") and not chunk.get("choices"))


def _ready_shown(chunks: ShieldedStream, meter: StreamMeter, pace: Pace, shows_usage: bool) -> list[dict]:
    """The client's chunks among those read ahead, taken without waiting (empty: none is
    ready). Chunks often come several to a network read: these skip the idle timer."""
    batch = []
    if (chunk := chunks.ready()) is None:
        return batch
    pace.check()  # once: the batch goes out together
    while chunk is not None:
        meter.saw(chunk)
        if _shown(chunk, shows_usage):
            batch.append(chunk)
        chunk = chunks.ready()
    return batch


async def _next_shown(chunks: ShieldedStream, meter: StreamMeter, pace: Pace, shows_usage: bool) -> list[dict]:
    """The client's next chunk once it comes, with those that came with it (empty at the
    stream's end)."""
    while (chunk := await pace.next(chunks)) is not None:
        meter.saw(chunk)
        if _shown(chunk, shows_usage):
            return [chunk, *_ready_shown(chunks, meter, pace, shows_usage)]
    return []


async def _next_events(chunks: ShieldedStream, meter: StreamMeter, pace: Pace, events: EventStream) -> list[dict]:
    """The client's next events (empty at the stream's end), reading as many upstream items
    as it takes."""
    see = _metering(meter, events)
    while (item := await pace.next(chunks)) is not None:
        see(item)
        if batch := events.feed(item):
            return batch
    return []


def _metering(meter: StreamMeter, events: EventStream) -> Callable[[dict], None]:
    def see(item: dict) -> None:
        if (chunk := events.metered(item)) is not None:
            meter.saw(chunk)
    return see


def _chat_usage(counts: TokenCounts) -> dict:
    """The counts a stream is billed at, as a chat usage object."""
    return {"prompt_tokens": counts.prompt, "completion_tokens": counts.completion,
            "total_tokens": counts.prompt + counts.completion,
            "prompt_tokens_details": {"cached_tokens": counts.cached, "cache_write_tokens": counts.cache_write}}


def _speaks(provider: object, channel: Channel, api: str) -> bool:
    """Whether `channel` is sent requests in `api` as they are (its upstream speaks it)."""
    return api in channel.native_apis and isinstance(provider, NativeApis)


def _unstreamed(body: dict) -> dict:
    if body.get("stream"):
        return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    return body


def _for_channel(body: dict, channel: Channel) -> dict:
    upstream_model = channel.upstream_model(body["model"])
    return body if upstream_model == body["model"] else {**body, "model": upstream_model}
