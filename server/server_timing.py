"""The `Server-Timing` value st-ai puts on its answers (an HTTP header, gRPC metadata):
`gateway;dur=G, upstream;dur=U`, milliseconds, where U is the time spent waiting on
upstreams (every attempt; for a stream still running, its winner's time to first event)
and G is st-ai's own time, the rest of the answer's time so far."""
from __future__ import annotations

import re
import time

from server import call_record
from server.call_record import CallRecord

KEY = "server-timing"  # gRPC metadata keys are lower case; HTTP headers are not case sensitive
_UPSTREAM = re.compile(r"(?:^|,)\s*upstream;dur=([0-9]+(?:\.[0-9]+)?)\s*(?:,|$)")


def value(total_seconds: float, upstream_seconds: float) -> str:
    upstream_ms = max(0.0, upstream_seconds * 1000)
    gateway_ms = max(0.0, total_seconds * 1000 - upstream_ms)
    return f"gateway;dur={gateway_ms:.2f}, upstream;dur={upstream_ms:.2f}"


def of_record(record: CallRecord, now: float | None = None) -> str:
    """The value for a call recorded by `record`, as of now."""
    now = time.monotonic() if now is None else now
    return value(now - record.started, call_record.upstream_so_far(record))


def upstream_seconds(header: str | None) -> float | None:
    """The upstream part of a value another st-ai process sent, in seconds."""
    if not header:
        return None
    match = _UPSTREAM.search(header)
    return float(match.group(1)) / 1000 if match else None
