"""Chat against Anthropic's Messages API: `POST {base_url}/v1/messages` with `x-api-key`
and `anthropic-version` (the channel's `--api-version`, else the current version)."""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator, Callable

import aiohttp

from server.api_client import Answer
from server.errors import GatewayError, unreachable
from server.providers import failures
from server.providers.anthropic import answer, errors, request
from server.providers.anthropic.models import CURRENT_VERSION, rules
from server.providers.anthropic.stream import StreamError, Translator
from server.providers.interface import Upstream
from server.providers.json_body import json_body
from server.providers.sse import data_events
from server.providers.timeouts import client_timeout
from server.store.channels import Channel

API_PATH = "/v1"


def messages_url(channel: Channel) -> str:
    # The base URL may be given with or without the API's /v1.
    base = channel.base_url.rstrip("/")
    return f"{base.removesuffix(API_PATH)}{API_PATH}/messages"


def headers(channel: Channel, accept: str = "application/json") -> dict[str, str]:
    return {"x-api-key": channel.key, "anthropic-version": channel.api_version or CURRENT_VERSION,
            "content-type": "application/json", "accept": accept}


def upstream_body(channel: Channel, body: dict, stream: bool = False) -> dict:
    return request.messages_request(body, rules(body["model"], channel.api_version or CURRENT_VERSION), stream)


class AnthropicChat:
    """Chat translated to the Messages API, the Messages API passed through (NativeApis),
    and Anthropic's token counting (TokenCounter)."""

    def __init__(self, upstream: Upstream, clock: Callable[[], float] = time.time) -> None:
        self._http = upstream.calls
        self._clock = clock

    async def complete(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        message = await self._post(channel, messages_url(channel), upstream_body(channel, body), timeout)
        with failures.reading(errors.WHO):
            return answer.completion(message, int(self._clock()))

    async def stream(self, channel: Channel, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        translator = Translator(int(self._clock()), bool((body.get("stream_options") or {}).get("include_usage")))
        async with self._opened(channel, upstream_body(channel, body, stream=True), timeout) as resp:
            async with contextlib.aclosing(data_events(resp.content)) as events:
                async for data in events:
                    event = failures.json_object(data, errors.WHO)
                    try:
                        with failures.reading(errors.WHO):
                            chunks = translator.feed(event)
                    except StreamError as exc:
                        raise errors.from_stream_event(exc.error, channel) from None
                    for chunk in chunks:
                        yield chunk
                    if translator.done:
                        return
        raise failures.bad_answer(errors.WHO, "a stream that ended before its message_stop")

    async def native(self, channel: Channel, api: str, body: dict, timeout: float | None) -> dict:
        _only_messages(api)
        if body.get("stream"):  # answered whole, whatever the body says (a gRPC CreateMessage)
            body = {k: v for k, v in body.items() if k != "stream"}
        return await self._post(channel, messages_url(channel), body, timeout)

    async def native_stream(self, channel: Channel, api: str, body: dict,
                            timeout: float | None) -> AsyncIterator[dict]:
        _only_messages(api)
        sent = body if body.get("stream") is True else {**body, "stream": True}
        async with self._opened(channel, sent, timeout) as resp:
            async with contextlib.aclosing(data_events(resp.content)) as events:
                async for data in events:
                    event = failures.json_object(data, errors.WHO)
                    if event.get("type") == "error":
                        raise errors.from_stream_event(event.get("error"), channel)
                    yield event
                    if event.get("type") == "message_stop":
                        return
        raise failures.bad_answer(errors.WHO, "a stream that ended before its message_stop")

    async def count_tokens(self, channel: Channel, api: str, body: dict, timeout: float | None) -> int:
        """`POST /v1/messages/count_tokens`: a Messages body as it is, a chat body translated
        (without what only creating a message takes)."""
        if api == "chat":
            body = {k: v for k, v in upstream_body(channel, body).items() if k in request.COUNTED}
        else:
            _only_messages(api)
        counted = await self._post(channel, messages_url(channel) + "/count_tokens", body, timeout)
        tokens = counted.get("input_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            raise failures.bad_answer(errors.WHO, "a token count without its input_tokens")
        return tokens

    async def _post(self, channel: Channel, url: str, sent: dict, timeout: float | None) -> dict:
        """One call answered with a JSON object; Anthropic's errors as the gateway's."""
        try:
            async with self._http.post(url, data=json_body(sent), headers=headers(channel),
                                       timeout=client_timeout(channel, timeout)) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise errors.from_response(resp.status, raw, channel, resp.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise unreachable(exc, errors.WHO) from None
        return failures.json_object(raw, errors.WHO)

    @contextlib.asynccontextmanager
    async def _opened(self, channel: Channel, sent: dict, timeout: float | None
                      ) -> AsyncIterator[Answer]:
        """A streamed call's answer once its status is a success; upstream failures, while it
        opens and while its events are read, as GatewayErrors. (A context, not a generator of
        events: each event then passes no extra generator on its way.)"""
        try:
            async with self._http.post(messages_url(channel), data=json_body(sent),
                                       headers=headers(channel, "text/event-stream"),
                                       timeout=client_timeout(channel, timeout)) as resp:
                if resp.status >= 400:
                    raise errors.from_response(resp.status, await resp.read(), channel, resp.headers)
                yield resp
        except GatewayError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise unreachable(exc, errors.WHO) from None
        except ValueError:  # data_events: an event larger than st-ai reads
            raise failures.bad_answer(errors.WHO, "an event too large to read") from None


def _only_messages(api: str) -> None:
    if api != "messages":
        raise ValueError(f"an anthropic channel speaks the Messages API, not {api!r}")
