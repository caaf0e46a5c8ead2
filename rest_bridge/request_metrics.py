"""Each REST request in the gateway's metrics (server/metrics.py), once it is answered:

- the gateway's overhead, measured here whole: the bridge's time for the request (reading,
  parsing, encoding included) minus the time its calls waited on upstreams, as
  `Server-Timing` tells it. The gRPC service measures only the calls that came in over
  gRPC itself;
- the request itself, when the bridge answered it without calling any service (an unknown
  URL, unreadable JSON, a body over the limit, a refused expectation, HTTP the parser
  refused, a drain's 503): no service saw it to count it. Its labels are the status and
  st-ai's own error code, never a path or anything else the client chose.

Health checks and scrapes (`/healthz`, `/readyz`, `/metrics`) are not client requests."""
from __future__ import annotations

import time

from aiohttp import web

from rest_bridge.access_log import PENDING
from rest_bridge.state import STARTED, UPSTREAM
from server import metrics

NOT_CLIENT_REQUESTS = frozenset({"/healthz", "/readyz", "/metrics"})
CLIENT_LEFT = "client_closed"  # as the relay books a request its client left


def answered(request: web.BaseRequest, status: int, code: str | None, stream: bool = False) -> None:
    """`request` was answered with `status` (and error `code`), or its client left (499)."""
    if request.path in NOT_CLIENT_REQUESTS:
        return
    pending = request.get(PENDING)
    if pending is None or not pending.called:
        metrics.request(None, None, status, code)
    started = request.get(STARTED)
    # A request the client left has no final upstream time to subtract: not measured.
    if started is not None and status != 499:
        stream = stream or (pending is not None and pending.record.stream)
        metrics.overhead("rest", stream, time.monotonic() - started, request.get(UPSTREAM, 0.0))


def unanswerable(status: int, code: str | None) -> None:
    """A request answered before it was one (its header never arrived in full)."""
    metrics.request(None, None, status, code)
