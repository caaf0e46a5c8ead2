"""`Server-Timing` on every REST answer: the bridge's whole time for the request, of
which the upstream part is what the gRPC service reported for its call (its
`server-timing` metadata: final in the trailers of a finished call, so far in the
initial metadata of a stream whose first event is being sent). The same clock gives the
request's overhead metric when it is answered (rest_bridge/request_metrics.py)."""
from __future__ import annotations

import asyncio
import time

import grpc
from aiohttp import web

from rest_bridge import request_metrics
from rest_bridge.access_log import PENDING, access_record
from rest_bridge.state import STARTED, UPSTREAM
from server import server_timing

HEADER = "Server-Timing"


@web.middleware
async def clock_in(request: web.Request, handler) -> web.StreamResponse:
    request[STARTED] = time.monotonic()
    try:
        # the access record outside reads the finished calls' upstream time (UPSTREAM)
        return await handler(request)
    except (asyncio.CancelledError, ConnectionError):  # the client left: no answer will be written
        request_metrics.answered(request, 499, request_metrics.CLIENT_LEFT)
        raise


async def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the header, as of the moment the answer's head goes out (a
    stream's, while its handler runs: its upstream time so far). A request answered before
    the app saw it (an expectation refused) counts from now."""
    now = time.monotonic()
    started = request.get(STARTED, now)
    upstream = request[UPSTREAM] if UPSTREAM in request else await _upstream(request)
    response.headers[HEADER] = server_timing.value(now - started, upstream)


async def _upstream(request: web.BaseRequest) -> float:
    pending = request.get(PENDING)
    return sum([await _upstream_of(call) for call in pending.calls]) if pending is not None else 0.0


async def _upstream_of(call) -> float:
    """What a call's server said of its upstream time; 0 when it said nothing."""
    try:
        metadata = await call.trailing_metadata() if call.done() else await call.initial_metadata()
    except (grpc.aio.AioRpcError, AttributeError):
        return 0.0
    for key, value in metadata or ():
        if key == server_timing.KEY:
            return server_timing.upstream_seconds(value) or 0.0
    return 0.0


def install(app: web.Application) -> None:
    """Just inside the access record (rest_bridge/access_log.py), which holds the request's
    calls until it returns."""
    app.middlewares.insert(app.middlewares.index(access_record) + 1, clock_in)
    app.on_response_prepare.append(stamp)
