"""Fault injection for the fake upstreams: an aiohttp middleware each fake installs, whose
behaviour a test sets per request path. The faults are what real upstreams do on a bad
day: an error status (with OpenAI's error body and, for 429/503, a Retry-After), a reset
connection, a late first byte, a malformed SSE stream, a chunk that is not JSON, a
truncated JSON body. Connection refused needs no server: `refused_url()`.

    fake.faults.add("/v1/chat/completions", Fault.error(503))       # the next request
    fake.faults.always("/v1/chat/completions", Fault.error(500))    # every request
    fake.faults.hits("/v1/chat/completions")                        # requests that reached it
    fake.faults.gone("/v1/chat/completions")    # requests whose client left while a delay held them
"""
from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

import orjson
from aiohttp import web


@dataclass(frozen=True)
class Fault:
    kind: str  # status | reset | delay | malformed_sse | non_json_chunk | truncated_json | not_an_object
    status: int = 500
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def error(cls, status: int, message: str | None = None, retry_after: str | None = None,
               code: str | None = None) -> "Fault":
        error = {"message": message or f"Upstream fault {status}.", "type": _type(status), "param": None,
                 "code": code}
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls("status", status, orjson.dumps({"error": error}), headers)

    @classmethod
    def reset(cls) -> "Fault":
        """The connection is dropped before any answer."""
        return cls("reset")

    @classmethod
    def delay(cls, seconds: float) -> "Fault":
        """The real answer, after `seconds` of silence (a first byte later than a limit)."""
        return cls("delay", seconds=seconds)

    @classmethod
    def malformed_sse(cls) -> "Fault":
        return cls("malformed_sse", 200, b'data: {"id": "x", "choices": [{"delta": \n\nevent\x00: ???\n\n')

    @classmethod
    def non_json_chunk(cls) -> "Fault":
        return cls("non_json_chunk", 200, b"data: this is not json\n\n")

    @classmethod
    def truncated_json(cls) -> "Fault":
        return cls("truncated_json", 200, b'{"id": "chatcmpl-cut", "object": "chat.completion", "choices": [{"ind')

    @classmethod
    def not_an_object(cls) -> "Fault":
        """Well-formed JSON that is no answer: a list where an object belongs."""
        return cls("not_an_object", 200, b'["not", "an", "object"]')


def _type(status: int) -> str:
    return {400: "invalid_request_error", 401: "invalid_request_error", 429: "rate_limit_error"}.get(status,
                                                                                                   "server_error")


class Faults:
    """Thread-safe: tests set faults from their thread, the fake's loop reads them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str, deque[Fault]] = {}
        self._always: dict[str, Fault] = {}
        self._hits: Counter[str] = Counter()
        self._gone: Counter[str] = Counter()

    def add(self, path: str, *faults: Fault) -> None:
        """Faults for the next requests to `path`, one each, in order."""
        with self._lock:
            self._queued.setdefault(path, deque()).extend(faults)

    def always(self, path: str, fault: Fault | None) -> None:
        """A fault for every request to `path` (None: no more) once the queued ones are used."""
        with self._lock:
            if fault is None:
                self._always.pop(path, None)
            else:
                self._always[path] = fault

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()
            self._always.clear()
            self._hits.clear()
            self._gone.clear()

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits[path]

    def gone(self, path: str) -> int:
        """Requests to `path` whose client closed the connection during a `delay`."""
        with self._lock:
            return self._gone[path]

    def _take(self, path: str) -> Fault | None:
        with self._lock:
            self._hits[path] += 1
            queued = self._queued.get(path)
            if queued:
                return queued.popleft()
            return self._always.get(path)

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        fault = self._take(request.path)
        if fault is None:
            return await handler(request)
        await request.read()  # the request was received whole, as an upstream would
        if fault.kind == "status":
            return web.Response(status=fault.status, body=fault.body, headers=fault.headers,
                                content_type="application/json")
        if fault.kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing is answered on a dropped connection
        if fault.kind == "delay":
            try:
                await asyncio.sleep(fault.seconds)
            except asyncio.CancelledError:  # the fake's server cancels a handler whose client left
                with self._lock:
                    self._gone[request.path] += 1
                raise
            return await handler(request)
        if fault.kind in ("malformed_sse", "non_json_chunk"):
            return web.Response(status=200, body=fault.body, content_type="text/event-stream")
        return web.Response(status=200, body=fault.body, content_type="application/json")


def refused_url(path: str = "/v1") -> str:
    """A base URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
