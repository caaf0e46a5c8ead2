"""Chat over the Gemini API: `:generateContent`, and `:streamGenerateContent?alt=sse` for
streams. The request is translated (request.py), the client's image URLs fetched and sent
inline (media.py), the answer translated back (response.py, stream.py)."""
from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import AsyncIterator, Callable

import aiohttp
import orjson

from server.errors import GatewayError
from server.providers import failures
from server.providers.gemini import errors, media
from server.providers.gemini.http import headers, method_url, post_json
from server.providers.gemini.request import to_gemini
from server.providers.gemini.response import to_openai
from server.providers.gemini.stream import StreamTranslator
from server.providers.interface import Upstream
from server.providers.json_body import json_body
from server.providers.sse import data_events
from server.providers.timeouts import client_timeout
from server.safe_fetch import fetcher_for
from server.store.channels import Channel


class GeminiChat:
    def __init__(self, upstream: Upstream, clock: Callable[[], float] = time.time) -> None:
        self._http = upstream.calls
        self._files = fetcher_for(upstream)
        self._clock = clock

    async def _prepared(self, channel: Channel, body: dict) -> dict:
        request = to_gemini(body, body["model"])
        await media.fetch_marked(request, self._files, channel)
        return request

    async def complete(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        request = await self._prepared(channel, body)
        answer = await post_json(self._http, channel, method_url(channel, body["model"], "generateContent"), request,
                                 timeout)
        with failures.reading(errors.WHO):
            return to_openai(answer, body["model"], int(self._clock()))

    async def count_tokens(self, channel: Channel, api: str, body: dict, timeout: float | None) -> int:
        """`:countTokens` on the request as generateContent would get it (system
        instruction and tools included). Gemini speaks none of st-ai's client APIs: `body`
        is a chat body."""
        if api != "chat":
            raise ValueError(f"a gemini channel counts chat bodies, not {api!r}")
        request = {"model": f"models/{body['model'].removeprefix('models/')}", **await self._prepared(channel, body)}
        counted = await post_json(self._http, channel, method_url(channel, body["model"], "countTokens"),
                                  {"generateContentRequest": request}, timeout)
        tokens = counted.get("totalTokens", 0)  # Google leaves a zero out
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
            raise failures.bad_answer(errors.WHO, "a token count without its totalTokens")
        return tokens

    async def stream(self, channel: Channel, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        """`timeout`: the whole stream's seconds; the relay core watches the gaps."""
        request = await self._prepared(channel, body)
        translator = StreamTranslator("chatcmpl-" + secrets.token_hex(12), body["model"], int(self._clock()),
                                      bool((body.get("stream_options") or {}).get("include_usage")))
        url = method_url(channel, body["model"], "streamGenerateContent") + "?alt=sse"
        try:
            async with self._http.post(url, data=json_body(request), headers=headers(channel, "text/event-stream"),
                                       timeout=client_timeout(channel, timeout)) as resp:
                if resp.status >= 400:
                    raise errors.from_response(resp.status, await resp.read(), channel, resp.headers)
                async with contextlib.aclosing(data_events(resp.content)) as events:
                    async for data in events:
                        event = _object(data)
                        if "error" in event and "candidates" not in event:
                            raise errors.from_stream_event(event["error"], channel)
                        with failures.reading(errors.WHO):
                            chunks = translator.event(event)
                        for chunk in chunks:
                            yield chunk
                for chunk in translator.end():
                    yield chunk
        except GatewayError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None
        except ValueError:  # data_events: an event larger than st-ai reads
            raise failures.bad_answer(errors.WHO, "an event too large to read") from None


def _object(data: bytes) -> dict:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise failures.bad_answer(errors.WHO) from None
    if not isinstance(parsed, dict):
        raise failures.bad_answer(errors.WHO, "an unexpected event")
    return parsed
