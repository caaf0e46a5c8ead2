"""Image generation against `POST {base_url}/images/generations`."""
from __future__ import annotations

from server.errors import invalid_request, upstream_failed
from server.providers.interface import Upstream
from server.providers.json_body import json_body
from server.providers.openai.http import OPENAI, Wire, request_object
from server.providers.openai.image_urls import rehost_private_urls
from server.providers.timeouts import client_timeout
from server.store.channels import Channel


class OpenAIImages:
    def __init__(self, upstream: Upstream, wire: Wire = OPENAI) -> None:
        self._http = upstream.calls
        self._upstream = upstream
        self._wire = wire

    async def generate(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        """The body goes through as given (unknown fields too) and the answer comes back
        as is: OpenAI's image URLs are public for 60 minutes, so clients fetch them directly
        (a URL on the channel's own host is fetched and served by st-ai instead).
        A moderation refusal is a 400 `moderation_blocked`, relayed with its code."""
        if body.get("stream"):
            # The answer would be server-sent events, which this one-shot interface cannot relay.
            raise invalid_request("Streaming image generation is not supported.", "stream")
        url = self._wire.url(channel, "images/generations", str(body.get("model") or ""))
        answer = await request_object(self._http, "POST", url, channel, client_timeout(channel, timeout),
                                      data=json_body(body), headers=self._wire.headers(channel, json_body=True),
                                      endpoint=True, wire=self._wire)
        if not isinstance(answer.get("data"), list):
            raise upstream_failed("The upstream service answered with an unexpected body.")
        return await rehost_private_urls(answer, channel, self._upstream)
