"""Embeddings on Azure OpenAI: OpenAI's embeddings body to the deployment's
`embeddings`, its answer back as OpenAI's (the relay core turns each embedding into the
encoding the client asked for)."""
from __future__ import annotations

from server.providers import failures
from server.providers.azure.wire import AZURE
from server.providers.interface import Upstream
from server.providers.json_body import json_body
from server.providers.openai.errors import WHO
from server.providers.openai.http import request_object
from server.providers.timeouts import client_timeout
from server.store.channels import Channel


class AzureEmbeddings:
    def __init__(self, upstream: Upstream) -> None:
        self._http = upstream.calls

    async def embed(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        url = AZURE.url(channel, "embeddings", str(body.get("model") or ""))
        answer = await request_object(self._http, "POST", url, channel, client_timeout(channel, timeout),
                                      data=json_body(body), headers=AZURE.headers(channel, json_body=True),
                                      endpoint=True, wire=AZURE)
        if not _embeddings(answer.get("data")):
            raise failures.bad_answer(WHO, "an answer without embeddings")
        return answer


def _embeddings(data: object) -> bool:
    """Whether `data` is a list of embeddings as OpenAI documents them: each a list of
    numbers, or a base64 string when `encoding_format` was "base64"."""
    return isinstance(data, list) and all(
        isinstance(item, dict) and (isinstance(item.get("embedding"), str) or (
            isinstance(item.get("embedding"), list)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in item["embedding"])))
        for item in data)
