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
from server.core.attempts import AttemptLoop
from server.shielded_stream import ShieldedStream
from server.errors import GatewayError
from server.providers.registry import Registry
from server.store.channels import Channel
from server.store.tokens import Token
from server.validation import validate_chat

# how long a stream whose client left is still read for the upstream's usage chunk
DRAIN_GRACE = 3.0
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
                            estimate=counts.estimate),
            lambda price: chat_cost(price, model, prompt_tokens=counts.prompt, completion_tokens=counts.completion,
                                    cached_tokens=counts.cached))
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
        client_wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        request = body  # the client's own fields, before st-ai adds stream options
        # Ask for usage even when the client did not, so the request can be booked;
        # the usage chunk is then kept from the client.
        body = {**body, "stream": True, "stream_options": {**(body.get("stream_options") or {}),
                                                            "include_usage": True}}
        error: GatewayError | None = None
        for channel in channels:
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            chunks = ShieldedStream(self.registry.chat[channel.type].stream(
                channel, _for_channel(body, channel), remaining))
            meter = StreamMeter(channel.upstream_model(body["model"]))
            outcome = Outcome(200, channel.id, channel.upstream_model(body["model"]))
            handed_over = False  # the drain task owns `chunks` now
            attempt_started = self.clock()

            def attempted() -> None:  # before the request is settled: its row carries its attempts
                ticket.attempted(channel, outcome.upstream_model, outcome.status, outcome.error_code,
                                 self.clock() - attempt_started)
            try:
                async for chunk in chunks:
                    meter.saw(chunk)
                    if chunk.get("usage") and not chunk.get("choices") and not client_wants_usage:
                        continue
                    if outcome.ttft_ms is None:
                        outcome.ttft_ms = int((self.clock() - started) * 1000)
                    meter.content_sent = True
                    yield chunk
                attempted()
                # Settled before the stream ends, so before the client's `data: [DONE]`.
                await self._settle_stream(ticket, outcome, meter, prompt)
                return
            except GatewayError as exc:
                exc = upstream_errors.for_client(exc, channel, request)
                outcome.status, outcome.error_code, error = exc.http_status, exc.code, exc
                attempted()
                if exc.retryable and not meter.content_sent:
                    continue
                await self._end_stream(ticket, outcome, meter, prompt)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                outcome.status, outcome.error_code = 499, "client_closed"  # the client went away
                attempted()
                if meter.content_sent:
                    handed_over = True
                    self._drain_then_settle(chunks, ticket, outcome, meter, prompt)
                else:
                    self.admission.abandon(ticket, 499, "client_closed", outcome)
                raise
            except Exception:
                outcome.status, outcome.error_code = 500, "internal_error"
                attempted()
                await self._end_stream(ticket, outcome, meter, prompt)
                raise
            finally:
                if not handed_over:
                    await chunks.aclose()
        self.admission.abandon(ticket, *failure_status(error or _out_of_time()))
        raise error or _out_of_time()

    async def _settle_stream(self, ticket, outcome: Outcome, meter: StreamMeter, prompt: int) -> None:
        counts = meter.counts(prompt)
        outcome.prompt_tokens, outcome.cached_tokens = counts.prompt, counts.cached
        outcome.completion_tokens, outcome.estimate = counts.completion, counts.estimate
        model = ticket.model
        await self.admission.settle(ticket, outcome, lambda price: chat_cost(
            price, model, prompt_tokens=counts.prompt, completion_tokens=counts.completion,
            cached_tokens=counts.cached))

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
            try:
                async with asyncio.timeout(DRAIN_GRACE):
                    async for chunk in chunks:
                        meter.saw(chunk)
                        if meter.usage is not None:
                            break
            except (TimeoutError, GatewayError):
                pass
            except Exception:
                log.exception("reading the rest of an abandoned stream failed")
            finally:
                try:
                    await chunks.aclose()
                finally:
                    await self._settle_stream(ticket, outcome, meter, prompt)

        task = asyncio.get_running_loop().create_task(drain(), name="settle-abandoned-stream")
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)


def _out_of_time() -> GatewayError:
    return GatewayError(504, "The request ran out of time before an upstream answered.", "upstream_timeout")


def _for_channel(body: dict, channel: Channel) -> dict:
    upstream_model = channel.upstream_model(body["model"])
    return body if upstream_model == body["model"] else {**body, "model": upstream_model}
