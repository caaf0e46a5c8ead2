"""Request bodies for upstreams, sent without a second copy of a large one.

asyncio's socket transport (before Python 3.12) copies whatever a single write could not
send at once into its own buffer, so a 30 MB body handed over whole is held twice until
the upstream has read it. A large body is written in slices instead, each waiting for
the socket to drain, so the transport never holds more than a slice of it.
"""
from __future__ import annotations

import orjson
from aiohttp import payload
from aiohttp.abc import AbstractStreamWriter

SLICE_BYTES = 256 * 1024


class SlicedBytes(payload.Payload):
    def __init__(self, value: bytes, content_type: str = "application/json") -> None:
        super().__init__(value, content_type=content_type)
        self._size = len(value)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._value.decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self._value

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        view = memoryview(self._value)[:content_length]
        for start in range(0, len(view), SLICE_BYTES):
            # write() drains once the transport's buffer passes its limit
            await writer.write(view[start:start + SLICE_BYTES])


def json_body(body: dict) -> bytes | SlicedBytes:
    """`body` as JSON for an upstream request's `data=`."""
    raw = orjson.dumps(body)
    return raw if len(raw) <= SLICE_BYTES else SlicedBytes(raw)
