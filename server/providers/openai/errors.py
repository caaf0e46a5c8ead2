"""Turning an OpenAI-style upstream error into the gateway's error, without leaking
the channel's key or address to the client."""
from __future__ import annotations

import orjson

from server.errors import GatewayError, upstream_failed
from server.store.channels import Channel

# Upstream statuses that are the client's own doing: relayed with the upstream's words.
CLIENT_FAULTS = {400, 404, 409, 413, 415, 422}


def scrub(text: str, channel: Channel) -> str:
    for secret in (channel.key, channel.base_url):
        if secret:
            text = text.replace(secret, "***")
    return text


def from_response(status: int, body: bytes, channel: Channel) -> GatewayError:
    error: dict = {}
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            error = parsed["error"]
        elif isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            error = {"message": parsed["error"]}
    except orjson.JSONDecodeError:
        pass
    message = error.get("message") if isinstance(error.get("message"), str) else None
    if status in CLIENT_FAULTS:
        code = error.get("code")
        param = error.get("param")
        kind = error.get("type")
        return GatewayError(
            status, scrub(message or f"The upstream rejected the request (HTTP {status}).", channel),
            code if isinstance(code, str) else None, param if isinstance(param, str) else None,
            kind if isinstance(kind, str) else None)
    if status == 429:
        return GatewayError(429, "The upstream service is rate limiting this channel; try again shortly.",
                            "upstream_rate_limited", retryable=True)
    if status in (401, 403):
        return upstream_failed("The upstream service rejected the channel's credentials.")
    return upstream_failed(f"The upstream service failed (HTTP {status}).")


def from_stream_event(error: object, channel: Channel) -> GatewayError:
    """An `{"error": ...}` event inside an upstream stream."""
    message = error.get("message") if isinstance(error, dict) else None
    text = scrub(message, channel) if isinstance(message, str) else "unknown error"
    return upstream_failed(f"The upstream service failed mid-stream: {text}", retryable=False)
