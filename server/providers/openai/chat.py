"""Chat completions against `POST {base_url}/chat/completions`."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiohttp
import orjson

from server.errors import GatewayError
from server.providers.interface import Upstream
from server.providers.json_body import json_body
from server.providers.openai import errors
from server.providers.openai.http import auth_headers, network_error, request_object
from server.providers.sse import data_events
from server.store.channels import Channel

DEFAULT_TIMEOUT = 600.0


def _timeout(seconds: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds or DEFAULT_TIMEOUT)


class OpenAIChat:
    def __init__(self, upstream: Upstream) -> None:
        self._http = upstream.http

    async def complete(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        return await request_object(self._http, "POST", f"{channel.base_url}/chat/completions", channel,
                                    _timeout(timeout), data=json_body(body), endpoint=True,
                                    headers=auth_headers(channel, json_body=True))

    async def stream(self, channel: Channel, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        try:
            async with self._http.post(f"{channel.base_url}/chat/completions", data=json_body(body),
                                       headers=auth_headers(channel, "text/event-stream", json_body=True),
                                       timeout=_timeout(timeout)) as resp:
                if resp.status >= 400:
                    raise errors.from_response(resp.status, await resp.read(), channel, endpoint=True)
                if not resp.content_type.startswith("text/event-stream"):
                    # Some compatible servers ignore `stream`; relay their whole answer as one chunk.
                    yield _as_chunk(orjson.loads(await resp.read()))
                    return
                async for data in data_events(resp.content):
                    if data == b"[DONE]":
                        return
                    chunk = orjson.loads(data)
                    if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                        raise errors.from_stream_event(chunk["error"], channel)
                    yield chunk
        except GatewayError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise network_error(exc) from None


def _as_chunk(answer: dict) -> dict:
    choices = [{"index": c.get("index", 0), "delta": c.get("message", {}),
                "finish_reason": c.get("finish_reason")} for c in answer.get("choices", [])]
    chunk = {k: v for k, v in answer.items() if k != "choices"}
    return chunk | {"object": "chat.completion.chunk", "choices": choices}
