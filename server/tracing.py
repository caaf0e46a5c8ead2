"""OpenTelemetry traces, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: one span per client
request (opened at the gRPC edge, which both fronts reach) and, under it, one span per
upstream attempt (channel name, upstream model, status, error code). No prompt, key,
token or base URL is ever an attribute.

Unset, nothing is imported and every function here returns at its first line. The SDK is
an optional dependency (`pip install 'st-ai[otel]'`)."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("st_ai.tracing")


@dataclass
class _State:
    tracer: object | None = None  # an opentelemetry Tracer once enabled
    provider: object | None = None  # the TracerProvider st-ai made, flushed at shutdown


_state = _State()


def enable(tracer: object) -> None:
    """Trace with `tracer` (tests pass one whose provider exports to memory)."""
    _state.tracer = tracer


def disable() -> None:
    _state.tracer = None


def start_from_environment() -> None:
    """At start: export over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (the SDK reads its
    other OTEL_* variables itself), or trace nothing when it is unset."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return
    where = urlsplit(endpoint.strip())
    if where.scheme not in ("http", "https") or not where.hostname:
        # the SDK would take it and fail every export, in the background, for as long as st-ai runs
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is not an http(s) URL (e.g. http://127.0.0.1:4318); "
                    "no traces are sent")
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed "
                    "(pip install 'st-ai[otel]'); no traces are sent")
        return
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "st-ai")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _state.provider = provider
    enable(provider.get_tracer("st-ai"))


def stop() -> None:
    """At shutdown: spans still queued are sent."""
    provider, _state.provider = _state.provider, None
    disable()
    if provider is not None:
        provider.shutdown()


def start_request(method: str) -> object | None:
    """The span of one client request (`method`: the RPC's full name, one of st-ai's own)."""
    tracer = _state.tracer
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind
    return tracer.start_span(method, kind=SpanKind.SERVER, attributes={"rpc.method": method})


def end_request(span: object | None, model: str | None, channel: str | None, status: int,
                error_code: str | None, stream: bool) -> None:
    if span is None:
        return
    # the model is the client's own string until a channel served it: bounded, not a secret
    span.set_attributes({k: v for k, v in (("st_ai.model", model), ("st_ai.channel", channel),
                                           ("http.response.status_code", status),
                                           ("st_ai.error_code", error_code), ("st_ai.stream", stream))
                         if v is not None})
    if status >= 500:
        from opentelemetry.trace import Status, StatusCode
        span.set_status(Status(StatusCode.ERROR, error_code or str(status)))
    span.end()


def attempt(parent: object | None, channel: str, upstream_model: str | None, status: int,
            error_code: str | None, seconds: float) -> None:
    """A child span of `parent` for one upstream attempt that just ended after `seconds`."""
    tracer = _state.tracer
    if tracer is None or parent is None:
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
    end = time.time_ns()
    span = tracer.start_span("upstream attempt", context=set_span_in_context(parent), kind=SpanKind.CLIENT,
                             start_time=end - int(seconds * 1e9))
    span.set_attributes({k: v for k, v in (("st_ai.channel", channel), ("st_ai.upstream_model", upstream_model),
                                           ("http.response.status_code", status),
                                           ("st_ai.error_code", error_code)) if v is not None})
    if status >= 400:
        span.set_status(Status(StatusCode.ERROR, error_code or str(status)))
    span.end(end_time=end)
