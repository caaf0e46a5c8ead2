"""The background probe: every `interval` seconds, each channel st-ai disabled (its key
was rejected) gets the `channel test` request; one that answers is enabled again, as
`st-ai channel test` would do. Channels an operator disabled are never probed.

One probe task per process, testing one channel at a time: never two probes of one
channel at once, and each test is bounded by its own timeout."""
from __future__ import annotations

import asyncio
import logging

from server.admin import audit, channel_test
from server.core.channel_health import CatalogView, ChannelHealth
from server.providers.registry import Registry
from server.store.channels import Channel
from server.store.db import DbWorker

log = logging.getLogger("st_ai.channel_probe")
PROBE = audit.Actor("st-ai probe")


class ChannelProbe:
    def __init__(self, catalog: CatalogView, registry: Registry, worker: DbWorker, health: ChannelHealth,
                 interval: float, timeout: float = channel_test.TIMEOUT) -> None:
        self._catalog = catalog
        self._registry = registry
        self._worker = worker
        self._health = health
        self._interval = interval
        self._timeout = min(timeout, interval)

    async def run(self) -> None:
        """Probe until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.probe_once()
            except Exception:  # one bad round must not end the probing
                log.exception("probing disabled channels failed")

    async def probe_once(self) -> list[str]:
        """Test each auto-disabled channel once; returns the names enabled again."""
        recovered = []
        for channel in self._disabled_by_st_ai():
            result = await channel_test.run(self._registry, channel, timeout=self._timeout)
            if not result.ok:
                log.info("probe: channel %r still fails: %s", channel.name, result.error)
                continue
            result = await self._worker.run(channel_test.record, PROBE, channel, result)
            if result.reenabled:
                self._health.forget(channel.id)
                recovered.append(channel.name)
                log.warning("probe: channel %r answered again: enabled", channel.name)
        if recovered:
            await self._catalog.load()  # the server's own writes do not trigger a reload
        return recovered

    def _disabled_by_st_ai(self) -> list[Channel]:
        return [c for c in self._catalog.snapshot.channels_by_id.values() if c.auto_disabled and not c.enabled]
