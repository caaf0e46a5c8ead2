"""A stream after its first event reached the client: there is no retry any more, so an
upstream that falls silent must be cut rather than waited for. Each next event must come
within the channel's idle limit, and the whole stream must end by its deadline (the
request's, or the channel's total limit when sooner); either way the stream ends with a
504 `upstream_timeout`, which the caller turns into an error event."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator, Callable, TypeVar

from server.errors import GatewayError

T = TypeVar("T")


def stalled(seconds: float) -> GatewayError:
    # retryable: the channel is in trouble (channel health hears of it); the stream itself
    # is past retrying, which the caller knows
    return GatewayError(504, f"The upstream stalled: it sent nothing for {seconds:g} seconds in the middle "
                             "of the stream.", "upstream_timeout", retryable=True)


def overran() -> GatewayError:
    return GatewayError(504, "The stream ran out of time: the upstream had not finished by the request's "
                             "time limit.", "upstream_timeout")


@dataclass
class Pace:
    idle: float | None  # most seconds between two events (None: no limit)
    ends: float  # on `clock`, when the stream must be over
    clock: Callable[[], float]

    async def next(self, chunks: AsyncIterator[T]) -> T | None:
        """The stream's next event, or None at its end."""
        left = self.ends - self.clock()
        if left <= 0:
            raise overran()
        limit = min(left, self.idle) if self.idle else left
        timer = asyncio.timeout(limit)
        try:
            async with timer:
                return await anext(chunks)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            if not timer.expired():  # the provider's own timeout, already an error of its making
                raise
            raise (stalled(limit) if limit < left else overran()) from None
