"""The `Range` request header (RFC 9110, section 14.2) as GetVideoContent's fields.

What cannot be honoured is ignored, which the RFC allows a server to do with any
Range header: an unknown unit, a syntax error, several ranges (answered with the
whole file), or a Range under an `If-Range` (st-ai sends no validators, so an
If-Range never matches). The arithmetic against the file's size happens in
server/byte_ranges.py, for both transports.
"""
from __future__ import annotations

# Offsets past what int64 holds are clamped to it: beyond any file's size, they mean
# the same thing (a first byte past the end, a last byte or suffix covering the rest).
INT64_MAX = 2**63 - 1
_DIGITS = frozenset("0123456789")
RANGE_FIELDS = ("range_start", "range_end", "suffix_length")


def _offset(text: str) -> int | None:
    """1*DIGIT, ASCII only; None when it is not one. Never parses thousands of digits."""
    if not text or not set(text) <= _DIGITS:
        return None
    text = text.lstrip("0") or "0"
    return INT64_MAX if len(text) > 19 else min(int(text), INT64_MAX)


def query_offsets(query, field_names) -> dict[str, int]:
    """The range fields among query parameters (`?suffix_length=N`) that are plain
    digits, read like a Range header's offsets: a number past int64 is clamped, so the
    query and the header answer alike (a suffix longer than any file is the whole file).
    Anything else (a sign, a letter) is left to the ordinary query rules."""
    out = {}
    for name in RANGE_FIELDS:
        if name in field_names and name in query:
            offset = _offset(query.getall(name)[-1])  # the last one, as for other query fields
            if offset is not None:
                out[name] = offset
    return out


def range_fields(headers) -> dict[str, int]:
    """{range_start, range_end} or {suffix_length} for the one byte range asked for;
    {} when the Range header is absent or ignored."""
    value = headers.get("Range")
    if value is None or "If-Range" in headers:
        return {}
    unit, sep, ranges = value.strip().partition("=")
    if not sep or unit.lower() != "bytes":  # range units are case-insensitive
        return {}
    # a list may hold empty elements, which recipients skip (RFC 9110 5.6.1.2)
    specs = [spec.strip(" \t") for spec in ranges.split(",") if spec.strip(" \t")]
    if len(specs) != 1:
        return {}
    first, sep, last = specs[0].partition("-")
    if not sep:
        return {}
    if first == "":
        suffix = _offset(last)
        return {} if suffix is None else {"suffix_length": suffix}
    start = _offset(first)
    end = _offset(last) if last else None
    if start is None or (last and end is None):
        return {}
    return {"range_start": start} if end is None else {"range_start": start, "range_end": end}
