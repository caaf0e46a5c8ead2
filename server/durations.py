"""Durations an operator types (`--expires-in 30d`, `--video-retention 48h`): a whole
number with a unit, above zero. A bare number is refused rather than guessed at: `10`
meant as days would silently become ten seconds."""
from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
LONGEST = 100 * 365 * 86400  # beyond this a timestamp stops being a date anyone means
_DURATION = re.compile(r"(\d{1,12})([smhdw])")


def parse_duration(text: str) -> int:
    """Seconds in `text`, e.g. "90m" -> 5400. Raises ValueError naming what is wrong."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration: write a whole number and a unit "
                         "(s, m, h, d or w), e.g. 30d, 12h, 90m or 3600s")
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a duration above zero")
    if seconds > LONGEST:
        raise ValueError(f"{text!r} is longer than 100 years")
    return seconds
