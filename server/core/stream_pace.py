"""A stream after its first event reached the client: there is no retry any more, so an
upstream that falls silent must be cut rather than waited for. Each next event must come
within the channel's idle limit, and the whole stream must end by its deadline (the
request's, or the channel's total limit when sooner); either way the stream ends with a
504 `upstream_timeout`, which the caller turns into an error event."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
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
    # One timer for the whole stream, moved by a number rather than re-armed per event (an
    # asyncio.timeout per event costs more than the rest of relaying it): it fires at the
    # latest due time it was given, and cuts only a read still waiting past its own.
    _due: float = field(default=0.0, init=False)  # on the loop's clock, when the waiting read is late
    _waiting: asyncio.Task | None = field(default=None, init=False)
    _timer: asyncio.TimerHandle | None = field(default=None, init=False)
    _fired: bool = field(default=False, init=False)

    async def next(self, chunks: AsyncIterator[T]) -> T | None:
        """The stream's next event, or None at its end."""
        left = self.ends - self.clock()
        if left <= 0:
            raise overran()
        limit = min(left, self.idle) if self.idle else left
        loop = asyncio.get_running_loop()
        self._due = loop.time() + limit
        if self._timer is None or self._timer.when() > self._due:
            self._arm(loop)
        task = self._waiting = asyncio.current_task()
        try:
            chunk = await anext(chunks)
        except BaseException as exc:
            self.stop()  # the stream is over, one way or another
            cut = self._spend_cut(task)
            if isinstance(exc, StopAsyncIteration):
                return None
            if cut and isinstance(exc, asyncio.CancelledError):
                raise (stalled(limit) if limit < left else overran()) from None
            raise  # the provider's own failure, or a cancel from outside (the client left)
        finally:
            self._waiting = None
        self._spend_cut(task)  # the read swallowed the cut and ended on its own
        return chunk

    def check(self) -> None:
        """For an event read ahead, taken without waiting: only the stream's deadline holds."""
        if self.ends <= self.clock():
            raise overran()

    def _spend_cut(self, task: asyncio.Task) -> bool:
        """Whether the timer cut the read and nothing else cancelled it."""
        if not self._fired:
            return False
        self._fired = False
        return task.uncancel() == 0

    def stop(self) -> None:
        """The stream is over: its timer goes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(self._due, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._waiting is None:  # between reads: the next read arms it again
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._due:  # the read waiting now came later: wait for its own due time
            self._arm(loop)
            return
        self._fired = True
        self._waiting.cancel()
