"""MiniMax's answers as the gateway's errors. MiniMax answers HTTP 200 with a
`base_resp: {"status_code", "status_msg"}` (0 is success), so the status code decides
and the HTTP status is the fallback. What MiniMax said goes through
server.upstream_errors, which keeps the channel's key and address out."""
from __future__ import annotations

import logging

import orjson

from server import upstream_errors
from server.errors import GatewayError, upstream_failed, unreachable
from server.providers import failures
from server.providers.failures import Headers
from server.store.channels import Channel

log = logging.getLogger("st_ai.upstream")

WHO = "MiniMax"
OK = 0
RATE_CODES = (1002, 1039, 1041, 2045)   # RPM, TPM, connections, request growth: try again later
AUTH_CODES = (1004, 2049)               # the channel's key is refused or not a key
ACCOUNT_CODES = (1008, 2056)            # no balance left, Token Plan used up
SAFETY_CODES = (1026, 1027)             # sensitive input, sensitive output
PARAM_CODES = (2013,)                   # the request's parameters
TIMEOUT_CODES = (1001,)
SERVER_CODES = (1000, 1013, 1024, 1033)  # MiniMax's own failures: they pass


def base_resp(answer: object) -> tuple[int | None, str | None]:
    """The status code and message of an answer's base_resp (None when there is none)."""
    resp = answer.get("base_resp") if isinstance(answer, dict) else None
    if not isinstance(resp, dict):
        return None, None
    code, message = resp.get("status_code"), resp.get("status_msg")
    return (code if isinstance(code, int) and not isinstance(code, bool) else None,
            message if isinstance(message, str) and message else None)


def from_status_code(code: int, message: str | None, channel: Channel,
                     headers: Headers | None = None) -> GatewayError:
    """A non-zero base_resp.status_code as the error a client (or the task) gets. Only what
    passes by itself is retryable: a task stays on its channel and is tried again later.
    `headers`: the answer's, for its Retry-After."""
    text = upstream_errors.words(channel, message)
    said = f": {text}" if text else "."
    if code in RATE_CODES:
        return failures.rate_limited(WHO, headers)
    if code in AUTH_CODES:
        # The operator's key, not the client's: never a 401, which would blame the client's
        # token. Final here, and the channel's fault, so a submission moves on.
        log.warning("channel %r is misconfigured: MiniMax refused its API key (status code %d)",
                    channel.name, code)
        return failures.rejected_key("the upstream", retryable=False, why=f"MiniMax code {code}")
    if code in ACCOUNT_CODES:
        log.warning("channel %r: the MiniMax account cannot take more work (status code %d)", channel.name, code)
        return failures.account_exhausted(f"The upstream account cannot take more work (MiniMax code {code}).")
    if code in SAFETY_CODES:
        return GatewayError(400, f"MiniMax blocked the request for sensitive content{said}", "moderation_blocked")
    if code in PARAM_CODES:
        return upstream_errors.relayed(channel, 400, f"MiniMax rejected the request{said}",
                                       code="invalid_request", default="MiniMax rejected the request.")
    if code in TIMEOUT_CODES:
        return GatewayError(504, "MiniMax timed out.", "upstream_timeout", retryable=True)
    if code in SERVER_CODES:
        return upstream_failed(f"MiniMax failed (code {code}).")
    return upstream_failed(f"MiniMax refused the call (code {code}){said}", retryable=False)


def from_http(status: int, body: bytes, channel: Channel, endpoint: bool = False,
              headers: Headers | None = None) -> GatewayError:
    """An HTTP error status; a base_resp in its body still decides. `endpoint`: the call was
    to a fixed API path, where a 404 or 405 means the channel's base URL is wrong."""
    try:
        code, message = base_resp(orjson.loads(body))
    except orjson.JSONDecodeError:
        code, message = None, None
    if code not in (None, OK):
        return from_status_code(code, message, channel, headers)
    if endpoint and status in (404, 405):
        return upstream_errors.misconfigured(channel, status, retryable=False)
    if status == failures.RATE_LIMITED:
        return failures.rate_limited(WHO, headers)
    if status in failures.REJECTED_KEY:
        log.warning("channel %r is misconfigured: MiniMax answered HTTP %d", channel.name, status)
        return failures.rejected_key("the upstream", retryable=False, why=f"HTTP {status}")
    if status in failures.CLIENT_FAULTS:
        return upstream_errors.relayed(channel, 400, message, code="invalid_request",
                                       default="MiniMax rejected the request.", prefix="MiniMax: ")
    if status >= 500:
        return failures.overloaded(WHO, status, headers)
    return upstream_failed(f"MiniMax refused the call (HTTP {status}).", retryable=False)


def network_error(exc: BaseException) -> GatewayError:
    return unreachable(exc, "MiniMax")
