"""An OpenTelemetry collector on 127.0.0.1, as an operator would run one: it takes OTLP/HTTP
trace exports (POST /v1/traces, protobuf) and keeps every span it was sent."""
from __future__ import annotations

import threading
import time

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                       ExportTraceServiceResponse)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.fakes.threaded_server import ThreadedServer


class OtlpCollector:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.raw: list[bytes] = []  # every export as sent, for what must never be in one
        self._lock = threading.Lock()
        self._server = ThreadedServer(self._app)
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "OtlpCollector":
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def wait_for(self, condition, timeout: float = 15.0) -> list[Span]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                spans = list(self.spans)
            if condition(spans):
                return spans
            time.sleep(0.05)
        raise AssertionError(f"the collector did not get the spans expected; it has {len(spans)}")

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        return app

    async def _export(self, request: web.Request) -> web.Response:
        body = await request.read()
        export = ExportTraceServiceRequest.FromString(body)
        with self._lock:
            self.raw.append(body)
            for resource in export.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")
