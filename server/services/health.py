"""grpc.health.v1 whose answer is whether the database answers, asked at each Check:
a server that cannot reach its database is not ready, even though it is alive."""
from __future__ import annotations

import asyncio
import logging

from grpc_health.v1 import health, health_pb2

from server.store.db import DbWorker

log = logging.getLogger("st_ai.health")
PROBE_TIMEOUT = 2.0


def _select_one(db) -> None:
    db.execute("SELECT 1").fetchone()


class DatabaseHealth(health.aio.HealthServicer):
    def __init__(self, worker: DbWorker, names: tuple[str, ...]) -> None:
        super().__init__()
        self._worker, self._names = worker, ("", *names)
        self._healthy = True

    async def probe(self) -> bool:
        try:
            await asyncio.wait_for(self._worker.run(_select_one), PROBE_TIMEOUT)
            healthy = True
        except Exception as exc:  # whatever the cause, the answer is "not serving"
            healthy = False
            if self._healthy:
                log.warning("the database does not answer: %s", type(exc).__name__)
        if healthy != self._healthy:
            status = health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in self._names:
                await self.set(name, status)  # ignored once shutting down, as it should be
        self._healthy = healthy
        return healthy

    async def Check(self, request, context):
        await self.probe()
        return await super().Check(request, context)
