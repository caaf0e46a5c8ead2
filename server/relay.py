"""The relay core: validate, route, call the provider, fall back, book usage.
It speaks OpenAI-shaped dicts and knows neither HTTP nor protobuf."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from server import call_record, routing, upstream_errors
from server.billing import estimate
from server.billing.admission import Admission, Outcome, failure_status
from server.billing.cost import chat_cost
from server.billing.usage_count import answer_texts, counted, from_usage
from server.catalog import Catalog
from server.errors import GatewayError
from server.providers.registry import Registry
from server.store.channels import Channel
from server.store.tokens import Token
from server.store.usage import UsageRecord
from server.usage import UsageRecorder
from server.validation import validate_chat

DEFAULT_UPSTREAM_TIMEOUT = 600.0


@dataclass
class ChatRelay:
    catalog: Catalog
    registry: Registry
    usage: UsageRecorder
    admission: Admission
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    clock: Callable[[], float] = time.monotonic

    def _plan(self, token: Token, body: dict) -> list[Channel]:
        validate_chat(body)
        return routing.candidates(self.catalog.snapshot, token, body["model"], self.registry.chat_types)

    def _budget(self, timeout: float | None) -> float:
        return min(timeout, self.upstream_timeout) if timeout is not None else self.upstream_timeout

    async def _admit(self, token: Token, body: dict, channels: list[Channel], stream: bool):
        """Reserve the request's worst case: its prompt counted for the first channel's
        upstream model, plus every output token it may generate."""
        model, upstream_model = body["model"], channels[0].upstream_model(body["model"])
        prompt = estimate.prompt_tokens(body, upstream_model)
        most = estimate.max_output_tokens(body, upstream_model)
        ticket = await self.admission.admit(
            token, model, "chat", lambda price: chat_cost(price, model, prompt_tokens=prompt, completion_tokens=most),
            stream=stream)
        return ticket, prompt

    async def complete(self, token: Token, body: dict, timeout: float | None = None) -> dict:
        if body.get("stream"):  # the unary call answers whole, whatever the body says
            body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        channels = self._plan(token, body)
        deadline = self.clock() + self._budget(timeout)
        ticket, prompt = await self._admit(token, body, channels, stream=False)
        try:
            answer, channel = await self._complete_on(channels, token, body, deadline)
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

    async def _complete_on(self, channels: list[Channel], token: Token, body: dict,
                           deadline: float) -> tuple[dict, Channel]:
        started = self.clock()
        error: GatewayError | None = None
        for channel in channels:
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            try:
                answer = await self.registry.chat[channel.type].complete(
                    channel, _for_channel(body, channel), remaining)
            except GatewayError as exc:
                exc = upstream_errors.for_client(exc, channel, body)
                self._book(token, channel, body, False, exc.http_status, None, started)
                error = exc
                if exc.retryable:
                    continue
                raise
            except asyncio.CancelledError:
                self._book(token, channel, body, False, 499, None, started)  # the client went away
                raise
            self._book(token, channel, body, False, 200, answer.get("usage"), started)
            return answer, channel
        raise error or _out_of_time()

    async def stream(self, token: Token, body: dict, timeout: float | None = None) -> AsyncIterator[dict]:
        call_record.note_stream()
        channels = self._plan(token, body)
        deadline = self.clock() + self._budget(timeout)
        started = self.clock()
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
            chunks = self.registry.chat[channel.type].stream(channel, _for_channel(body, channel), remaining)
            usage = None
            sent = False
            status = 200
            try:
                async for chunk in chunks:
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                        if not chunk.get("choices") and not client_wants_usage:
                            continue
                    sent = True
                    yield chunk
                return
            except GatewayError as exc:
                exc = upstream_errors.for_client(exc, channel, request)
                status, error = exc.http_status, exc
                if exc.retryable and not sent:
                    continue
                raise
            except (asyncio.CancelledError, GeneratorExit):
                status = 499  # the client went away
                raise
            except Exception:
                status = 500
                raise
            finally:
                await chunks.aclose()
                self._book(token, channel, body, True, status, usage, started)
        raise error or _out_of_time()

    def _book(self, token: Token, channel: Channel, body: dict, stream: bool, status: int,
              usage: dict | None, started: float) -> None:
        call_record.note_attempt(channel.name, self.clock() - started)
        usage = usage if isinstance(usage, dict) else {}

        def count(key: str) -> int:
            value = usage.get(key)
            return value if isinstance(value, int) else 0

        self.usage.record(UsageRecord(
            ts=int(time.time()), token_id=token.id, channel_id=channel.id, model=body["model"],
            upstream_model=channel.upstream_model(body["model"]), kind="chat", stream=stream,
            status=status, prompt_tokens=count("prompt_tokens"),
            completion_tokens=count("completion_tokens"), total_tokens=count("total_tokens"),
            latency_ms=int((self.clock() - started) * 1000)))


def _out_of_time() -> GatewayError:
    return GatewayError(504, "The request ran out of time before an upstream answered.", "upstream_timeout")


def _for_channel(body: dict, channel: Channel) -> dict:
    upstream_model = channel.upstream_model(body["model"])
    return body if upstream_model == body["model"] else {**body, "model": upstream_model}
