"""What an operator may type for a token, checked the same way for the CLI and the
Admin API: each refusal is one line naming what is wrong."""
from __future__ import annotations

import urllib.parse

from server import durations, url_rules
from server.admin.errors import AdminError
from server.billing import money

MAX_NAME_CHARS = 64


def name(text: str) -> str:
    # names are printed in tables and access log lines: a line break would forge one
    if not isinstance(text, str) or not text or url_rules.BLANK.search(text) or len(text) > MAX_NAME_CHARS:
        raise AdminError(f"{text!r} must be 1 to {MAX_NAME_CHARS} characters without spaces")
    return text


def models(items: list[str], original: str | None = None) -> list[str]:
    """A token's models: an empty list would silently mean "all models"."""
    cleaned = [item.strip() for item in items if item.strip()]
    if not cleaned:
        raise AdminError(f"{original if original is not None else items!r} names no model "
                         "(leave --models out for all models)")
    for model in cleaned:
        if url_rules.BLANK.search(model):
            raise AdminError(f"model name {model!r} must not contain spaces")
    return cleaned


def duration(text: str) -> int:
    try:
        return durations.parse_duration(text)
    except ValueError as exc:
        raise AdminError(str(exc)) from None


def amount(text: str) -> int:
    try:
        return money.parse_amount(text)
    except money.MoneyError as exc:
        raise AdminError(str(exc)) from None


def quota(text: str) -> int | None:
    """An amount, or "none" for unlimited."""
    if isinstance(text, str) and text.strip().lower() in ("none", "unlimited"):
        return None
    return amount(text)


MAX_PRIORITY = 1_000_000  # SQLite stores at most 64-bit integers; no operator needs more than this


def priority(value: object) -> int:
    """A channel's priority: a whole number, as text (the CLI) or a number (the API)."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            pass
    if number is None or abs(number) > MAX_PRIORITY:
        raise AdminError(f"{value!r} is not a whole number from -{MAX_PRIORITY} to {MAX_PRIORITY}")
    return number


MAX_WEIGHT = 10_000


def weight(value: object) -> int:
    """A channel's weight: its share of its priority tier's requests, relative to the
    others'; 0 makes it a standby, used only when its tier's other channels are not."""
    number = _whole(value)
    if number is None or not 0 <= number <= MAX_WEIGHT:
        raise AdminError(f"{value!r} is not a whole number from 0 to {MAX_WEIGHT}")
    return number


MAX_TIMEOUT = 7 * 24 * 3600.0
DEFAULT = "default"


def timeout(value: object) -> float | None:
    """A channel's timeout in seconds; "default" or 0 (the Admin API's JSON cannot send
    null through protobuf) give None: the gateway's default of `st-ai serve --timeout-*`."""
    if value is None or (isinstance(value, str) and value.strip().lower() == DEFAULT):
        return None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool) and _zero(value):
        return None
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    if number is None or not 0 < number <= MAX_TIMEOUT:  # also refuses nan and inf
        raise AdminError(f"{value!r} is not a number of seconds above 0 and at most a week ({MAX_TIMEOUT:g}), "
                         f"nor {DEFAULT!r}")
    return number


def _zero(value: int | float | str) -> bool:
    try:
        return float(value) == 0
    except ValueError:
        return False


def _whole(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and value.strip().isascii():
        return int(value)
    return None


MAX_WEBHOOK_URL = 2048


def webhook_url(text: object) -> str:
    """A token's webhook URL: http(s) with a real host; a ?query is allowed (receivers often
    take a token there), so the URL is never repeated in a refusal."""
    if not isinstance(text, str) or not text or len(text) > MAX_WEBHOOK_URL or url_rules.BLANK.search(text):
        raise AdminError(f"the webhook URL must be an http(s) URL without spaces, at most {MAX_WEBHOOK_URL} "
                         "characters, e.g. https://example.com/hooks/st-ai")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not text.lower().startswith(f"{parts.scheme.lower()}://"):
        raise AdminError("the webhook URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise AdminError("the webhook URL must not hold credentials (user:password@)")
    try:
        url_rules.check_host(parts.hostname or "", "the webhook URL", "https://example.com/hooks/st-ai")
        port = parts.port
    except ValueError as exc:
        raise AdminError(str(exc).replace(repr(text), "the webhook URL")) from None
    if port is not None and not 0 < port <= 65535:
        raise AdminError("the webhook URL has a port that is not a number from 1 to 65535")
    return text
