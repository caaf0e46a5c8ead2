"""A webhook receiver on 127.0.0.1, as a client of st-ai would run one: it records every
POST (headers and the exact body) and answers from a plan of statuses (200 once the plan
is used up); it can hold a request open, unanswered, until told to let go."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

from aiohttp import web

from tests.fakes.threaded_server import ThreadedServer

HOLD_LIMIT = 60.0  # a held request is answered after this at the latest (tests are bounded)


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int


class WebhookReceiver:
    def __init__(self) -> None:
        self.plan: list[int] = []      # statuses for the next requests, in order
        self.hold_next = False         # the next request is held open until `let_go()`
        self.delay = 0.0               # seconds before each answer
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = ThreadedServer(self._app)
        self.port = 0

    def start(self) -> "WebhookReceiver":
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.stop()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def let_go(self) -> None:
        self._released.set()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            hold, self.hold_next = self.hold_next, False
            status = self.plan.pop(0) if self.plan else 200
        if hold:
            self.held = Delivery(request.path_qs, {k.lower(): v for k, v in request.headers.items()}, body,
                                 time.time(), 0)
            deadline = time.monotonic() + HOLD_LIMIT
            while not self._released.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return web.Response(status=503)  # the sender is gone by now: nobody reads this
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            self.deliveries.append(Delivery(request.path_qs, {k.lower(): v for k, v in request.headers.items()},
                                            body, time.time(), status))
        return web.Response(status=status, text="ok" if status < 300 else "try later")

    def acknowledged(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if 200 <= d.answered < 300]

    def all(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)
