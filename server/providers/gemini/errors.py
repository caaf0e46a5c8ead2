"""The Gemini API's error answers as the gateway's error. Google answers
`{"error": {"code", "message", "status", "details": [...]}}`; `details` may carry an
`ErrorInfo` reason (API_KEY_INVALID: a key Google does not accept comes back as a 400
INVALID_ARGUMENT, which is the operator's problem, never the client's) and a `RetryInfo`
delay for a rate limit. What Google said goes through server.upstream_errors, which keeps
the channel's key and address out."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import orjson

from server import upstream_errors
from server.errors import GatewayError, unreachable, upstream_failed, upstream_rate_limited
from server.providers import failures
from server.providers.failures import Headers
from server.store.channels import Channel

log = logging.getLogger("st_ai.upstream")

WHO = "Gemini"
KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED",
                         "API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED",
                         "API_KEY_ANDROID_APP_BLOCKED", "API_KEY_IOS_APP_BLOCKED", "SERVICE_DISABLED",
                         "CONSUMER_INVALID", "ACCESS_TOKEN_TYPE_UNSUPPORTED"})
KEY_STATUSES = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED"})
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
DELAY = re.compile(r"(\d+(?:\.\d+)?)s")


@dataclass(frozen=True)
class GoogleError:
    message: str | None = None
    status: str | None = None          # INVALID_ARGUMENT, PERMISSION_DENIED, ...
    reasons: frozenset[str] = frozenset()
    retry_delay: float | None = None   # seconds, from a RetryInfo detail


def parse(error: object) -> GoogleError:
    """The `error` object of an answer (or of a stream event)."""
    if not isinstance(error, dict):
        return GoogleError()
    details = [d for d in error.get("details") or () if isinstance(d, dict)] \
        if isinstance(error.get("details"), list) else []
    reasons = frozenset(d["reason"] for d in details if isinstance(d.get("reason"), str))
    delay = None
    for detail in details:
        match = DELAY.fullmatch(str(detail.get("retryDelay", ""))) if detail.get("@type") == RETRY_INFO else None
        if match:
            delay = float(match.group(1))
    message, status = error.get("message"), error.get("status")
    return GoogleError(message if isinstance(message, str) else None, status if isinstance(status, str) else None,
                       reasons, delay)


def _body_error(body: bytes) -> object:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, list) and parsed:  # a streamed call's error can come as a JSON array
        parsed = parsed[0]
    return parsed.get("error") if isinstance(parsed, dict) else None


def _channel_problem(channel: Channel, status: int, what: str) -> GatewayError:
    log.warning("channel %r is misconfigured: Gemini answered HTTP %d (%s)", channel.name, status, what)
    return failures.rejected_key("the upstream", why=what)


def from_response(status: int, body: bytes, channel: Channel, headers: Headers | None = None) -> GatewayError:
    return from_error(status, parse(_body_error(body)), channel, headers)


def from_error(status: int, error: GoogleError, channel: Channel, headers: Headers | None = None) -> GatewayError:
    if (error.reasons & KEY_REASONS or status in failures.REJECTED_KEY or error.status in KEY_STATUSES
            or (error.message or "").startswith("API key not valid")):
        return _channel_problem(channel, status, "its API key was not accepted")
    if status == failures.RATE_LIMITED or error.status == "RESOURCE_EXHAUSTED":
        seconds = error.retry_delay if error.retry_delay is not None else failures.retry_after(headers)
        return upstream_rate_limited(seconds, WHO)
    if error.status == "FAILED_PRECONDITION":
        # billing not enabled, or the API not offered where st-ai runs: the channel's setup
        return _channel_problem(channel, status, "a precondition of the account failed")
    if status == 404 or error.status == "NOT_FOUND":
        return upstream_errors.relayed(channel, 404, error.message, code="model_not_found",
                                       default="Gemini has no such model.", prefix="Gemini: ")
    if status in failures.CLIENT_FAULTS or error.status == "INVALID_ARGUMENT":
        return upstream_errors.relayed(channel, 400 if status not in (413, 422) else status, error.message,
                                       code="invalid_request", default="Gemini rejected the request.",
                                       prefix="Gemini: ")
    if status >= 500 or error.status in ("INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return failures.overloaded(WHO, status if status >= 500 else 503, headers)
    return upstream_failed(f"Gemini refused the call (HTTP {status}).")


def from_stream_event(error: object, channel: Channel) -> GatewayError:
    """An `{"error": ...}` event inside a stream (Google sends its HTTP code in `code`)."""
    parsed = parse(error)
    code = error.get("code") if isinstance(error, dict) else None
    return from_error(code if isinstance(code, int) and 400 <= code < 600 else 500, parsed, channel)


def network_error(exc: BaseException) -> GatewayError:
    return unreachable(exc, WHO)
