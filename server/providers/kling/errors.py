"""Kling's error envelope ({"code", "message", "request_id"}) as the gateway's error.
Kling's service code says more than its HTTP status (429 covers both rate limits and
an unpaid account), so the code decides and the status is the fallback. What Kling
said goes through server.upstream_errors, which keeps the channel's key and address out."""
from __future__ import annotations


import orjson

from server import upstream_errors
from server.errors import GatewayError, upstream_failed, unreachable
from server.providers import failures
from server.providers.failures import Headers
from server.store.channels import Channel

WHO = "Kling"
AUTH_CODES = range(1000, 1005)         # 401: missing, invalid, not yet valid, expired token
ACCESS_CODES = (1103, 1304)            # 403: no permission for the resource, IP not on the allow-list
ACCOUNT_CODES = (1100, 1101, 1102)     # 429: account problem, arrears, resource pack used up
RATE_CODES = (1302, 1303)              # 429: rate or concurrency limit: try again later
SAFETY_CODES = (1300, 1301)            # 400: platform or content-safety policy
PARAM_CODES = (1200, 1201)             # 400: the request's own fault
NOT_FOUND_CODES = (1202, 1203)         # 404: no such task (the caller's token was accepted)


def parse(body: bytes) -> tuple[int | None, str | None]:
    """Kling's service code and message, when the body is its envelope."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    code = parsed.get("code")
    message = parsed.get("message")
    return (code if isinstance(code, int) and not isinstance(code, bool) else None,
            message if isinstance(message, str) and message else None)


def from_envelope(status: int, code: int | None, message: str | None, channel: Channel,
                  endpoint: bool = False, headers: Headers | None = None) -> GatewayError:
    """`endpoint`: the call was to a fixed API path (submitting), where a 404 or 405
    means the channel is set up wrong, not that a task is missing. `headers`: the
    answer's, for its Retry-After."""
    if endpoint and status in (404, 405):
        return upstream_errors.misconfigured(channel, status, retryable=False)
    text = upstream_errors.words(channel, message)
    said = f": {text}" if text else "."
    # A video task stays on its channel: a retryable error means "try the same call
    # again later" (the task is kept), any other fails a submit at once and counts
    # towards giving up a poll. So only what passes by itself is retryable: rate
    # limits, Kling's own 5xx, the network. A wrong key or an empty account is not, but
    # it is the channel's fault, so a submission still moves on to another channel.
    if code in AUTH_CODES or code in ACCESS_CODES or (code is None and status in failures.REJECTED_KEY):
        return failures.rejected_key("the upstream", retryable=False,
                                     why=f"Kling code {code}" if code in ACCESS_CODES else None)
    if code in ACCOUNT_CODES:
        return failures.account_exhausted(f"The upstream account cannot take more work (Kling code {code}){said}")
    if code in RATE_CODES or (code is None and status == failures.RATE_LIMITED):
        return failures.rate_limited(WHO, headers)
    if code in SAFETY_CODES:
        return GatewayError(400, f"The request was blocked by the upstream's content policy{said}",
                            "content_policy_violation")
    if code in PARAM_CODES or (code is None and status in failures.CLIENT_FAULTS):
        return GatewayError(400, f"The upstream rejected the request{said}", "invalid_request")
    if code == 5002:
        return GatewayError(504, "The upstream service timed out.", "upstream_timeout", retryable=True)
    if code is not None and code >= 5000 or status >= 500:
        return failures.overloaded(WHO, status, headers)
    # 1202/1203 (not found) and anything unknown: a problem of this channel's setup, or
    # a task Kling no longer has.
    return upstream_failed(f"The upstream refused the request (HTTP {status}, Kling code {code}){said}",
                           retryable=False)


def from_response(status: int, body: bytes, channel: Channel, endpoint: bool = False,
                  headers: Headers | None = None) -> GatewayError:
    code, message = parse(body)
    return from_envelope(status, code, message, channel, endpoint, headers)


def network_error(exc: BaseException) -> GatewayError:
    return unreachable(exc)
