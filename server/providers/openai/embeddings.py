"""Embeddings against `POST {base_url}/embeddings`."""
from __future__ import annotations

from server.providers.interface import Upstream
from server.providers.json_body import json_body
from server.providers.openai.http import auth_headers, request_object
from server.providers.timeouts import client_timeout
from server.store.channels import Channel


class OpenAIEmbeddings:
    def __init__(self, upstream: Upstream) -> None:
        self._http = upstream.calls

    async def embed(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        """The body goes through as the client gave it, `encoding_format` included: a
        client asking for base64 gets it from the upstream (a third of the bytes of
        floats), and what the upstream answers is relayed as it is."""
        return await request_object(self._http, "POST", f"{channel.base_url}/embeddings", channel,
                                    client_timeout(channel, timeout), data=json_body(body), endpoint=True,
                                    headers=auth_headers(channel, json_body=True))
