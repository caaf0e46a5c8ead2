"""Chat completions against `POST {base_url}/chat/completions`, and the other client APIs an
OpenAI-compatible upstream may serve (`POST {base_url}/responses`) passed through."""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

import aiohttp
import orjson

from server.api_client import Answer
from server.errors import GatewayError, upstream_failed
from server.providers.interface import Upstream
from server.providers.json_body import json_body
from server.providers.openai import errors
from server.providers.openai.http import OPENAI, Wire, network_error, request_object
from server.providers.sse import data_events
from server.providers.timeouts import client_timeout
from server.store.channels import Channel


class OpenAIChat:
    def __init__(self, upstream: Upstream, wire: Wire = OPENAI) -> None:
        self._http = upstream.calls
        self._wire = wire

    async def complete(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        return await request_object(self._http, "POST", self._url(channel, body), channel,
                                    client_timeout(channel, timeout), data=json_body(body), endpoint=True,
                                    headers=self._wire.headers(channel, json_body=True), wire=self._wire)

    def _url(self, channel: Channel, body: dict) -> str:
        return self._wire.url(channel, "chat/completions", str(body.get("model") or ""))

    async def stream(self, channel: Channel, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        """`timeout`: the whole stream's seconds. How soon its first event must come, and
        how long the gaps between events may be, the relay core watches."""
        async with self._opened(channel, self._url(channel, body), body, timeout) as resp:
            if not resp.content_type.startswith("text/event-stream"):
                # Some compatible servers ignore `stream`; relay their whole answer as one chunk.
                yield _as_chunk(_object(await resp.read()))
                return
            async with contextlib.aclosing(data_events(resp.content)) as events:
                async for data in events:
                    if data == b"[DONE]":
                        return
                    chunk = _object(data)
                    if "error" in chunk and "choices" not in chunk:
                        raise errors.from_stream_event(chunk["error"], channel)
                    yield chunk

    # NativeApis: an upstream that serves another client API at `{base}/{api}` (OpenAI's
    # Responses API at /responses), called the way chat is

    async def native(self, channel: Channel, api: str, body: dict, timeout: float | None) -> dict:
        return await request_object(self._http, "POST", self._native_url(channel, api, body), channel,
                                    client_timeout(channel, timeout), data=json_body(body), endpoint=True,
                                    headers=self._wire.headers(channel, json_body=True), wire=self._wire)

    async def native_stream(self, channel: Channel, api: str, body: dict, timeout: float | None
                            ) -> AsyncIterator[dict]:
        async with self._opened(channel, self._native_url(channel, api, body), body, timeout) as resp:
            if not resp.content_type.startswith("text/event-stream"):
                raise unreadable("a whole answer where a stream of events was asked for")
            async with contextlib.aclosing(data_events(resp.content)) as events:
                async for data in events:
                    if data == b"[DONE]":
                        return
                    event = _object(data)
                    if event.get("type") == "error":  # the API's in-band failure: the stream ends with it
                        raise errors.from_stream_event(event.get("error", event), channel)
                    yield event

    def _native_url(self, channel: Channel, api: str, body: dict) -> str:
        return self._wire.url(channel, api, str(body.get("model") or ""))

    @contextlib.asynccontextmanager
    async def _opened(self, channel: Channel, url: str, body: dict, timeout: float | None
                      ) -> AsyncIterator[Answer]:
        """A streamed request's answer once its status is known to be a success; upstream
        failures, while it opens and while its events are read, as GatewayErrors. (A context,
        not a generator of events: each chunk then passes no extra generator on its way.)"""
        try:
            async with self._http.post(url, data=json_body(body),
                                       headers=self._wire.headers(channel, "text/event-stream", json_body=True),
                                       timeout=client_timeout(channel, timeout)) as resp:
                if resp.status >= 400:
                    raise self._wire.error(resp.status, await resp.read(), channel, endpoint=True,
                                           headers=resp.headers)
                yield resp
        except GatewayError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise network_error(exc) from None
        except ValueError:  # data_events: an event larger than st-ai reads
            raise unreadable("an event too large to read") from None


def unreadable(what: str = "something that is not a JSON object") -> GatewayError:
    return upstream_failed(f"The upstream service's answer could not be read: it sent {what}.")


def _object(data: bytes) -> dict:
    """One event (or a whole answer) as the JSON object it must be."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise unreadable() from None
    if not isinstance(parsed, dict):
        raise unreadable()
    return parsed


def _as_chunk(answer: dict) -> dict:
    choices = answer.get("choices")
    choices = [{"index": c.get("index", 0), "delta": c.get("message", {}), "finish_reason": c.get("finish_reason")}
               for c in (choices if isinstance(choices, list) else ()) if isinstance(c, dict)]
    chunk = {k: v for k, v in answer.items() if k != "choices"}
    return chunk | {"object": "chat.completion.chunk", "choices": choices}
