"""Ark's error answer (`{"error": {"code", "message", "param", "type"}}`, the codes of
ModelArk's "Common error codes" page) as the gateway's error. What Ark said goes through
server.upstream_errors, which keeps the channel's key and address out."""
from __future__ import annotations


import orjson

from server import upstream_errors
from server.errors import GatewayError, upstream_failed, unreachable
from server.providers import failures
from server.providers import video_shape as vs
from server.providers.failures import Headers
from server.store.channels import Channel

# Ark's body fields back to the names the client used, for `param`.
PARAMS = {"model": "model", "duration": "duration", "seed": "seed", "ratio": f"metadata.{vs.ASPECT_RATIO}",
          "resolution": f"metadata.{vs.RESOLUTION}", "watermark": f"metadata.{vs.WATERMARK}",
          "generate_audio": f"metadata.{vs.AUDIO}", "camera_fixed": "metadata.camera_fixed",
          "service_tier": "metadata.service_tier", "execution_expires_after": "metadata.execution_expires_after"}
SAFETY = ("SensitiveContentDetected", "RiskDetection")  # parts of Ark's content-safety codes
WHO = "Seedance"


def parse(body: bytes) -> tuple[str | None, str | None, str | None]:
    """Ark's error code, message and param, when the body is its error answer."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None, None, None
    fields = [error.get(name) for name in ("code", "message", "param")]
    return tuple(value if isinstance(value, str) and value else None for value in fields)  # type: ignore[return-value]


def is_safety(code: str | None) -> bool:
    return bool(code) and any(mark in code for mark in SAFETY)


def from_response(status: int, body: bytes, channel: Channel, endpoint: bool = False,
                  headers: Headers | None = None) -> GatewayError:
    """`endpoint`: the call was to a fixed API path (submitting), where a 404 or 405 with
    no Ark error means the channel's base URL is wrong, not that a task is missing.
    `headers`: the answer's, for its Retry-After."""
    code, message, param = parse(body)
    if endpoint and status in (404, 405) and code is None:
        return upstream_errors.misconfigured(channel, status, retryable=False)
    text = upstream_errors.words(channel, message)
    said = f": {text}" if text else "."
    # Retryable only what passes by itself (rate limits, Ark's 5xx, the network): a
    # video task stays on its channel, and a wrong key would fail every try the same way
    # (it is the channel's fault, so a submission still moves on to another channel).
    if status == 401 or code == "AuthenticationError":
        return failures.rejected_key("the upstream", retryable=False)
    if status == 403:
        # AccountOverdueError, AccessDenied, a model not activated: the operator's to fix
        return failures.rejected_key("the upstream", retryable=False, why=f"Ark {code or 'HTTP 403'}")
    if status == failures.RATE_LIMITED:
        return failures.rate_limited(WHO, headers)
    if is_safety(code):
        return GatewayError(400, f"The request was blocked by the upstream's content policy{said}",
                            "content_policy_violation")
    if status in failures.CLIENT_FAULTS:
        head = (param or "").split(".")[0].split("[")[0]
        return upstream_errors.relayed(channel, 400, message, code="invalid_request",
                                       param=PARAMS.get(head) if head != "content" else None,
                                       default="Seedance rejected the request.", prefix="Seedance: ")
    if status == 404:
        # InvalidEndpointOrModel.NotFound / ModelNotOpen: the model is not on this account
        if endpoint:
            return upstream_failed(f"The upstream has no such model for this channel (Ark {code}){said}",
                                   retryable=False)
        return upstream_failed(f"The upstream no longer has this task{said}", retryable=False)
    if status >= 500:
        return failures.overloaded(WHO, status, headers)
    return upstream_failed(f"Seedance refused the call (HTTP {status}).", retryable=False)


def network_error(exc: BaseException) -> GatewayError:
    return unreachable(exc, "Seedance")
