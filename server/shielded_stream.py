"""An upstream stream whose reader may be cancelled without cancelling the upstream.

When a client leaves, its task is cancelled wherever it waits, usually while reading the
upstream's next chunk. Read directly, that cancellation would close the upstream response
too, and the usage chunk still owed for what was generated would be lost. Here each next
chunk is read on its own task behind a shield: a cancelled reader leaves the read running,
and whoever takes the stream over (the settlement that drains it) picks it up there.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Generic, TypeVar

T = TypeVar("T")


class ShieldedStream(Generic[T]):
    def __init__(self, chunks: AsyncIterator[T]) -> None:
        self._chunks = chunks
        self._next: asyncio.Future | None = None

    def __aiter__(self) -> "ShieldedStream[T]":
        return self

    async def __anext__(self) -> T:
        if self._next is None:
            self._next = asyncio.ensure_future(self._chunks.__anext__())
        try:
            return await asyncio.shield(self._next)
        finally:
            if self._next.done():  # read (or failed); a cancelled reader leaves it pending
                self._next = None

    async def aclose(self) -> None:
        pending, self._next = self._next, None
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        elif pending is not None and not pending.cancelled():
            pending.exception()  # retrieved: no "never retrieved" warning
        await self._chunks.aclose()
