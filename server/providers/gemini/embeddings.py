"""Embeddings over the Gemini API's `:batchEmbedContents`: one request per input text
(`outputDimensionality` from `dimensions`; no task type), float lists out. Gemini does not
count the tokens it embedded: the answer carries no usage, and the relay core counts them
itself and books the count as an estimate."""
from __future__ import annotations

from server.errors import invalid_request
from server.providers import failures
from server.providers.gemini import errors
from server.providers.gemini.http import method_url, post_json
from server.providers.interface import Upstream
from server.store.channels import Channel

BATCH = 100  # requests per batchEmbedContents call, the most the API takes


def texts(value: object) -> list[str]:
    """`input` as the texts to embed; token arrays are OpenAI's own and Gemini takes text."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise invalid_request("'input' must be a string or an array of strings for a Gemini model (token arrays are "
                          "not supported).", "input", "invalid_value")


def batch_request(model: str, inputs: list[str], dimensions: object) -> dict:
    name = "models/" + model.removeprefix("models/")
    extra = {"outputDimensionality": dimensions} if isinstance(dimensions, int) else {}
    return {"requests": [{"model": name, "content": {"parts": [{"text": text}]}, **extra} for text in inputs]}


def vectors(answer: dict, expected: int) -> list[list[float]]:
    found = [item["values"] for item in answer["embeddings"]]
    if len(found) != expected or not all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
                                         for v in found):
        raise ValueError("batchEmbedContents answered another number or shape of embeddings")
    return [[float(x) for x in v] for v in found]


class GeminiEmbeddings:
    def __init__(self, upstream: Upstream) -> None:
        self._http = upstream.calls

    async def embed(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        model, inputs = body["model"], texts(body.get("input"))
        url = method_url(channel, model, "batchEmbedContents")
        embeddings: list[list[float]] = []
        for start in range(0, len(inputs), BATCH):
            batch = inputs[start:start + BATCH]
            answer = await post_json(self._http, channel, url, batch_request(model, batch, body.get("dimensions")),
                                     timeout)
            with failures.reading(errors.WHO):
                embeddings.extend(vectors(answer, len(batch)))
        return {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(embeddings)]}
