"""An upstream's `Retry-After` (RFC 9110: delay-seconds or an HTTP-date) as seconds from
now, bounded: a provider cannot park a channel for longer than a day. Also the
`retry-after-ms` some send beside it (a number of milliseconds)."""
from __future__ import annotations

import email.utils
import math
import time

MOST = 86400.0


def seconds(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    text = value.strip()
    try:
        delay = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        delay = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(delay):
        return None
    return min(max(delay, 0.0), MOST)


def milliseconds(value: str | None) -> float | None:
    """A `retry-after-ms` value as seconds, bounded as `seconds` is."""
    try:
        delay = float(value.strip()) / 1000 if value else None
    except ValueError:
        return None
    if delay is None or not math.isfinite(delay):
        return None
    return min(max(delay, 0.0), MOST)
