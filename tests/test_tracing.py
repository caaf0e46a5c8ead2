"""OpenTelemetry traces: one span per client request with a child span per upstream
attempt. In-process, the attempt loop under a request span exports to the SDK's
in-memory exporter; end to end, a real `st-ai serve` with OTEL_EXPORTER_OTLP_ENDPOINT
sends its spans to a collector on 127.0.0.1, and none of them carries a key, a token,
a base URL or the prompt."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server import call_record, tracing
from server.errors import GatewayError
from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.faults import Fault
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.otlp_collector import OtlpCollector
from tests.test_attempt_loop import channel, loop, ticket
from tests.test_failover_chat_images import CHAT, Upstream, ask, assert_clean_answer, serve

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def exported():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider.get_tracer("test"))
    yield exporter
    tracing.disable()
    provider.shutdown()


def _request_with_attempts(first_fails: bool):
    async def call(c, budget):
        if first_fails and c.id == 1:
            raise GatewayError(503, "Upstream busy.", "upstream_unavailable", retryable=True)
        return "answer"

    async def request():
        record = call_record.open_record("r-1")
        record.span = tracing.start_request("/st_ai.v1.Chat/CreateChatCompletion")
        won = await loop().first(ticket(), [channel(1), channel(2)], "m", call, time.monotonic() + 10)
        tracing.end_request(record.span, "m", won.channel.name, 200, None, False)

    asyncio.run(asyncio.wait_for(request(), 10))


def test_a_request_whose_first_channel_fails_has_two_attempt_spans_under_it(exported):
    _request_with_attempts(first_fails=True)
    spans = exported.get_finished_spans()
    requests = [s for s in spans if s.parent is None]
    attempts = [s for s in spans if s.parent is not None]
    assert len(requests) == 1
    assert [(a.attributes["st_ai.channel"], a.attributes["http.response.status_code"]) for a in attempts] == \
        [("c1", 503), ("c2", 200)]
    assert attempts[0].attributes["st_ai.error_code"] == "upstream_unavailable"
    assert all(a.parent.span_id == requests[0].context.span_id for a in attempts)
    assert all(a.context.trace_id == requests[0].context.trace_id for a in attempts)
    assert all(requests[0].start_time <= a.start_time <= a.end_time <= requests[0].end_time for a in attempts)


def test_a_request_answered_at_once_has_one_attempt_span(exported):
    _request_with_attempts(first_fails=False)
    spans = exported.get_finished_spans()
    assert sorted(s.name for s in spans) == ["/st_ai.v1.Chat/CreateChatCompletion", "upstream attempt"]


def test_without_an_endpoint_nothing_is_traced(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracing.start_from_environment()
    assert tracing.start_request("/st_ai.v1.Chat/CreateChatCompletion") is None


@pytest.mark.parametrize("endpoint", ["not-a-url", "127.0.0.1:4318", "ftp://collector:21", "http://", "  "])
def test_an_endpoint_that_is_no_http_url_is_refused_with_a_warning_and_nothing_is_traced(monkeypatch, caplog,
                                                                                         endpoint):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    with caplog.at_level("WARNING"):
        tracing.start_from_environment()
    try:
        assert tracing.start_request("/st_ai.v1.Chat/CreateChatCompletion") is None
        assert [r.getMessage() for r in caplog.records] == [
            "OTEL_EXPORTER_OTLP_ENDPOINT is not an http(s) URL (e.g. http://127.0.0.1:4318); no traces are sent"]
    finally:
        tracing.stop()


def test_a_gateway_sends_its_spans_to_the_otlp_endpoint(tmp_path):
    collector = OtlpCollector().start()
    failing, working = FakeOpenAI(f"sk-upstream-{uuid.uuid4().hex}").start(), FakeOpenAI(
        f"sk-upstream-{uuid.uuid4().hex}").start()
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--cooldown-failures", "1000",
                       env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"})
    try:
        setup = serve(gw, "chat", Upstream(failing), Upstream(working))
        failing.faults.always(CHAT, Fault.error(503))
        assert_clean_answer("chat", ask(gw, "rest", "chat", setup))
        served = lambda s: [x for x in s if x.name.endswith("CreateChatCompletion") and
                            any(a.key == "st_ai.model" and a.value.string_value == setup.model for a in x.attributes)]
        spans = collector.wait_for(lambda s: served(s) and len([x for x in s if x.parent_span_id ==
                                                                 served(s)[0].span_id]) == 2)
        request = served(spans)[0]
        attempts = [x for x in spans if x.parent_span_id == request.span_id]
        channels = [{a.key: a.value for a in x.attributes}["st_ai.channel"].string_value for x in attempts]
        assert sorted(channels) == [f"{setup.model}-0", f"{setup.model}-1"]
        everything = b"".join(collector.raw)
        for secret in (setup.key, failing.api_key, working.api_key, failing.base_url, working.base_url):
            assert secret.encode() not in everything
    finally:
        stop_gateway(gw)
        failing.stop()
        working.stop()
        collector.stop()
