"""What a scrape of GET /metrics counts when it comes, beside the numbers each process
records as things happen (server/metrics.py), and who may scrape.

Video tasks by state are counted in the database, so the figure is the same whichever
process (worker) answers and is never added up across processes; a count is reused for
`max_age` seconds, and one count at a time runs on the database thread however many
scrapes arrive. With `admin` set, a scrape must present the admin key."""
from __future__ import annotations

import asyncio
import time

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from server.admin.keys import AdminAuth
from server.store import videos
from server.store.db import DbWorker

STATES = ("submitting", "queued", "in_progress", "completed", "failed", "cancelled")  # always shown, 0 or not
MAX_AGE = 2.0


class MetricsScrape:
    def __init__(self, worker: DbWorker, admin: AdminAuth | None = None, max_age: float = MAX_AGE) -> None:
        self._worker = worker
        self._admin = admin
        self._max_age = max_age
        self._counts: dict[str, int] = {}
        self._counted_at = float("-inf")
        self._counting = asyncio.Lock()

    async def authorize(self, authorization: str | None) -> None:
        """Nothing, or a 401 GatewayError when the admin key is required and not presented."""
        if self._admin is not None:
            await self._worker.run(self._admin.check, authorization)

    async def counted(self) -> list[Metric]:
        async with self._counting:
            if time.monotonic() - self._counted_at >= self._max_age:
                self._counts = await self._worker.run(videos.count_by_state)
                self._counted_at = time.monotonic()
            counts = self._counts
        family = GaugeMetricFamily("st_ai_video_tasks_by_state",
                                   "Video tasks in each state now, counted in the database.", labels=("state",))
        for state in (*STATES, *sorted(set(counts) - set(STATES))):
            family.add_metric((state,), counts.get(state, 0))
        return [family]
