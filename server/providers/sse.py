"""Reading Server-Sent Events from an upstream response body, event by event."""
from __future__ import annotations

from typing import AsyncIterator

import aiohttp

MAX_EVENT_BYTES = 8 * 1024 * 1024


async def data_events(body: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Yield each event's `data` payload as soon as the event's blank line arrives.
    Multi-line data is joined with newlines, as the SSE spec says; comments and
    other fields (event:, id:, retry:) are skipped."""
    data: list[bytes] = []
    size = 0
    while True:
        line = await body.readline()
        if not line:
            break
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
                data, size = [], 0
            continue
        if line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            size += len(value)
            if size > MAX_EVENT_BYTES:
                raise ValueError("upstream event too large")
            data.append(value)
    if data:  # a stream that ends without the final blank line
        yield b"\n".join(data)
