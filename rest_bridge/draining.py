"""The REST edge of a graceful shutdown (server/draining.py): while the process drains,
a new request gets a 503 `shutting_down` and its connection is closed, `/readyz` says not
ready and `/healthz` still answers; the requests already in flight are tracked until they
end. The listener stays open meanwhile, so a load balancer sees the refusal (and the
readiness) rather than a connection refused.

Each request's calls say when the bridge accepted it (wall clock), so a separate gRPC
server that began draining after that serves them (server/services/draining_calls.py).

The bridge's requests are not cut from here: under `st-ai serve` the gRPC side cuts the
call behind each one, whose 503 the request relays (an error event, on a stream); a bridge
on its own ends what is left when its runner closes (server/shutdown.py)."""
from __future__ import annotations

import time

from aiohttp import web

from rest_bridge.marshal import error_response
from server.draining import Drain, refused
from server.services.draining_calls import ACCEPTED_AT_KEY

DRAIN = web.AppKey("drain", Drain)
ACCEPTED_AT = web.RequestKey("accepted_at", str)
# answered while draining: liveness stays true, readiness turns false (rest_bridge/health.py)
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


def install(app: web.Application, drain: Drain) -> None:
    app[DRAIN] = drain
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
    with drain.track():
        return await handler(request)


def metadata(request: web.Request) -> tuple[tuple[str, str], ...]:
    """When the request was accepted, for the calls made for it."""
    accepted = request.get(ACCEPTED_AT)
    return ((ACCEPTED_AT_KEY, accepted),) if accepted is not None else ()
