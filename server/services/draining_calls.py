"""The gRPC edge of a graceful shutdown (server/draining.py): while the process drains, a
new call to st-ai's own services is refused with a 503 `shutting_down` (UNAVAILABLE); every
call is tracked while it runs, and a call the shutdown cuts ends with the same 503 (a
stream: after the messages it already sent).

Calls over the private Unix socket are never refused: they come from `st-ai serve`'s own
bridge, which refuses new REST requests itself, so each is for a request it accepted
before the drain began (its body may have taken a while to arrive). A separate `st-ai
bridge` says when it accepted each request (`st-ai-accepted-at`, wall-clock seconds); from
a peer the operator trusts as a bridge (`st-ai grpc --trusted-bridge`) a call for a request
accepted before the drain began is served too (from anyone else the claim is ignored, and
hosts' clocks must agree to within the gap it measures). This is also why new calls are
refused here rather than by grpc's `server.stop()`, which would refuse those too; the
server is stopped once the drain is over.

A stream is exposed to the cut only while it waits for its next message, never while grpc
writes one: a cut that comes during a write ends the stream right after it. Health and
reflection calls are not tracked: a health watch lasts as long as its client, and the
server's stop ends it once st-ai's own calls are done."""
from __future__ import annotations

import contextlib
import inspect

import grpc

from server import client_address, draining
from server.draining import Drain
from server.errors import GatewayError
from server.services.interceptors import Wrap, behaviour
from server.services.status import abort
from server.store.tokens import Network

TRACKED = "/st_ai."
PRIVATE_PEER = "unix:"
ACCEPTED_AT_KEY = "st-ai-accepted-at"  # set by the bridge (rest_bridge/draining.py)


def _refused(drain: Drain, context: grpc.aio.ServicerContext, trusted_bridges: tuple[Network, ...]) -> bool:
    if not drain.draining:
        return False
    peer = context.peer() or ""
    if peer.startswith(PRIVATE_PEER):
        return False
    if not client_address.within(client_address.from_peer(peer), trusted_bridges):
        return True
    return not drain.accepted_before(_accepted_at(context))


def _accepted_at(context: grpc.aio.ServicerContext) -> float | None:
    for key, value in context.invocation_metadata() or ():
        if key == ACCEPTED_AT_KEY:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def draining_calls(drain: Drain, trusted_bridges: tuple[Network, ...] = ()) -> Wrap:
    def wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if not method.startswith(TRACKED):
            return handler
        kind, inner = behaviour(handler)
        if inspect.isasyncgenfunction(inner):
            async def served(request, context):
                if _refused(drain, context, trusted_bridges):
                    await abort(context, draining.refused())
                with drain.track() as call:
                    cuttable = drain.cuttable(call)  # one section object, entered around every read
                    try:
                        async with contextlib.aclosing(inner(request, context)) as messages:
                            while True:
                                with cuttable:
                                    try:
                                        message = await anext(messages)
                                    except StopAsyncIteration:
                                        return
                                yield message
                    except GatewayError as error:
                        await abort(context, error)
        elif inspect.iscoroutinefunction(inner):
            async def served(request, context):
                if _refused(drain, context, trusted_bridges):
                    await abort(context, draining.refused())
                with drain.track() as call:
                    try:
                        with drain.cuttable(call):
                            return await inner(request, context)
                    except GatewayError as error:
                        await abort(context, error)
        else:
            return handler
        return handler._replace(**{kind: served})
    return wrap
