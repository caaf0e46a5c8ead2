"""GET /metrics: the gateway's Prometheus metrics (server/metrics.py), outside /v1 and
without a token, like /healthz. Labels are operator-defined names and status codes only:
nothing in it is a secret."""
from __future__ import annotations

from aiohttp import web

from rest_bridge.errors import expect_continue
from server import metrics


async def scrape(request: web.Request) -> web.Response:
    body, content_type = metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type  # with its version parameter
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", scrape, expect_handler=expect_continue)
