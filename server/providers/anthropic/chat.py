"""Chat against Anthropic's Messages API: `POST {base_url}/v1/messages` with `x-api-key`
and `anthropic-version` (the channel's `--api-version`, else the current version)."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Callable

import aiohttp

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
    def __init__(self, upstream: Upstream, clock: Callable[[], float] = time.time) -> None:
        self._http = upstream.http
        self._clock = clock

    async def complete(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        sent = upstream_body(channel, body)
        try:
            async with self._http.post(messages_url(channel), data=json_body(sent), headers=headers(channel),
                                       timeout=client_timeout(channel, timeout)) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise errors.from_response(resp.status, raw, channel, resp.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise unreachable(exc, errors.WHO) from None
        message = failures.json_object(raw, errors.WHO)
        with failures.reading(errors.WHO):
            return answer.completion(message, int(self._clock()))

    async def stream(self, channel: Channel, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        sent = upstream_body(channel, body, stream=True)
        translator = Translator(int(self._clock()), bool((body.get("stream_options") or {}).get("include_usage")))
        try:
            async with self._http.post(messages_url(channel), data=json_body(sent),
                                       headers=headers(channel, "text/event-stream"),
                                       timeout=client_timeout(channel, timeout)) as resp:
                if resp.status >= 400:
                    raise errors.from_response(resp.status, await resp.read(), channel, resp.headers)
                async for data in data_events(resp.content):
                    event = failures.json_object(data, errors.WHO)
                    try:
                        with failures.reading(errors.WHO):
                            chunks = translator.feed(event)
                    except StreamError as exc:
                        raise errors.from_stream_event(exc.error, channel) from None
                    for chunk in chunks:
                        yield chunk
                if not translator.done:
                    raise failures.bad_answer(errors.WHO, "a stream that ended before its message_stop")
        except GatewayError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise unreachable(exc, errors.WHO) from None
        except ValueError:  # data_events: an event larger than st-ai reads
            raise failures.bad_answer(errors.WHO, "an event too large to read") from None
