"""A process's graceful shutdown, shared by its fronts (the gRPC server, the REST bridge).

Once `begin()` is called the fronts report not ready and refuse new requests; the requests
already in flight are tracked (`track`), waited for up to the grace period (`settle`), and
whatever still runs then is cut (`cut`): code a front marked `cuttable` is cancelled where it
waits, and the cancellation comes out of that section as a 503 `shutting_down`, which the front
answers like any other error (a stream: an in-band error event after what it already sent).
The cancellation runs the request's own cancellation path first, so a stream cut short is
billed for what its client received, exactly as when a client leaves, but booked as the
shutdown's 503 (`cancelled_status` tells the two apart).

It knows no transport: the gRPC interceptor (server/services/draining_calls.py) and the
bridge's middleware (rest_bridge/draining.py) apply it at the edges, server/shutdown.py
puts the steps in order."""
from __future__ import annotations

import asyncio
import contextvars
import math
import time
from dataclasses import dataclass
from typing import Callable

from server.errors import GatewayError


def refused() -> GatewayError:
    return GatewayError(503, "The gateway is shutting down and takes no new requests; send the request "
                        "again in a moment.", "shutting_down")


def cut_short() -> GatewayError:
    return GatewayError(503, "The gateway shut down before the answer was complete; what was sent "
                        "is billed.", "shutting_down")


@dataclass(eq=False)
class Call:
    task: asyncio.Task
    exposed: bool = False    # waiting inside a cuttable section: a cut cancels it there
    cut: bool = False        # the grace ran out for this call
    cancelled: bool = False  # ... and the cut cancelled its task


# The call the running code serves, for `cancelled_status` (the relay books requests
# without knowing which front, or which drain, serves them).
_CURRENT: contextvars.ContextVar[Call | None] = contextvars.ContextVar("st_ai_drained_call", default=None)


def cancelled_status() -> tuple[int, str]:
    """The status and code of a request the running code serves that was cancelled (or
    its stream closed): a shutdown's cut is the gateway's 503 `shutting_down`; anything
    else is its client leaving, 499 `client_closed`."""
    call = _CURRENT.get()
    if call is not None and call.cut:
        return 503, "shutting_down"
    return 499, "client_closed"


class Drain:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.draining = False
        self.began_at: float | None = None  # wall clock: another process's times compare with it
        self._clock = clock
        self._calls: set[Call] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self) -> None:
        self.draining = True
        self.began_at = self._clock()

    def accepted_before(self, accepted_at: float | None) -> bool:
        """Whether a request a front accepted at `accepted_at` (wall clock) came before the
        drain began: it is in flight, not new."""
        return (accepted_at is not None and math.isfinite(accepted_at)
                and (self.began_at is None or accepted_at < self.began_at))

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    def track(self) -> "_Tracked":
        """The current task serves one request until the block ends (`with drain.track() as
        call`)."""
        return _Tracked(self)

    def _ended(self, call: Call) -> None:
        self._calls.discard(call)
        if not self._calls:
            self._idle.set()

    def cuttable(self, call: Call) -> "_Cuttable":
        """Code a cut may cancel: it must take a cancellation as its client leaving (the
        relay does). Raises `cut_short()` when the cut ended it, or when the call was cut
        before it entered (it was busy elsewhere, say writing to its client)."""
        return _Cuttable(call)

    async def settle(self, timeout: float, hurry: asyncio.Event | None = None) -> bool:
        """Wait until no request is in flight, for `timeout` seconds at most, or until
        `hurry` is set (the operator will not wait); True if none is in flight."""
        if self._idle.is_set():
            return True
        waits = [asyncio.ensure_future(self._idle.wait())]
        if hurry is not None:
            waits.append(asyncio.ensure_future(hurry.wait()))
        try:
            await asyncio.wait(waits, timeout=max(timeout, 0.0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return self._idle.is_set()

    def cut(self) -> int:
        """End every request still in flight; returns how many there were."""
        for call in list(self._calls):
            if call.cut:
                continue
            call.cut = True
            if call.exposed:
                call.cancelled = True
                call.task.cancel()
        return len(self._calls)


class _Tracked:
    """`Drain.track`'s block. A class, not a generator: every request enters one."""
    __slots__ = ("_drain", "_call", "_token")

    def __init__(self, drain: Drain) -> None:
        self._drain = drain

    def __enter__(self) -> Call:
        call = self._call = Call(asyncio.current_task())
        drain = self._drain
        drain._calls.add(call)
        drain._idle.clear()
        self._token = _CURRENT.set(call)
        return call

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._drain._ended(self._call)
        try:
            _CURRENT.reset(self._token)
        except ValueError:  # a stream's generator closed from another context
            pass


class _Cuttable:
    """`Drain.cuttable`'s section. A class, not a generator: a stream enters one around
    every read of its next event."""
    __slots__ = ("_call",)

    def __init__(self, call: Call) -> None:
        self._call = call

    def __enter__(self) -> None:
        if self._call.cut:
            raise cut_short()
        self._call.exposed = True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        call = self._call
        call.exposed = False
        # Only the cut's own cancellation becomes an answer; a client that left at the
        # same moment still cancels the call.
        if kind is not None and issubclass(kind, asyncio.CancelledError) and call.cancelled:
            call.cancelled = False
            if call.task.uncancel() == 0:
                raise cut_short() from None
