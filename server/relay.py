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
from server.billing.admission import Admission, Outcome, Ticket, failure_status
from server.billing.cost import chat_cost
from server.billing.usage_count import StreamMeter, answer_texts, counted, from_usage
from server.catalog import Catalog
from server.core.attempts import AttemptLoop, Call, unreadable_answer
from server.core.stream_pace import Pace
from server.shielded_stream import ShieldedStream
from server.errors import GatewayError
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

    def _plan(self, token: Token, body: dict) -> list[Channel]:
        validate_chat(body)
        return routing.candidates(self.catalog.snapshot, token, body["model"], self.registry.chat_types)

    async def _admit(self, ticket: Ticket, body: dict, channels: list[Channel]) -> int:
        """Reserve the request's worst case: its prompt counted for the first channel's
        upstream model, plus every output token it may generate. Returns that prompt count."""
        model, upstream_model = body["model"], channels[0].upstream_model(body["model"])
        prompt = estimate.prompt_tokens(body, upstream_model)
        most = estimate.max_output_tokens(body, upstream_model)
        await self.admission.admit(
            ticket, model, lambda price: chat_cost(price, model, prompt_tokens=prompt, completion_tokens=most),
            tokens=prompt + most)
        return prompt

    async def complete(self, token: Token, body: dict, timeout: float | None = None) -> dict:
        async with self.admission.request(token, "chat", body.get("model")) as ticket:
            return await self._complete(ticket, body, timeout)

    async def _complete(self, ticket: Ticket, body: dict, timeout: float | None) -> dict:
        if body.get("stream"):  # the unary call answers whole, whatever the body says
            body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        channels = self._plan(ticket.token, body)
        deadline = self.attempts.deadline(timeout)
        prompt = await self._admit(ticket, body, channels)
        try:
            answer, channel = await self._complete_on(channels, ticket, body, deadline)
        except BaseException as exc:
            self.admission.abandon(ticket, *failure_status(exc))
            raise
        model, upstream_model = body["model"], channel.upstream_model(body["model"])
        counts = from_usage(answer.get("usage")) or counted(prompt, answer_texts(answer), upstream_model)
        await self.admission.settle(
            ticket, Outcome(200, channel.id, upstream_model, counts.prompt, counts.cached, counts.completion,
                            estimate=counts.estimate, cache_write_tokens=counts.cache_write),
            lambda price: chat_cost(price, model, prompt_tokens=counts.prompt, completion_tokens=counts.completion,
                                    cached_tokens=counts.cached, cache_write_tokens=counts.cache_write))
        return answer

    async def _complete_on(self, channels: list[Channel], ticket: Ticket, body: dict,
                           deadline: float) -> tuple[dict, Channel]:
        provider = self.registry.chat

        def call(channel: Channel, budget: float):
            return provider[channel.type].complete(channel, _for_channel(body, channel), budget)
        won = await self.attempts.first(ticket, channels, body["model"], call, deadline, request=body)
        return won.value, won.channel

    async def stream(self, token: Token, body: dict, timeout: float | None = None) -> AsyncIterator[dict]:
        async with self.admission.request(token, "chat", body.get("model"), stream=True) as ticket:
            # closed here, not by the garbage collector: a client that leaves ends it at once
            async with contextlib.aclosing(self._stream(ticket, body, timeout)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def _stream(self, ticket: Ticket, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        call_record.note_stream()
        channels = self._plan(ticket.token, body)
        deadline = self.attempts.deadline(timeout)
        started = self.clock()
        prompt = await self._admit(ticket, body, channels)
        shows_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        request = body  # the client's own fields, before st-ai adds stream options
        # Ask for usage even when the client did not, so the request can be booked;
        # the usage chunk is then kept from the client.
        body = {**body, "stream": True, "stream_options": {**(body.get("stream_options") or {}),
                                                            "include_usage": True}}
        try:
            won = await self.attempts.first(ticket, channels, body["model"], self._opener(body, deadline, shows_usage),
                                            deadline, request=request, open_ended=True)
        except BaseException as exc:
            self.admission.abandon(ticket, *failure_status(exc))
            raise
        opened, channel = won.value, won.channel
        chunks, meter = opened.chunks, opened.meter
        outcome = Outcome(200, channel.id, won.upstream_model)
        if opened.first is not None:
            outcome.ttft_ms = int((self.clock() - started) * 1000)
        limits = self.attempts.resilience.timeouts_for(channel)
        pace = Pace(limits.idle, min(deadline, won.started + limits.total) if limits.total else deadline,
                    self.clock)
        handed_over = False  # the drain task owns `chunks` now
        try:
            chunk = opened.first
            while chunk is not None:
                meter.content_sent = True
                yield chunk
                chunk = await _next_shown(chunks, meter, pace, shows_usage)
            won.finish()  # before the request is settled: its row carries its attempts
            # Settled before the stream ends, so before the client's `data: [DONE]`.
            await self._settle_stream(ticket, outcome, meter, prompt)
        except (asyncio.CancelledError, GeneratorExit):
            outcome.status, outcome.error_code = 499, "client_closed"  # the client went away
            won.finish(499, "client_closed")
            if meter.content_sent:
                handed_over = True
                self._drain_then_settle(chunks, ticket, outcome, meter, prompt)
            else:
                self.admission.abandon(ticket, 499, "client_closed", outcome)
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
            left, total = deadline - self.clock(), self.attempts.resilience.timeouts_for(channel).total
            seconds = min(left, total) if total else left
            chunks = ShieldedStream(providers[channel.type].stream(channel, _for_channel(body, channel), seconds))
            meter = StreamMeter(channel.upstream_model(body["model"]))
            try:
                async for chunk in chunks:
                    meter.saw(chunk)
                    if _shown(chunk, shows_usage):
                        return _Opened(chunks, meter, chunk)
                return _Opened(chunks, meter, None)
            except BaseException:  # failed, late or cancelled: nothing of it reached the client
                await chunks.aclose()
                raise
        return open_stream

    async def _settle_stream(self, ticket, outcome: Outcome, meter: StreamMeter, prompt: int) -> None:
        counts = meter.counts(prompt)
        outcome.prompt_tokens, outcome.cached_tokens = counts.prompt, counts.cached
        outcome.completion_tokens, outcome.estimate = counts.completion, counts.estimate
        outcome.cache_write_tokens = counts.cache_write
        model = ticket.model
        await self.admission.settle(ticket, outcome, lambda price: chat_cost(
            price, model, prompt_tokens=counts.prompt, completion_tokens=counts.completion,
            cached_tokens=counts.cached, cache_write_tokens=counts.cache_write))

    async def _end_stream(self, ticket, outcome: Outcome, meter: StreamMeter, prompt: int) -> None:
        """A stream that failed: free if the client got nothing, else billed for what it got."""
        if meter.content_sent:
            await self._settle_stream(ticket, outcome, meter, prompt)
        else:
            self.admission.abandon(ticket, outcome.status, outcome.error_code, outcome)

    async def finish_draining(self) -> None:
        """Shutdown: streams whose client left settle first (each reads DRAIN_GRACE at most)."""
        if self._draining:
            await asyncio.wait(set(self._draining), timeout=DRAIN_GRACE + 5)

    def _drain_then_settle(self, chunks: AsyncIterator[dict], ticket, outcome: Outcome,
                           meter: StreamMeter, prompt: int) -> None:
        """The client left mid-stream: what was generated is still owed. Keep reading the
        upstream for a short while for its usage chunk, then settle (counting locally if
        the usage never came). Runs on its own task: the client's task is being cancelled."""
        async def drain() -> None:
            pace = Pace(DRAIN_GAP, self.clock() + DRAIN_GRACE, self.clock)
            try:
                while meter.usage is None and (chunk := await pace.next(chunks)) is not None:
                    meter.saw(chunk)
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
    """A stream that won its attempt: still open, its first event for the client read
    (None: it ended without one)."""
    chunks: ShieldedStream
    meter: StreamMeter
    first: dict | None


def _shown(chunk: dict, shows_usage: bool) -> bool:
    """Whether the client sees `chunk`: the usage chunk st-ai asked for itself is kept back."""
    return shows_usage or not (chunk.get("usage") and not chunk.get("choices"))


async def _next_shown(chunks: ShieldedStream, meter: StreamMeter, pace: Pace, shows_usage: bool) -> dict | None:
    while (chunk := await pace.next(chunks)) is not None:
        meter.saw(chunk)
        if _shown(chunk, shows_usage):
            return chunk
    return None


def _for_channel(body: dict, channel: Channel) -> dict:
    upstream_model = channel.upstream_model(body["model"])
    return body if upstream_model == body["model"] else {**body, "model": upstream_model}
