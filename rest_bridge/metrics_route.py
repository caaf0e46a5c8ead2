"""GET /metrics: the gateway's Prometheus metrics (server/metrics.py), outside /v1 and
without a client token, like /healthz. Labels are operator-defined names and status codes
only: nothing in it is a secret. Where the process has the database (`serve`, `grpc
--metrics-port`), a scrape also counts what is counted there (server/metrics_scrape.py)
and, with `--metrics-auth admin`, must present the admin key; a `st-ai bridge` alone
shows its own numbers, open."""
from __future__ import annotations

import asyncio

from aiohttp import web

from rest_bridge.errors import expect_continue
from server import metrics
from server.metrics_scrape import MetricsScrape

SCRAPE = web.AppKey("metrics_scrape", MetricsScrape)


async def scrape(request: web.Request) -> web.Response:
    source = request.app.get(SCRAPE)
    counted = []
    if source is not None:
        await source.authorize(request.headers.get("Authorization"))
        counted = await source.counted()
    metrics.sample_process()
    # other processes' numbers are files to read (multiprocess mode): not on the event loop
    body, content_type = await asyncio.to_thread(metrics.exposition, counted)
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type  # with its version parameter
    return response


def add_routes(app: web.Application) -> None:
    """The route; the process that has the database then sets `app[SCRAPE]`."""
    app.router.add_get("/metrics", scrape, expect_handler=expect_continue)
