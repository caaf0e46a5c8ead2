"""What the gRPC edge learns about a call's client and tells it about its token's limits,
for every method in one place:

in:  the client's address on the call's record (server/client_address.py), before the
     servicer authenticates, so the token's `--allow-ip` rule sees it;
out: a limited token's `x-ratelimit-*` figures (server/billing/limits.py): for a stream,
     with its `server-timing` so far (server/server_timing.py), as initial metadata
     before its first message; for a unary call, in the trailing metadata that comes
     with its answer (server/services/call_log.py `trailers`), as on an error, with
     `retry-after` on a 429. Initial metadata a servicer sends itself carries them too.
     A read, which takes nothing, is told the figures as they stand;
end: a concurrency slot the call's settlement did not free is freed when the call ends.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from typing import Callable

import grpc

from server import call_record, client_address, server_timing
from server.billing import limits
from server.services.interceptors import Wrap, behaviour
from server.store.db import DbWorker
from server.store.tokens import Network


class _Told:
    """The servicer's context, whose initial metadata carries the call's figures."""

    def __init__(self, context: grpc.aio.ServicerContext, worker: DbWorker, clock: Callable[[], float],
                 streaming: bool = False) -> None:
        self._context, self._worker, self._clock = context, worker, clock
        self.sent = False
        # a stream's timing so far goes before its first message; a unary call's whole
        # timing is in its trailers, with its figures: initial metadata of their own would
        # cost grpc.aio a batch (a write, a completion, a wake of the loop) per call
        self._timing = _timing if streaming else tuple

    def __getattr__(self, name: str):
        return getattr(self._context, name)

    async def send_initial_metadata(self, metadata) -> None:
        figures = await self._figures()
        self.sent = True
        await self._context.send_initial_metadata((*metadata, *figures, *self._timing()))

    async def flush(self) -> None:
        """Before a stream's first message: the figures and the timing so far go out now,
        unless initial metadata already did."""
        if not self.sent:
            self.sent = True
            if told := (*await self._figures(), *self._timing()):
                await self._context.send_initial_metadata(told)

    async def look_up_for_trailers(self) -> None:
        """After a unary answer: a read's figures, looked up now for the trailing metadata
        that call_log (the outermost wrap) writes once the call is over; a call admitted
        against the limits has them already."""
        record = call_record.current()
        state = record.rate if record is not None else None
        if isinstance(state, limits.RateState) and state.shown and state.figures is None:
            state.figures = await self._worker.run(limits.peek, state, self._clock())

    async def _figures(self) -> tuple[tuple[str, str], ...]:
        record = call_record.current()
        state = record.rate if record is not None else None
        if not isinstance(state, limits.RateState) or not state.shown:
            return ()
        if state.figures is None:  # a read: look, take nothing
            state.figures = await self._worker.run(limits.peek, state, self._clock())
        state.told = True
        return limits.headers(state)


def _timing() -> tuple[tuple[str, str], ...]:
    record = call_record.current()
    return ((server_timing.KEY, server_timing.of_record(record)),) if record is not None else ()


async def free_held_slot(worker: DbWorker) -> None:
    """A request in flight ends with its call: a slot its settlement has not freed (a video
    task is settled when it completes, minutes later) is freed now."""
    record = call_record.current()
    state = record.rate if record is not None else None
    if isinstance(state, limits.RateState) and state.held is not None:
        hold, state.held = state.held, None
        await asyncio.shield(worker.run(limits.free_slot, hold))


def client_calls(worker: DbWorker, trusted_bridges: tuple[Network, ...] = (),
                 clock: Callable[[], float] = time.time) -> Wrap:
    """The interceptor wrap (server/services/interceptors.py) of the module's doc."""
    def note_address(context: grpc.aio.ServicerContext) -> None:
        record = call_record.current()
        if record is not None:
            claimed = next((v for k, v in context.invocation_metadata() or () if k == client_address.METADATA_KEY),
                           None)
            record.client_address = client_address.of_call(context.peer(), claimed, trusted_bridges)

    def wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        kind, inner = behaviour(handler)
        if inspect.isasyncgenfunction(inner):
            async def told(request, context):
                note_address(context)
                context = _Told(context, worker, clock, streaming=True)
                try:
                    async for item in inner(request, context):
                        if not context.sent:  # a coroutine per event would cost for nothing
                            await context.flush()
                        yield item
                finally:
                    await free_held_slot(worker)
        elif inspect.iscoroutinefunction(inner):
            async def told(request, context):
                note_address(context)
                context = _Told(context, worker, clock)
                try:
                    response = await inner(request, context)
                    await context.look_up_for_trailers()
                    return response
                finally:
                    await free_held_slot(worker)
        else:
            return handler
        return handler._replace(**{kind: told})
    return wrap
