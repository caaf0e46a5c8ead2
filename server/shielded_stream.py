"""An upstream stream whose reader may be cancelled without cancelling the upstream.

When a client leaves, its task is cancelled wherever it waits, usually while reading the
upstream's next chunk. Read directly, that cancellation would close the upstream response
too, and the usage chunk still owed for what was generated would be lost. Here one task per
stream (the pump) reads the chunks, a few ahead of the reader: a cancelled reader only stops
waiting, the read goes on, and whoever takes the stream over (the settlement that drains it)
picks the chunks up where the reader left them.

Reading ahead is also what keeps a chunk cheap: chunks that arrived together are read in one
step of the pump and taken without waiting, instead of one task and a few turns of the event
loop per chunk.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import AsyncIterator, Generic, TypeVar

T = TypeVar("T")

# chunks read but not yet taken: enough for what a network read brings at once (an upstream
# that flushes a few dozen events together is handed on as one batch, one write to the
# client), small enough that a reader that stopped holds little of the answer in memory
READ_AHEAD = 32


class _End:
    """The last entry of the queue: the stream ended (error None) or failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class ShieldedStream(Generic[T]):
    def __init__(self, chunks: AsyncIterator[T], read_ahead: int = READ_AHEAD) -> None:
        self._chunks = chunks
        self._read_ahead = read_ahead
        self._queue: collections.deque = collections.deque()
        self._pump: asyncio.Task | None = None
        self._reader: asyncio.Future | None = None  # a reader waiting for the next entry
        self._room: asyncio.Future | None = None  # the pump waiting for the queue to have room

    def __aiter__(self) -> "ShieldedStream[T]":
        return self

    async def __anext__(self) -> T:
        queue = self._queue
        if not queue:
            if self._pump is None:
                self._pump = asyncio.get_running_loop().create_task(self._run())
            self._reader = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter  # a cancelled reader stops waiting here; the pump reads on
            finally:
                self._reader = None
        entry = queue[0]
        if isinstance(entry, _End):  # it stays: every later read sees the end again
            if entry.error is not None:
                error, entry.error = entry.error, None  # raised once, then the stream has ended
                raise error
            raise StopAsyncIteration
        queue.popleft()
        if self._room is not None and not self._room.done():
            self._room.set_result(None)
        return entry

    def ready(self) -> T | None:
        """The next chunk if the pump has read it already, taken without waiting; None when
        none is (the stream's end too: `__anext__` tells that, and raises its failure)."""
        queue = self._queue
        if not queue or type(queue[0]) is _End:
            return None
        if self._room is not None and not self._room.done():
            self._room.set_result(None)
        return queue.popleft()

    async def _run(self) -> None:
        queue, chunks = self._queue, self._chunks
        try:
            while True:
                while len(queue) >= self._read_ahead:
                    self._room = asyncio.get_running_loop().create_future()
                    await self._room
                self._put(await chunks.__anext__())
        except StopAsyncIteration:
            self._put(_End())
        except BaseException as exc:  # a cancelled pump (the stream closed) too: its reader must not wait on
            self._put(_End(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _put(self, entry: object) -> None:
        self._queue.append(entry)
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    async def aclose(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
        self._queue.clear()
        self._queue.append(_End())
        await self._chunks.aclose()
