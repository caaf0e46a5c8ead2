"""Runway's error answers as the gateway's error; what Runway said goes through
server.upstream_errors, which keeps the channel's key and address out. Runway answers
`{"error": "<text>"}`, and for a body that fails validation adds zod `issues`
(`[{"code", "path", "message", ...}]`) and a `docUrl`."""
from __future__ import annotations


import orjson

from server import upstream_errors
from server.errors import GatewayError, upstream_failed, unreachable
from server.store.channels import Channel

# Runway's field names back to the names the client used, for `param`.
PARAMS = {"model": "model", "promptImage": "image", "promptText": "prompt", "ratio": "size",
          "duration": "duration", "seed": "seed"}


def _parse(body: bytes) -> tuple[str | None, list[dict]]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, []
    if not isinstance(parsed, dict):
        return None, []
    error = parsed.get("error")
    issues = parsed.get("issues")
    return (error if isinstance(error, str) else None,
            [i for i in issues if isinstance(i, dict)] if isinstance(issues, list) else [])


def _param(issue: dict) -> str | None:
    path = issue.get("path")
    if not isinstance(path, list) or not path or not isinstance(path[0], str):
        return None
    head = path[0]
    return PARAMS.get(head, f"metadata.{head}")


def from_response(status: int, body: bytes, channel: Channel, endpoint: bool = False) -> GatewayError:
    """`endpoint`: the call was to a fixed API path (submitting), where a 404 or 405
    means the channel is set up wrong, not that a task is missing."""
    if endpoint and status in (404, 405):
        return upstream_errors.misconfigured(channel, status, retryable=False)
    error, issues = _parse(body)
    if status in (400, 409, 422):
        if error and "enough credits" in error.lower():
            # The channel's account is empty, not the request wrong: another channel may serve it.
            return upstream_failed("The upstream account has run out of credits.")
        message = error or f"Runway rejected the request (HTTP {status})."
        param = None
        if issues:
            first = issues[0]
            detail = first.get("message")
            if isinstance(detail, str) and detail:
                where = ".".join(str(p) for p in first.get("path") or [] if isinstance(p, (str, int)))
                message = f"{message}: {where + ': ' if where else ''}{detail}"
            param = _param(first)
        return upstream_errors.relayed(channel, 400, message, code="invalid_request", param=param,
                                       default="Runway rejected the request.", prefix="Runway: ")
    if status == 404:
        return GatewayError(404, "Runway: " + (upstream_errors.words(channel, error) or "No such task."),
                            "not_found")
    if status == 429:
        return GatewayError(429, "Runway is rate limiting this channel; try again shortly.",
                            "upstream_rate_limited", retryable=True)
    if status == 401:
        # A wrong key is the operator's to fix; another request would fail the same way.
        return upstream_failed("The upstream rejected the channel's credentials.", retryable=False)
    if status == 403:
        return upstream_failed("The upstream refused this channel access (HTTP 403).", retryable=False)
    if status == 504:
        return GatewayError(504, "Runway is overloaded and did not answer in time.", "upstream_timeout",
                            retryable=True)
    if status >= 500:
        return upstream_failed(f"Runway failed (HTTP {status}).")
    # 405 and other codes mean st-ai called Runway wrongly: not the client's fault, not transient.
    return upstream_failed(f"Runway refused the call (HTTP {status}).", retryable=False)


def network_error(exc: BaseException) -> GatewayError:
    return unreachable(exc, "Runway")
