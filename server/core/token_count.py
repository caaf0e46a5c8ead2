"""Counting a request's input tokens before it is sent (Anthropic's
`POST /v1/messages/count_tokens`): asked of the model's first channel whose upstream counts
(server/providers/interface.py `TokenCounter`: Anthropic's count_tokens, Gemini's
countTokens), counted by st-ai when none does or that upstream fails.

Not booked: no ledger row, no quota, no rate-limit figure, as Anthropic makes token
counting free and limits it apart from messages. The token must still be allowed the model,
as routing checks for every request."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from server import call_record, routing, upstream_errors
from server.catalog import Catalog
from server.errors import GatewayError
from server.providers.interface import NativeApis, TokenCounter
from server.providers.registry import Registry
from server.store.tokens import Token

log = logging.getLogger(__name__)
# the longest an upstream count is waited for before st-ai counts itself
COUNT_SECONDS = 30.0


@dataclass(frozen=True)
class CountRequest:
    api: str                             # the client API `body` is in ("messages")
    model: str                           # as the client named it
    body: dict                           # the client's body, for a channel that speaks `api`
    chat: Callable[[], dict]             # the body as chat, for any other (may raise a 400)
    local: Callable[[str], int]          # st-ai's own count, for an upstream model


@dataclass
class TokenCounting:
    catalog: Catalog
    registry: Registry

    async def count(self, token: Token, request: CountRequest, timeout: float | None = None) -> int:
        channels = routing.candidates(self.catalog.snapshot, token, request.model, self.registry.chat_types)
        providers = self.registry.chat
        for channel in channels:
            provider = providers[channel.type]
            if not isinstance(provider, TokenCounter):
                continue
            upstream_model = channel.upstream_model(request.model)
            native = request.api in channel.native_apis and isinstance(provider, NativeApis)
            api, body = (request.api, request.body) if native else ("chat", request.chat())
            seconds = min(timeout, COUNT_SECONDS) if timeout is not None else COUNT_SECONDS
            started = time.monotonic()
            try:
                tokens = await provider.count_tokens(channel, api, {**body, "model": upstream_model}, seconds)
            except GatewayError as error:
                call_record.note_attempt(channel.name, time.monotonic() - started)
                upstream_errors.for_client(error, channel, request.body)
                if not (error.retryable or error.channel_fault) and error.http_status < 500:
                    raise  # the request's own fault, in the upstream's words
                log.warning("channel %r could not count tokens (%s); counting locally", channel.name, error.code)
                break
            call_record.note_attempt(channel.name, time.monotonic() - started)
            return tokens
        return request.local(channels[0].upstream_model(request.model))
