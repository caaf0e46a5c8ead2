"""Turning an OpenAI-style upstream error into the gateway's error. What an upstream
said goes through server.upstream_errors, which keeps the channel's key and address
from the client."""
from __future__ import annotations

import orjson

from server import upstream_errors
from server.errors import GatewayError, upstream_failed
from server.providers import failures
from server.providers.failures import Headers
from server.store.channels import Channel

# Upstream statuses that are the client's own doing: relayed with the upstream's words.
CLIENT_FAULTS = failures.CLIENT_FAULTS | {404, 409, 415}
# An overloaded upstream whatever its status says: Anthropic's error type (passed on by
# OpenAI-compatible proxies in front of it) and OpenAI's own code.
OVERLOAD_MARKS = frozenset({"overloaded_error", "engine_overloaded"})
WHO = "the upstream service"


def _error_object(body: bytes) -> dict:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return parsed["error"]
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return {"message": parsed["error"]}
    return {}


def from_response(status: int, body: bytes, channel: Channel, endpoint: bool = False,
                  headers: Headers | None = None) -> GatewayError:
    """`endpoint`: the call was to one of the API's fixed paths (chat/completions,
    images/generations, POST videos), where a 404 or 405 means the channel is set up wrong.
    `headers`: the answer's, for its Retry-After."""
    if endpoint and status in (404, 405):
        return upstream_errors.misconfigured(channel, status)
    error = _error_object(body)
    if _overloaded(error):
        return failures.overloaded(WHO, status, headers)
    if status in CLIENT_FAULTS:
        return upstream_errors.relayed(
            channel, status, error.get("message"), type=error.get("type"), code=error.get("code"),
            param=error.get("param"), default=f"The upstream rejected the request (HTTP {status}).")
    if status == failures.RATE_LIMITED:
        return failures.rate_limited(WHO, headers)
    if status in failures.REJECTED_KEY:
        return failures.rejected_key("the upstream")
    if status >= 500:
        return failures.overloaded(WHO, status, headers)
    return upstream_failed(f"The upstream service failed (HTTP {status}).")


def from_stream_event(error: object, channel: Channel) -> GatewayError:
    """An `{"error": ...}` event inside an upstream stream. Retryable only when it says
    the upstream is overloaded: the attempt loop then falls over if it came before the
    stream's first byte reached the client (after that, nothing is retried)."""
    message = error.get("message") if isinstance(error, dict) else error
    text = upstream_errors.words(channel, message) or "unknown error"
    return upstream_failed(f"The upstream service failed mid-stream: {text}",
                           retryable=isinstance(error, dict) and _overloaded(error))


def _overloaded(error: dict) -> bool:
    return any(isinstance(mark, str) and mark in OVERLOAD_MARKS for mark in (error.get("type"), error.get("code")))
