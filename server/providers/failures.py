"""How an upstream's failure reads to the attempt loop, the same for every provider.

Each provider's errors.py decides by its own documented codes first and falls back on
these for what every HTTP API shares: a rejected key is the channel's fault (it gets
disabled until a test or probe succeeds), a rate limit or an overloaded upstream is
retryable and keeps the channel out for the upstream's `Retry-After`, an answer st-ai
cannot read is a retryable 502 (another channel may answer properly), never an
exception escaping a provider."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import orjson

from server.errors import GatewayError, credentials_rejected, upstream_failed, upstream_rate_limited
from server.providers import retry_after as retry_after_header

log = logging.getLogger("st_ai.upstream")

REJECTED_KEY = frozenset({401, 403})
RATE_LIMITED = 429
# Refusals that are the client's own doing: relayed once with the upstream's words, never retried.
CLIENT_FAULTS = frozenset({400, 413, 422})

Headers = Mapping[str, str]


def _capital(who: str) -> str:
    return who[0].upper() + who[1:]


def retry_after(headers: Headers | None) -> float | None:
    """Seconds the upstream asked to be left alone, when it said so. `retry-after-ms`
    (Azure OpenAI's, read first by OpenAI's own SDKs) is the finer of the two."""
    if headers is None:
        return None
    finer = retry_after_header.milliseconds(headers.get("retry-after-ms"))
    return finer if finer is not None else retry_after_header.seconds(headers.get("Retry-After"))


def rejected_key(who: str, retryable: bool = True, why: str | None = None) -> GatewayError:
    """The channel's key (or its account's access) was refused: the channel is at fault.
    `retryable=False` for calls that would otherwise be sent again later on the same
    channel (a video poll or remix); the attempt loop still moves on because of the fault."""
    error = credentials_rejected(who, retryable)
    if why:
        # The reason is what an operator reads where the channel was disabled.
        error.message = f"{error.message.removesuffix('.')} ({why})."
        error.args = (error.message,)
    return error


def account_exhausted(message: str) -> GatewayError:
    """The channel's account cannot take more work (no balance, plan used up): not the
    request's fault and not passing by itself, so final for a call that would be sent
    again on the same channel, while the attempt loop moves on to another channel."""
    error = upstream_failed(message, retryable=False)
    error.channel_fault = "account"
    return error


def rate_limited(who: str, headers: Headers | None) -> GatewayError:
    return upstream_rate_limited(retry_after(headers), who)


def overloaded(who: str, status: int, headers: Headers | None) -> GatewayError:
    """A 5xx (529 is Anthropic's "overloaded", passed on by OpenAI-compatible proxies in
    front of it too): retryable, and a Retry-After that came with it is honoured."""
    error = upstream_failed(f"{_capital(who)} failed (HTTP {status}).")
    error.retry_after = retry_after(headers)
    return error


def bad_answer(who: str, what: str = "something that is not JSON") -> GatewayError:
    return GatewayError(502, f"{_capital(who)} answered with {what}.", "upstream_bad_answer", retryable=True)


def json_object(raw: bytes, who: str) -> dict:
    """A successful answer's body, which must be a JSON object."""
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_answer(who) from None
    if not isinstance(answer, dict):
        raise bad_answer(who, "an unexpected body")
    return answer


def error_object(body: bytes) -> dict:
    """The `error` object of an error body shaped `{"error": {...}}` (OpenAI's, Azure's,
    Anthropic's); empty when the body is not that."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


@contextmanager
def reading(who: str) -> Iterator[None]:
    """Around the code that reads an upstream's answer: a field missing or of another
    type than documented becomes a retryable 502 instead of an exception escaping."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        log.warning("%s's answer did not have the documented shape", who, exc_info=True)
        raise bad_answer(who, "an answer that does not have the documented shape") from None
