"""GET /healthz (the process answers) and GET /readyz (the gRPC service behind the
bridge answers grpc.health.v1, which in turn reflects whether its database answers).
Outside /v1 and without a token, for load balancers and orchestrators."""
from __future__ import annotations

from typing import Callable

import grpc
import orjson
from aiohttp import web
from grpc_health.v1 import health_pb2

from rest_bridge.access_log import traced
from rest_bridge.draining import draining
from rest_bridge.errors import expect_continue
from rest_bridge.marshal import JSON_TYPE, error_response
from server.errors import GatewayError

CHECK_TIMEOUT = 2.0
HEALTH_CHECK = web.AppKey("health_check", Callable)


def health_check(channel: grpc.aio.Channel) -> Callable:
    return traced(channel.unary_unary("/grpc.health.v1.Health/Check",
                                      request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                      response_deserializer=health_pb2.HealthCheckResponse.FromString))


def _ok(**extra: str) -> web.Response:
    return web.Response(body=orjson.dumps({"status": "ok", **extra}), content_type=JSON_TYPE)


async def healthz(request: web.Request) -> web.Response:
    return _ok()


async def readyz(request: web.Request) -> web.Response:
    if draining(request.app):
        return error_response(GatewayError(503, "Not ready: the gateway is shutting down.", "not_ready",
                                           type="service_unavailable_error"))
    try:
        answer = await request.app[HEALTH_CHECK](health_pb2.HealthCheckRequest(), timeout=CHECK_TIMEOUT)
        serving = answer.status == health_pb2.HealthCheckResponse.SERVING
        why = "the gRPC service reports that it is not serving (its database does not answer)"
    except grpc.aio.AioRpcError as error:
        serving = False
        why = f"the gRPC service does not answer ({error.code().name.lower()})"
    if not serving:
        return error_response(GatewayError(503, f"Not ready: {why}.", "not_ready",
                                           type="service_unavailable_error"))
    return _ok(grpc="serving", database="answering")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, expect_handler=expect_continue)
    app.router.add_get("/readyz", readyz, expect_handler=expect_continue)
