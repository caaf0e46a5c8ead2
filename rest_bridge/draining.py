"""The REST edge of a graceful shutdown (server/draining.py): while the process drains,
a new request gets a 503 `shutting_down` and its connection is closed, `/readyz` says not
ready and `/healthz` still answers; the requests already in flight are tracked until they
end. The listener stays open meanwhile, so a load balancer sees the refusal (and the
readiness) rather than a connection refused.

Each request's calls say when the bridge accepted it (wall clock), so a separate gRPC
server that began draining after that serves them (server/services/draining_calls.py).

Under `st-ai serve` the bridge's requests are not cut from here: the gRPC side cuts the
call behind each one, whose 503 the request relays (an error event, on a stream). A bridge
on its own (`cuts_itself`) cuts its requests where they wait for the gRPC server
(`cuttable`): each ends with the 503 `shutting_down` (an error event, on a stream) and
its call is cancelled; what a cut cannot reach ends when the runner closes
(server/shutdown.py)."""
from __future__ import annotations

import contextlib
import time

from aiohttp import web

from rest_bridge.marshal import error_response
from server.draining import Call, Drain, refused
from server.services.draining_calls import ACCEPTED_AT_KEY

DRAIN = web.AppKey("drain", Drain)
ACCEPTED_AT = web.RequestKey("accepted_at", str)
CUTS_ITSELF = web.AppKey("cuts_itself", bool)
CALL = web.RequestKey("drained_call", Call)
# answered while draining: liveness stays true, readiness turns false (rest_bridge/health.py)
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


def install(app: web.Application, drain: Drain, cuts_itself: bool = False) -> None:
    app[DRAIN] = drain
    app[CUTS_ITSELF] = cuts_itself
    app.middlewares.append(_drain_aware)  # inside the error and access-log middlewares


def draining(app: web.Application) -> bool:
    drain = app.get(DRAIN)
    return drain is not None and drain.draining


@web.middleware
async def _drain_aware(request: web.Request, handler) -> web.StreamResponse:
    if request.path in HEALTH_PATHS:
        return await handler(request)
    drain = request.app[DRAIN]
    if drain.draining:
        response = error_response(refused())
        response.force_close()
        return response
    request[ACCEPTED_AT] = f"{time.time():.3f}"
    with drain.track() as call:
        if request.app[CUTS_ITSELF]:
            request[CALL] = call
        return await handler(request)


_NOT_CUT = contextlib.nullcontext()


def cuttable(request: web.Request) -> contextlib.AbstractContextManager:
    """A wait for the gRPC server that the shutdown of a bridge on its own may cut: it
    raises the 503 `shutting_down` then (server/draining.py `Drain.cuttable`)."""
    call = request.get(CALL)
    return _NOT_CUT if call is None else request.app[DRAIN].cuttable(call)


def metadata(request: web.Request) -> tuple[tuple[str, str], ...]:
    """When the request was accepted, for the calls made for it."""
    accepted = request.get(ACCEPTED_AT)
    return ((ACCEPTED_AT_KEY, accepted),) if accepted is not None else ()
