"""Which bytes of a file a client asked for, by RFC 9110's rules (section 14), for
every transport: the REST bridge turns a `Range` header into these fields, gRPC
clients send them as they are."""
from __future__ import annotations

from dataclasses import dataclass

from server.errors import GatewayError, invalid_request


@dataclass(frozen=True)
class ByteRange:
    """A request's range fields: `start`/`end` (inclusive; either may be left out) or
    `suffix` (the last N bytes). All None: the whole file."""
    start: int | None = None
    end: int | None = None
    suffix: int | None = None

    @property
    def asked(self) -> bool:
        return self.start is not None or self.end is not None or self.suffix is not None


@dataclass(frozen=True)
class Span:
    first: int
    last: int       # inclusive; first - 1 for an empty file sent whole
    total: int
    partial: bool   # answered as a range (206 / Content-Range), not the whole file

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.total}"


class RangeNotSatisfiable(GatewayError):
    """416: no byte of the file is in the range. Carries the `Content-Range: bytes */N`
    RFC 9110 (14.4) asks for, so a client learns the size."""

    def __init__(self, total: int) -> None:
        super().__init__(416, f"The range is not satisfiable: the content has {total} bytes.",
                         "range_not_satisfiable")
        self.content_range = f"bytes */{total}"


INT64_MAX = 2**63 - 1


def _check(value: int | None, name: str) -> None:
    # Over gRPC a count past int64 sent as uint64 arrives as a negative int64: the message
    # says what the field holds, and that the largest value already means "to the end".
    if value is not None and value < 0:
        raise invalid_request(f"'{name}' must be a byte offset from 0 to {INT64_MAX} (int64); a larger one "
                              f"means the same as {INT64_MAX}.", param=name)


def resolve(asked: ByteRange, total: int) -> Span:
    """The bytes to send for `asked` out of a file of `total` bytes."""
    _check(asked.start, "range_start")
    _check(asked.end, "range_end")
    _check(asked.suffix, "suffix_length")
    if asked.suffix is not None and (asked.start is not None or asked.end is not None):
        raise invalid_request("Send either 'suffix_length' or 'range_start'/'range_end', not both.",
                              param="suffix_length")
    if not asked.asked:
        return Span(0, total - 1, total, partial=False)
    if asked.suffix is not None:
        # bytes=-0 asks for nothing, which no file can satisfy (RFC 9110 14.1.1)
        if asked.suffix == 0 or total == 0:
            raise RangeNotSatisfiable(total)
        return Span(max(0, total - asked.suffix), total - 1, total, partial=True)
    first = asked.start or 0
    # a range whose last byte comes before its first is invalid; RFC 9110 14.2 lets a
    # server reject it, as nginx does
    if first >= total or (asked.end is not None and asked.end < first):
        raise RangeNotSatisfiable(total)
    last = total - 1 if asked.end is None else min(asked.end, total - 1)
    return Span(first, last, total, partial=True)
