"""Anthropic's errors (`{"type": "error", "error": {"type", "message"}}`, also as an
`error` event inside a stream) as the gateway's, by Anthropic's documented error types
first and the HTTP status after."""
from __future__ import annotations

from server import upstream_errors
from server.errors import GatewayError, upstream_failed
from server.providers import failures
from server.providers.failures import Headers
from server.store.channels import Channel

WHO = "Anthropic"
# Error types that say the upstream, not the request, is in trouble: another channel may answer.
PASSING = frozenset({"overloaded_error", "api_error", "timeout_error", "rate_limit_error"})
OVERLOADED_STATUS = 529


def from_response(status: int, body: bytes, channel: Channel, headers: Headers | None = None) -> GatewayError:
    error = failures.error_object(body)
    kind = error.get("type")
    message = error.get("message")
    if kind == "overloaded_error" or status == OVERLOADED_STATUS:
        return failures.overloaded(WHO, status, headers)
    if kind == "rate_limit_error" or status == failures.RATE_LIMITED:
        return failures.rate_limited(WHO, headers)
    if kind in ("authentication_error", "permission_error") or status in failures.REJECTED_KEY:
        return failures.rejected_key(WHO)
    if kind == "billing_error" or status == 402:
        return failures.account_exhausted(f"{WHO} refused the channel's account (billing).")
    if status == 404:
        if kind != "not_found_error":
            return upstream_errors.misconfigured(channel, status)
        # The model the channel maps to is unknown there: the client hears the upstream's
        # words, and another channel, set up right, may still serve the model.
        relayed = upstream_errors.relayed(channel, 404, message, type="not_found_error", code="model_not_found",
                                          default="The upstream does not know this model.")
        relayed.channel_fault = "misconfigured"
        return relayed
    if status == 413 or kind == "request_too_large":
        return upstream_errors.relayed(channel, 413, message, type="invalid_request_error", code="request_too_large",
                                       default="The request is larger than the upstream accepts.")
    if status in failures.CLIENT_FAULTS:
        return upstream_errors.relayed(channel, status, message, type=kind,
                                       default=f"The upstream rejected the request (HTTP {status}).")
    if status >= 500:
        return failures.overloaded(WHO, status, headers)
    if status == 405:
        return upstream_errors.misconfigured(channel, status)
    return upstream_failed(f"{WHO} failed (HTTP {status}).")


def from_stream_event(error: object, channel: Channel) -> GatewayError:
    """An `error` event inside a stream. Retryable when it says the upstream is in trouble:
    the attempt loop then falls over if nothing had reached the client yet."""
    error = error if isinstance(error, dict) else {}
    text = upstream_errors.words(channel, error.get("message")) or "unknown error"
    kind = error.get("type")
    if kind == "rate_limit_error":
        return failures.rate_limited(WHO, None)
    return upstream_failed(f"{WHO} failed mid-stream: {text}", retryable=isinstance(kind, str) and kind in PASSING)
