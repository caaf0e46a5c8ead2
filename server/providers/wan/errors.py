"""DashScope's error answers (`{"request_id", "code", "message"}`) as the gateway's
error. The code says more than the HTTP status (400 covers a bad parameter, content
inspection and an account in arrears), so the code decides and the status is the
fallback. What DashScope said goes through server.upstream_errors, which keeps the
channel's key and address out."""
from __future__ import annotations

import logging

import orjson

from server import upstream_errors
from server.errors import GatewayError, upstream_failed, unreachable
from server.providers import failures
from server.providers.failures import Headers
from server.store.channels import Channel

log = logging.getLogger("st_ai.upstream")

MODERATION_PREFIXES = ("DataInspectionFailed", "data_inspection_failed", "IPInfringementSuspect")
ACCOUNT_CODES = ("Arrearage", "AllocationQuota.FreeTierOnly")
WHO = "DashScope"


def parse(body: bytes) -> tuple[str | None, str | None]:
    """DashScope's error code and message, when the body is its error object."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    code, message = parsed.get("code"), parsed.get("message")
    return (code if isinstance(code, str) and code else None,
            message if isinstance(message, str) and message else None)


def _channel_refused(channel: Channel, what: str, code: str | None) -> GatewayError:
    # The operator's to fix: the client's own key was fine, and another try fails the
    # same way (final here; the channel's fault, so a submission moves on).
    log.warning("channel %r is misconfigured: DashScope %s", channel.name, what)
    return failures.rejected_key("the upstream", retryable=False, why=code)


def from_response(status: int, body: bytes, channel: Channel, endpoint: bool = False,
                  headers: Headers | None = None) -> GatewayError:
    """`endpoint`: the call was to a fixed API path (submitting), where a 404 or 405
    means the channel is set up wrong, not that a task is missing. `headers`: the
    answer's, for its Retry-After."""
    if endpoint and status in (404, 405):
        return upstream_errors.misconfigured(channel, status, retryable=False)
    code, message = parse(body)
    said = upstream_errors.words(channel, message)
    suffix = f": {said}" if said else "."
    if code == "InvalidApiKey" or status == 401:
        return _channel_refused(channel, "rejected its API key (check the key and that its region matches "
                                         "the base URL)", code)
    if code and code.startswith("AccessDenied") or status == 403:
        return _channel_refused(channel, f"refused it access ({code or 'HTTP 403'}: the model may not be "
                                         "enabled for this workspace)", code or "HTTP 403")
    if code in ACCOUNT_CODES:
        return failures.account_exhausted(f"The upstream account cannot take more work ({code}){suffix}")
    if status == failures.RATE_LIMITED or (code or "").startswith("Throttling"):
        return failures.rate_limited(WHO, headers)
    if code and code.startswith(MODERATION_PREFIXES):
        return GatewayError(400, f"DashScope's content inspection refused the request{suffix}",
                            "moderation_blocked")
    if status in failures.CLIENT_FAULTS:
        return upstream_errors.relayed(channel, 400, message, code="invalid_request",
                                       default="DashScope rejected the request.", prefix="Wan: ")
    if status == 404:
        return GatewayError(404, "DashScope has no such task.", "task_not_found")
    if status >= 500:
        return failures.overloaded(WHO, status, headers)
    return upstream_failed(f"DashScope refused the call (HTTP {status}, {code or 'no code'}).", retryable=False)


def network_error(exc: BaseException) -> GatewayError:
    return unreachable(exc, "DashScope")
