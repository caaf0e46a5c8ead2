"""The Gemini API's error answers as the gateway's error. Google answers
`{"error": {"code", "message", "status", "details": [{"@type", "reason", ...}]}}`; a key
it does not accept comes back as 400 INVALID_ARGUMENT with the reason API_KEY_INVALID,
which is the operator's problem, never the client's. What Google said goes through
server.upstream_errors, which keeps the channel's key and address out."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from server import upstream_errors
from server.errors import GatewayError, upstream_failed, unreachable
from server.providers import failures
from server.providers.failures import Headers
from server.providers.veo import convert
from server.store.channels import Channel

log = logging.getLogger("st_ai.upstream")

WHO = "Google"

KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED",
                         "API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED",
                         "API_KEY_ANDROID_APP_BLOCKED", "API_KEY_IOS_APP_BLOCKED", "SERVICE_DISABLED",
                         "CONSUMER_INVALID", "ACCESS_TOKEN_TYPE_UNSUPPORTED"})


@dataclass(frozen=True)
class GoogleError:
    message: str | None = None
    status: str | None = None          # INVALID_ARGUMENT, PERMISSION_DENIED, ...
    reasons: frozenset[str] = frozenset()


def parse(body: bytes) -> GoogleError:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return GoogleError()
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return GoogleError()
    details = error.get("details") if isinstance(error.get("details"), list) else []
    reasons = frozenset(d["reason"] for d in details if isinstance(d, dict) and isinstance(d.get("reason"), str))
    message, status = error.get("message"), error.get("status")
    return GoogleError(message if isinstance(message, str) else None, status if isinstance(status, str) else None,
                       reasons)


def _channel_problem(channel: Channel, status: int, what: str) -> GatewayError:
    # A rejected key or a project without access: retrying or another prompt changes
    # nothing, and the channel is at fault (a submission moves on to another channel).
    log.warning("channel %r is misconfigured: Google answered HTTP %d (%s)", channel.name, status, what)
    return failures.rejected_key("the upstream", retryable=False, why=what)


def from_response(status: int, body: bytes, channel: Channel, endpoint: bool = False,
                  headers: Headers | None = None) -> GatewayError:
    """`endpoint`: the call was a submission, where a 404 means the model is unknown to
    Google; elsewhere it means the operation is gone. `headers`: the answer's, for its
    Retry-After."""
    error = parse(body)
    if error.reasons & KEY_REASONS or status == 401 or (error.message or "").startswith("API key not valid"):
        return _channel_problem(channel, status, "its API key was not accepted")
    if status == 403:
        return _channel_problem(channel, status, "permission denied")
    if status == failures.RATE_LIMITED:
        return failures.rate_limited(WHO, headers)
    if error.status == "FAILED_PRECONDITION":
        # Billing not enabled, or the API not offered where the server runs: the channel's setup.
        return _channel_problem(channel, status, "a precondition of the account failed")
    if status == 404:
        if endpoint:
            return upstream_errors.relayed(channel, 404, error.message, code="model_not_found",
                                           default="Google has no such model.", prefix="Veo: ")
        return GatewayError(404, "Veo no longer has this operation.", "not_found")
    if status in failures.CLIENT_FAULTS:
        if convert.is_safety_failure(error.message or ""):
            return upstream_errors.relayed(channel, 400, error.message, code="content_policy_violation",
                                           default="Veo's safety filters refused the request.", prefix="Veo: ")
        return upstream_errors.relayed(channel, 400, error.message, code="invalid_request",
                                       default="Veo rejected the request.", prefix="Veo: ")
    if status >= 500:
        return failures.overloaded(WHO, status, headers)
    return upstream_failed(f"Google refused the call (HTTP {status}).", retryable=False)


def network_error(exc: BaseException) -> GatewayError:
    return unreachable(exc, "Google")
