"""Embeddings: validate, route to an embeddings-capable channel, fall back, settle the
request priced as input tokens. Transport-free, like the chat and image relays."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from server import routing
from server.billing.admission import Admission, Outcome, Ticket, failure_status
from server.billing.cost import chat_cost
from server.billing.embedding_tokens import input_tokens
from server.billing.prices import ModelPrice
from server.billing.usage_count import from_usage
from server.catalog import Catalog
from server.core.attempts import AttemptLoop
from server.embedding_vectors import FORMATS, BadVector, fit, unreadable
from server.errors import invalid_request
from server.providers.registry import Registry
from server.store.channels import Channel
from server.store.tokens import Token

log = logging.getLogger(__name__)

MAX_INPUTS = 2048  # OpenAI's limit on the items of one request
Input = str | list[int]


def validate_embeddings(body: dict) -> list[Input]:
    """The request's inputs as a list (one text or token array each), or a 400 naming
    what is wrong. Types the JSON codec checked already are checked again here: the core
    is also called with plain dicts."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("You must provide a model parameter.", param="model", code="missing_required_parameter")
    inputs = _inputs(body.get("input"))
    if body.get("encoding_format") not in (None, *FORMATS):
        raise invalid_request("'encoding_format' must be float or base64.", param="encoding_format",
                              code="invalid_value")
    dimensions = body.get("dimensions")
    if dimensions is not None and not (type(dimensions) is int and dimensions > 0):
        raise invalid_request("'dimensions' must be a positive integer.", param="dimensions", code="invalid_value")
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise invalid_request("'user' must be a string.", param="user", code="invalid_type")
    return inputs


def _inputs(given: object) -> list[Input]:
    if given is None:
        raise invalid_request("'input' is required.", param="input", code="missing_required_parameter")
    if not isinstance(given, (str, list)):
        raise invalid_request("'input' must be a string, an array of strings, an array of token ids or an "
                              "array of arrays of token ids.", param="input", code="invalid_type")
    if not given:
        raise invalid_request("'input' must not be empty.", param="input", code="invalid_value")
    single = isinstance(given, str) or _is_token(given[0])  # one text, or one input as token ids
    items = [given] if single else given
    if len(items) > MAX_INPUTS:
        raise invalid_request(f"'input' may hold at most {MAX_INPUTS} items; it holds {len(items)}.",
                              param="input", code="invalid_value")
    for i, item in enumerate(items):
        where = "input" if single else f"input[{i}]"
        if isinstance(item, str):
            if not item:
                raise invalid_request(f"'{where}' must not be an empty string.", param=where, code="invalid_value")
            continue
        if not isinstance(item, list) or not item:
            raise invalid_request(f"'{where}' must be a non-empty string or a non-empty array of token ids.",
                                  param=where, code="invalid_value")
        for j, token in enumerate(item):
            if not _is_token(token):
                raise invalid_request(f"'{where}[{j}]' must be a token id: an integer 0 or more.",
                                      param=f"{where}[{j}]", code="invalid_value")
    return items


def _is_token(value: object) -> bool:
    return type(value) is int and value >= 0


@dataclass
class EmbeddingsRelay:
    catalog: Catalog
    registry: Registry
    admission: Admission
    attempts: AttemptLoop = field(default_factory=AttemptLoop)

    async def embed(self, token: Token, body: dict, timeout: float | None = None) -> dict:
        async with self.admission.request(token, "embeddings", body.get("model")) as ticket:
            return await self._embed(ticket, body, timeout)

    async def _embed(self, ticket: Ticket, body: dict, timeout: float | None) -> dict:
        inputs = validate_embeddings(body)
        model = body["model"]
        channels = routing.candidates(self.catalog.snapshot, ticket.token, model, self.registry.embeddings_types)
        deadline = self.attempts.deadline(timeout)
        reserved = input_tokens(inputs, channels[0].upstream_model(model))
        await self.admission.admit(ticket, model, lambda price: _cost(price, model, reserved), tokens=reserved)
        wanted = body.get("encoding_format") or "float"
        provider = self.registry.embeddings

        async def call(channel: Channel, budget: float) -> dict:
            answer = await provider[channel.type].embed(channel, {**body, "model": channel.upstream_model(model)},
                                                        budget)
            try:
                return fit(answer, wanted, len(inputs))
            except BadVector as problem:
                log.warning("channel %r: %s", channel.name, problem)
                raise unreadable(problem) from None

        try:
            won = await self.attempts.first(ticket, channels, model, call, deadline, request=body)
        except BaseException as exc:
            self.admission.abandon(ticket, *failure_status(exc))
            raise
        answer = won.value
        counted = _reported(answer.get("usage"))
        estimate = counted is None
        if counted is None:  # the upstream did not say: counted here, and the ledger marks it
            counted = input_tokens(inputs, won.upstream_model)
            answer["usage"] = {"prompt_tokens": counted, "total_tokens": counted}
        await self.admission.settle(ticket, Outcome(200, won.channel.id, won.upstream_model, counted,
                                                    estimate=estimate),
                                    lambda price: _cost(price, model, counted))
        return answer


def _reported(usage: object) -> int | None:
    """The prompt tokens the upstream counted, when its usage says so."""
    counts = from_usage({**usage, "completion_tokens": 0} if isinstance(usage, dict) else None)
    return counts.prompt if counts is not None else None


def _cost(price: ModelPrice | None, model: str, tokens: int) -> int:
    return chat_cost(price, model, prompt_tokens=tokens, completion_tokens=0)
