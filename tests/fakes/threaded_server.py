"""Serving a fake provider's aiohttp app on 127.0.0.1 from its own thread and event
loop, so synchronous tests (and the openai SDK) can call it like a remote service."""
from __future__ import annotations

import asyncio
import threading
from typing import Callable

from aiohttp import web


class ThreadedServer:
    def __init__(self, build_app: Callable[[], web.Application], handler_cancellation: bool = False) -> None:
        self._build_app = build_app
        self._handler_cancellation = handler_cancellation
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> int:
        """Start serving; returns the port picked."""
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> int:
        self._runner = web.AppRunner(self._build_app(), handler_cancellation=self._handler_cancellation)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return self._runner.addresses[0][1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            # closed here, not by the garbage collector, which may find its sockets gone first
            self._loop.close()
