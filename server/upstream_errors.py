"""Errors built from what st-ai knows, never from what an upstream sent.

Providers build every error that carries an upstream's words here (`relayed`,
`words`, `misconfigured`); every relay path (chat plain and streamed, images, video
submit, poll and remix) hands the errors out of a provider through `for_client`
before a client, the database or a log sees them; failed video tasks are stored
through `task_failure`. An upstream's `type` and `code` count only when they are
values the API documents (or st-ai's own, for a chained st-ai); `param` only when it
names a field of the client's own request; messages go through the one scrubber.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from server import redact
from server.errors import DEFAULT_TYPE, GatewayError
from server.store.channels import Channel

log = logging.getLogger("st_ai.upstream")

MAX_WORDS = 600  # an upstream's message is cut to this, after scrubbing

# OpenAI's documented error types.
KNOWN_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "conflict_error", "unprocessable_entity_error", "rate_limit_error", "insufficient_quota",
    "server_error", "api_error", "timeout_error", "service_unavailable_error", "upstream_error",
    "image_generation_user_error",
})

# OpenAI's documented error codes, and st-ai's own (so a chained st-ai's codes pass).
KNOWN_CODES = frozenset({
    # OpenAI
    "invalid_api_key", "model_not_found", "context_length_exceeded", "rate_limit_exceeded",
    "insufficient_quota", "invalid_value", "invalid_type", "missing_required_parameter",
    "unknown_parameter", "unsupported_parameter", "unsupported_value", "invalid_prompt",
    "invalid_image", "invalid_image_format", "invalid_image_url", "image_too_large", "image_too_small",
    "image_parse_error", "image_content_policy_violation", "content_policy_violation", "content_filter",
    "moderation_blocked", "string_above_max_length", "string_below_min_length", "array_above_max_length",
    "array_below_min_length", "empty_array", "integer_above_max_value", "integer_below_min_value",
    "decimal_above_max_value", "decimal_below_min_value", "invalid_file_format", "file_too_large",
    "server_error", "internal_error", "engine_overloaded", "billing_hard_limit_reached",
    "account_deactivated", "unsupported_country_region_territory", "video_generation_failed",
    # st-ai
    "invalid_request", "not_found", "model_not_allowed", "no_available_channel", "upstream_error",
    "upstream_timeout", "upstream_rate_limited", "upstream_rejected", "request_too_large",
    "range_not_satisfiable", "prompt_required", "prompt_too_long", "image_required", "image_not_supported",
    "model_not_supported", "seed_not_supported", "remix_unsupported", "task_not_found", "video_not_found",
    "video_not_ready", "video_unavailable", "video_expired", "thumbnail_unavailable", "invalid_video",
    "invalid_input", "generation_failed", "cancelled", "timeout", "channel_unavailable",
    "service_unavailable", "upstream_bad_answer", "unsafe_url",
})

# A status OpenAI's video API reported that st-ai does not know, named in the code.
_STATUS_CODE = re.compile(r"upstream_status_[a-z_]{1,32}")
# `messages[0].content`, `messages.[0].content`, `tools.1.function.name`, `metadata.audio`
_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(?:\.?\[\d{1,6}\]|\.\d{1,6}|\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,16}")
_FIRST = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class UpstreamError(GatewayError):
    """A GatewayError whose `param` an upstream named: `for_client` keeps it only when
    it names a field of the client's request."""


def words(channel: Channel | None, text: object) -> str | None:
    """An upstream's free text as st-ai may repeat it: scrubbed, then cut short."""
    if not isinstance(text, str) or not text.strip():
        return None
    # The operator may read what the upstream said in full; the log scrubber guards this line too.
    log.debug("channel %r: the upstream said %r", channel.name if channel else None, text[:redact.MAX_SCRUBBED])
    clean = redact.scrub(text.strip(), channel)
    return clean if len(clean) <= MAX_WORDS else clean[:MAX_WORDS - 1] + "\u2026"


def known_type(value: object, status: int) -> str | None:
    if isinstance(value, str) and value in KNOWN_TYPES:
        return value
    return DEFAULT_TYPE.get(status, "invalid_request_error" if 400 <= status < 500 else None)


def known_code(value: object, fallback: str | None) -> str | None:
    return value if isinstance(value, str) and value in KNOWN_CODES else fallback


def relayed(channel: Channel, status: int, message: object, *, default: str, type: object = None,
            code: object = None, param: object = None, prefix: str = "") -> UpstreamError:
    """An upstream's refusal that is the client's doing, with the upstream's words.
    An unknown `code` becomes st-ai's own `invalid_request` (or `not_found`)."""
    fallback = "not_found" if status == 404 else "invalid_request"
    return UpstreamError(status, prefix + (words(channel, message) or default),
                         known_code(code, None if code is None else fallback),
                         param if isinstance(param, str) and param else None, known_type(type, status))


def misconfigured(channel: Channel, status: int, retryable: bool = True) -> GatewayError:
    """An upstream 404/405 on an endpoint st-ai calls: the channel's base URL or type is
    wrong, not the client's request, so the attempt loop moves on to another channel (which
    may be set up right) even where `retryable` is False (a video poll must not repeat it)."""
    log.warning("channel %r is misconfigured: its upstream answered HTTP %d on the endpoint st-ai "
                "calls (check its base URL and type)", channel.name, status)
    return GatewayError(502, f"The upstream channel could not serve this request (HTTP {status} on its "
                        "endpoint).", "upstream_error", type="upstream_error", retryable=retryable,
                        channel_fault="misconfigured")


def names_field(param: str, request: Mapping | None) -> bool:
    """Whether `param` is a field path whose first name is a key of the client's request."""
    if not isinstance(request, Mapping) or not _PARAM.fullmatch(param):
        return False
    return _FIRST.match(param).group(0) in request


def for_client(error: GatewayError, channel: Channel | None, request: Mapping | None) -> GatewayError:
    """The error as a client (and st-ai's records) may see it: the channel's secrets
    scrubbed from its message, an upstream's `param` only where it names a field of
    the client's `request`. Changes and returns `error` itself, so a raise keeps its
    traceback and `retryable`."""
    clean = redact.scrub(error.message, channel)
    if clean != error.message:
        error.message = clean
        error.args = (clean,)
    if isinstance(error, UpstreamError) and error.param is not None:
        if not names_field(error.param, request) or redact.for_channel(channel).contains_secret(error.param):
            error.param = None
    return error


def task_failure(channel: Channel | None, code: str | None, message: str | None) -> tuple[str, str]:
    """The code and message a failed video task is stored and shown with."""
    if not (isinstance(code, str) and (code in KNOWN_CODES or (
            _STATUS_CODE.fullmatch(code) and not redact.for_channel(channel).contains_secret(code)))):
        code = "video_generation_failed"
    return code, words(channel, message) or "The video task failed."
