"""Reading Server-Sent Events from an upstream response body, event by event."""
from __future__ import annotations

from typing import AsyncIterator

import aiohttp

MAX_EVENT_BYTES = 8 * 1024 * 1024


class _Event:
    """The event being read: its data lines so far."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.size = 0

    def line(self, line: bytes) -> bytes | None:
        """Take one line (its newline gone); the event's data when the line ends it."""
        line = line.rstrip(b"\r")
        if not line:
            if not self.data:
                return None
            data, self.data, self.size = b"\n".join(self.data), [], 0
            return data
        if line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            self.size += len(value)
            if self.size > MAX_EVENT_BYTES:
                raise ValueError("upstream event too large")
            self.data.append(value)
        return None


async def data_events(body: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Yield each event's `data` payload as soon as the event's blank line arrives.
    Multi-line data is joined with newlines, as the SSE spec says; comments and
    other fields (event:, id:, retry:) are skipped. What arrived together is split
    into lines at once, not read line by line: a stream's events often come several
    to a network read."""
    event = _Event()
    partial: list[bytes] = []  # a line whose newline has not arrived yet
    partial_size = 0
    while block := await body.readany():
        if partial:
            head, newline, block = block.partition(b"\n")
            partial.append(head)
            partial_size += len(head)
            if not newline:
                if partial_size > MAX_EVENT_BYTES:
                    raise ValueError("upstream event too large")
                continue
            line, partial, partial_size = b"".join(partial), [], 0
            if (data := event.line(line)) is not None:
                yield data
        lines = block.split(b"\n")
        last = lines.pop()
        for line in lines:
            if (data := event.line(line)) is not None:
                yield data
        if last:
            partial, partial_size = [last], len(last)
            if partial_size > MAX_EVENT_BYTES:
                raise ValueError("upstream event too large")
    if partial:  # the last line, without its newline
        event.line(b"".join(partial))
    if event.data:  # a stream that ends without the final blank line
        yield b"\n".join(event.data)
