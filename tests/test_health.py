"""grpc.health.v1 answers whether the database answers, asked anew at each Check."""
from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.services.health import DatabaseHealth
from server.store.db import DbWorker

pytestmark = pytest.mark.timeout(30)
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


async def test_health_turns_not_serving_when_the_database_stops_answering(tmp_path):
    worker = DbWorker(str(tmp_path / "st-ai.db"))
    servicer = DatabaseHealth(worker, ("st_ai.v1.Chat",))
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    check = health_pb2_grpc.HealthStub(channel).Check
    try:
        assert (await check(health_pb2.HealthCheckRequest(), timeout=5)).status == SERVING
        worker.close()  # the database thread is gone: nothing answers any more
        for service in ("", "st_ai.v1.Chat"):
            assert (await check(health_pb2.HealthCheckRequest(service=service), timeout=5)).status == NOT_SERVING
    finally:
        await channel.close()
        await server.stop(None)
