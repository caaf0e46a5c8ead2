"""One pooled HTTP/1.1 connection to an upstream API, and the answer it is receiving.

The answer's status line and headers, then its body, are read by httptools' parser (llhttp,
Node's parser) in the protocol's `data_received`: no task per connection, no stream reader
between the socket and the caller. The body is decoded here (gzip, deflate), kept in a
bounded buffer (reading pauses above BUFFER_HIGH until the caller catches up), and taken
by the caller whole (`read`) or as it comes (`readany`, what an SSE reader wants).
"""
from __future__ import annotations

import asyncio
import zlib
from collections import deque
from typing import Callable

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from server.api_client.errors import BadAnswer, ConnectionDropped

BUFFER_HIGH = 256 * 1024  # bytes of body buffered before the socket stops being read
BUFFER_LOW = 64 * 1024  # and resumed once the caller has taken it down to this
MAX_HEADERS = 128  # as aiohttp's parser
MAX_HEAD_BYTES = 64 * 1024  # a status line and headers longer than this are refused (llhttp sets no bound)
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


class Answer:
    """An upstream's answer: `status` and `headers` once `head` has resolved, then its body."""
    __slots__ = ("status", "headers", "head", "_conn", "_chunks", "_size", "_eof", "_error", "_waiter",
                 "_decoder", "_close_delimited", "_paused", "on_end")

    def __init__(self, conn: "Connection", loop: asyncio.AbstractEventLoop) -> None:
        self.status = 0
        self.headers = _NO_HEADERS
        self.head: asyncio.Future[None] = loop.create_future()
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._decoder = None
        self._close_delimited = False  # a body that ends when the connection does
        self._paused = False
        # set when its reader left before the end: the rest is dropped as it comes, and this
        # is called once it has all come (the connection can then carry another call)
        self.on_end: Callable[[], None] | None = None

    def discard_rest(self, on_end: Callable[[], None]) -> None:
        self.on_end = on_end
        self._chunks.clear()
        self._size = 0
        if self._paused:
            self._paused = False
            self._conn.resume_reading()

    # -- what callers use (the part of aiohttp's ClientResponse the providers read) --

    @property
    def content_type(self) -> str:
        raw = self.headers.get("Content-Type")
        return raw.partition(";")[0].strip().lower() if raw else "application/octet-stream"

    @property
    def content(self) -> "Answer":
        """The body as a stream (`readany`), where aiohttp's answer has its StreamReader."""
        return self

    @property
    def complete(self) -> bool:
        return self._eof and self._error is None

    @property
    def error(self) -> BaseException | None:
        """Why the answer failed (what its reads raise), if it did."""
        return self._error

    async def read(self) -> bytes:
        """The whole body."""
        parts = []
        while block := await self.readany():
            parts.append(block)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def readany(self) -> bytes:
        """Whatever of the body has arrived (waiting for some if none has), b"" at its end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._waiter = self._conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        block = self._chunks.popleft() if len(self._chunks) == 1 else _take_all(self._chunks)
        self._size -= len(block)
        if self._paused and self._size <= BUFFER_LOW:
            self._paused = False
            self._conn.resume_reading()
        return block

    # -- what the connection tells it --

    def _got_head(self, status: int, raw: list[tuple[bytes, bytes]]) -> None:
        headers = CIMultiDict([(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw])
        if (coding := headers.get("Content-Encoding")) is not None:
            coding = coding.strip().lower()
            if coding in ("gzip", "x-gzip"):
                self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                self._decoder = _Deflate()
            elif coding not in ("", "identity"):
                self._fail(BadAnswer(f"an answer in an encoding st-ai does not read ({coding[:40]})"))
                return
        self.status = status
        self.headers = CIMultiDictProxy(headers)
        self._close_delimited = (status not in (204, 304) and "Content-Length" not in headers
                                 and "chunked" not in ",".join(headers.getall("Transfer-Encoding", ())).lower())
        if not self.head.done():
            self.head.set_result(None)

    def _feed(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error:
                self._fail(BadAnswer("a compressed body that does not decompress"))
                return
            if not data:
                return
        if self.on_end is not None:
            return
        self._chunks.append(data)
        self._size += len(data)
        if self._size > BUFFER_HIGH and not self._paused:
            self._paused = True
            self._conn.pause_reading()
        self._wake()

    def _end(self) -> None:
        if self._decoder is not None:
            try:
                rest = self._decoder.flush()
            except zlib.error:
                self._fail(BadAnswer("a compressed body that does not decompress"))
                return
            self._decoder = None
            if rest:
                self._chunks.append(rest)
                self._size += len(rest)
        self._eof = True
        self._wake()
        if self.on_end is not None:
            self.on_end()

    def _lost(self, exc: BaseException | None) -> None:
        """The connection closed: the end of a body that runs to it, else a cut answer."""
        if self._eof or self._error is not None:
            return
        if self.head.done() and self._close_delimited and exc is None:
            self._end()
        else:
            self._fail(ConnectionDropped("the upstream closed the connection before its answer was complete"))

    def _fail(self, exc: BaseException) -> None:
        if self._eof or self._error is not None:
            return
        self._error = exc
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # retrieved here: a caller gone by now need not read it
        self._wake()
        self._conn.close()
        if self.on_end is not None:
            self.on_end()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _take_all(chunks: deque[bytes]) -> bytes:
    block = b"".join(chunks)
    chunks.clear()
    return block


class _Deflate:
    """`deflate` as servers send it: zlib-wrapped, or (some) raw."""
    def __init__(self) -> None:
        self._inner = None

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._inner.decompress(data)

    def flush(self) -> bytes:
        return self._inner.flush() if self._inner is not None else b""


class Connection(asyncio.Protocol):
    """A keep-alive connection carrying one answer at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: tuple[str, str, int],
                 on_lost: Callable[["Connection"], None]) -> None:
        self.loop = loop
        self.origin = origin
        self.counted = True  # against its origin's limit, until it is dropped from the pool
        self.leased = False  # a call (or the reading of an early-left answer's rest) holds it
        self.transport: asyncio.Transport | None = None
        self.answer: Answer | None = None
        self.idle_since = 0.0
        self.closed = False
        self.sending = False  # its request's body is still being written
        self._on_lost = on_lost
        self._parser = httptools.HttpResponseParser(self)
        self._raw: list[tuple[bytes, bytes]] = []
        self._interim = False
        self._keep_alive = False  # read while the answer's last callback runs: llhttp resets after it
        self._head_bytes = 0  # of the answer before its head was whole
        self._drain: asyncio.Future[None] | None = None
        self._writing_paused = False

    def start(self) -> Answer:
        """A new answer is awaited on this connection (its request is about to be written)."""
        self.answer = Answer(self, self.loop)
        self._raw = []
        self._keep_alive = False
        self._head_bytes = 0
        return self.answer

    @property
    def reusable(self) -> bool:
        """Whether it can carry another call: its answer read to the end (or none asked for
        yet: handed to a caller who left at once), and kept alive."""
        if self.closed or self.sending:
            return False
        return self.answer is None or (self.answer.complete and self._keep_alive)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        self._wake_drain()

    def pause_reading(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.resume_reading()

    async def drain(self) -> None:
        """Waits while the socket's send buffer is over its limit."""
        if self._writing_paused and not self.closed:
            self._drain = self.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self.closed:
            if self.answer is not None and self.answer.error is not None:
                raise self.answer.error
            raise ConnectionDropped("the upstream closed the connection while the request was being sent")

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.answer is None or self.answer.complete:
            self.close()  # bytes nobody asked for: the connection cannot be trusted with another call
            return
        answer = self.answer
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            answer._fail(BadAnswer("a protocol switch st-ai did not ask for"))
        except httptools.HttpParserError as exc:
            answer._fail(BadAnswer(f"an answer that is not HTTP/1.1 ({str(exc)[:80]})"))
        else:
            if not answer.head.done():
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    answer._fail(BadAnswer(f"a status line and headers longer than {MAX_HEAD_BYTES} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None:
            self.answer._lost(exc)
        self._wake_drain()
        self._on_lost(self)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- httptools callbacks --

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))
        if len(self._raw) > MAX_HEADERS and self.answer is not None:
            self.answer._fail(BadAnswer(f"more than {MAX_HEADERS} headers"))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self._interim = True
            self._raw = []
            return
        if self.answer is not None:
            self.answer._got_head(status, self._raw)

    def on_body(self, body: bytes) -> None:
        if self.answer is not None:
            self.answer._feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._keep_alive = self._parser.should_keep_alive()
        if self.answer is not None:
            self.answer._end()
