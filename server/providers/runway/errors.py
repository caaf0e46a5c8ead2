"""Runway's error answers as the gateway's error; what Runway said goes through
server.upstream_errors, which keeps the channel's key and address out. Runway answers
`{"error": "<text>"}`, and for a body that fails validation adds zod `issues`
(`[{"code", "path", "message", ...}]`) and a `docUrl`."""
from __future__ import annotations


import orjson

from server import upstream_errors
from server.errors import GatewayError, upstream_failed, unreachable
from server.providers import failures
from server.providers.failures import Headers
from server.store.channels import Channel

WHO = "Runway"

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


def from_response(status: int, body: bytes, channel: Channel, endpoint: bool = False,
                  headers: Headers | None = None) -> GatewayError:
    """`endpoint`: the call was to a fixed API path (submitting), where a 404 or 405
    means the channel is set up wrong, not that a task is missing. `headers`: the
    answer's, for its Retry-After."""
    if endpoint and status in (404, 405):
        return upstream_errors.misconfigured(channel, status, retryable=False)
    error, issues = _parse(body)
    if status in failures.CLIENT_FAULTS or status == 409:
        if error and "enough credits" in error.lower():
            # The channel's account is empty, not the request wrong: another channel may serve it.
            return failures.account_exhausted("The upstream account has run out of credits.")
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
    if status == failures.RATE_LIMITED:
        return failures.rate_limited(WHO, headers)
    if status in failures.REJECTED_KEY:
        # A wrong key is the operator's to fix; another request would fail the same way,
        # so it is final here, and the channel's fault.
        return failures.rejected_key("the upstream", retryable=False,
                                     why="HTTP 403: access refused" if status == 403 else None)
    if status >= 500:
        return failures.overloaded(WHO, status, headers)
    # 405 and other codes mean st-ai called Runway wrongly: not the client's fault, not transient.
    return upstream_failed(f"Runway refused the call (HTTP {status}).", retryable=False)


def network_error(exc: BaseException) -> GatewayError:
    return unreachable(exc, "Runway")
