"""Reading Server-Sent Events from an upstream response body, event by event."""
from __future__ import annotations

from typing import AsyncIterator

import aiohttp

MAX_EVENT_BYTES = 8 * 1024 * 1024


def _too_large() -> ValueError:
    return ValueError("upstream event too large")


async def data_events(body: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Yield each event's `data` payload as soon as the event's blank line arrives.
    Multi-line data is joined with newlines, as the SSE spec says; comments and
    other fields (event:, id:, retry:) are skipped. What arrived together is split
    into lines at once, not read line by line: a stream's events often come several
    to a network read. Each line is read in this loop, not by a call per line: a stream
    has two lines per event. Callers that may stop before the body's end (at `[DONE]`, on
    an error event) close it with `contextlib.aclosing`: an async generator left to the
    garbage collector is closed later by the event loop, in a task of its own."""
    data: list[bytes] = []  # the event's data lines so far
    size = 0
    partial: list[bytes] = []  # a line whose newline has not arrived yet
    partial_size = 0
    ended = False
    while not ended:
        block = await body.readany()
        if not block:
            if not partial:
                break
            block, ended = b"\n", True  # the last line came without its newline: end it here
        if partial:
            head, newline, block = block.partition(b"\n")
            partial.append(head)
            partial_size += len(head)
            if not newline:
                if partial_size > MAX_EVENT_BYTES:
                    raise _too_large()
                continue
            lines = [b"".join(partial), *block.split(b"\n")]
            partial, partial_size = [], 0
        else:
            lines = block.split(b"\n")
        last = lines.pop()
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:  # the blank line: the event is whole
                if data:
                    yield data[0] if len(data) == 1 else b"\n".join(data)
                    data, size = [], 0
            elif line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                size += len(value)
                if size > MAX_EVENT_BYTES:
                    raise _too_large()
                data.append(value)
        if last:
            partial, partial_size = [last], len(last)
            if partial_size > MAX_EVENT_BYTES:
                raise _too_large()
    if data:  # a stream that ends without the final blank line
        yield b"\n".join(data)
