"""Streams and quotas: a stream is settled before its `data: [DONE]`; one cut by its client or
its upstream after content was sent is billed for what was generated (the upstream's usage if
it arrives within the grace period, else st-ai's own count), never zero; one cut before the
first byte is free. Real `st-ai serve` in front of FakeOpenAI on 127.0.0.1."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from server.billing.prices import PriceChanges
from tests.fakes.openai_upstream import StreamPlan
from tests.test_quota_relay import (HI, fake, ledger, priced_model, quota_token, status_of,  # noqa: F401
                                    upstream)
from tests.test_relay_upstream import SSEStream, event_json

pytestmark = pytest.mark.timeout(60)

# 1 micro-unit per prompt or completion token: a cost reads as a token count
ONE_PER_TOKEN = PriceChanges(input=1_000_000, output=1_000_000)
USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


def plan(fake, model: str, *, gate_before: int | None = None, error_after_content: bool = False) -> StreamPlan:
    chunks = fake.default_chunks(model, include_usage=True)  # role, Hel, lo, !, finish, usage
    chunks[-1]["usage"] = dict(USAGE)
    if error_after_content:
        chunks = chunks[:3] + [{"error": {"message": "The server is overloaded.", "type": "server_error",
                                          "param": None, "code": "overloaded"}}]
    gates = {gate_before: threading.Event()} if gate_before is not None else {}
    fake.stream_plan = StreamPlan(chunks, gates=gates)
    return fake.stream_plan


def read_until(stream: SSEStream, wanted) -> None:
    while (event := stream.next_event()) is not None:
        if wanted(event_json(event)):
            return
    raise AssertionError("the stream ended first")


def has_content(text: str):
    return lambda chunk: any((c.get("delta") or {}).get("content") == text for c in chunk.get("choices") or ())


def finished(chunk: dict) -> bool:
    return any(c.get("finish_reason") for c in chunk.get("choices") or ())


def one_row(gateway, name: str, timeout: float = 10.0) -> dict:
    gateway.wait_for(lambda: len(ledger(gateway, name)) == 1, "the stream's ledger row", timeout)
    [row] = ledger(gateway, name)
    assert status_of(gateway, name).used == row["cost"] and status_of(gateway, name).reserved == 0
    return row


def test_a_whole_stream_is_settled_before_its_done_event(gateway, upstream):
    model = priced_model(gateway, upstream, ONE_PER_TOKEN)
    name, key = quota_token(gateway, 1_000_000)
    plan(upstream, model)
    stream = SSEStream(gateway, key, {"model": model, "messages": HI, "max_tokens": 10})
    events = stream.rest()
    stream.close()
    assert events[-1] == b"data: [DONE]\n\n"
    [row] = ledger(gateway, name)  # no waiting: it was committed before [DONE] was sent
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost"], row["estimate"], row["stream"]) == (
        9, 3, 12, 0, 1)
    assert row["ttft_ms"] is not None


def test_a_stream_cut_before_the_first_byte_is_free(gateway, upstream):
    model = priced_model(gateway, upstream, ONE_PER_TOKEN)
    name, key = quota_token(gateway, 1_000_000)
    plan(upstream, model)
    sent = len(upstream.received)
    upstream.delay = 1.0  # the upstream has not started answering when the client leaves
    url = urlsplit(gateway.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    conn.request("POST", "/v1/chat/completions",
                 body=json.dumps({"model": model, "messages": HI, "max_tokens": 10, "stream": True}),
                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    gateway.wait_for(lambda: len(upstream.received) > sent, "the request upstream")
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    row = one_row(gateway, name)
    assert (row["cost"], row["status"]) == (0, 499)


def test_a_stream_cut_mid_content_is_billed_by_the_usage_that_arrives_after(gateway, upstream):
    model = priced_model(gateway, upstream, ONE_PER_TOKEN)
    name, key = quota_token(gateway, 1_000_000)
    gates = plan(upstream, model, gate_before=3).gates  # waits before "!"
    stream = SSEStream(gateway, key, {"model": model, "messages": HI, "max_tokens": 10})
    read_until(stream, has_content("lo"))
    stream.close()
    time.sleep(0.3)
    gates[3].set()  # the upstream goes on and sends its usage within the grace period
    row = one_row(gateway, name)
    assert (row["cost"], row["estimate"], row["status"]) == (12, 0, 499)


def test_a_stream_cut_mid_content_without_usage_is_counted_locally_never_zero(gateway, upstream):
    model = priced_model(gateway, upstream, ONE_PER_TOKEN)
    name, key = quota_token(gateway, 1_000_000)
    plan(upstream, model, gate_before=3)  # never opened: no usage ever comes
    stream = SSEStream(gateway, key, {"model": model, "messages": HI, "max_tokens": 10})
    read_until(stream, has_content("lo"))
    stream.close()
    row = one_row(gateway, name)
    assert row["estimate"] == 1 and row["completion_tokens"] >= 1 and row["prompt_tokens"] >= 1
    assert row["cost"] == row["prompt_tokens"] + row["completion_tokens"] > 0


def test_a_stream_cut_after_finish_reason_before_usage_is_billed_in_full(gateway, upstream):
    model = priced_model(gateway, upstream, ONE_PER_TOKEN)
    name, key = quota_token(gateway, 1_000_000)
    gates = plan(upstream, model, gate_before=5).gates  # waits before the usage chunk
    stream = SSEStream(gateway, key, {"model": model, "messages": HI, "max_tokens": 10})
    read_until(stream, finished)
    stream.close()
    time.sleep(0.3)
    gates[5].set()
    row = one_row(gateway, name)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost"], row["estimate"]) == (9, 3, 12, 0)


def test_a_stream_the_upstream_cuts_after_content_is_billed_for_what_was_sent(gateway, upstream):
    model = priced_model(gateway, upstream, ONE_PER_TOKEN)
    name, key = quota_token(gateway, 1_000_000)
    plan(upstream, model, error_after_content=True)
    stream = SSEStream(gateway, key, {"model": model, "messages": HI, "max_tokens": 10})
    events = stream.rest()
    stream.close()
    assert any(b'"error"' in e for e in events)
    row = one_row(gateway, name)
    assert row["estimate"] == 1 and row["completion_tokens"] >= 1 and row["cost"] > 0


def test_a_stream_the_quota_cannot_cover_is_refused_before_going_upstream(gateway, upstream):
    model = priced_model(gateway, upstream, ONE_PER_TOKEN)
    _, key = quota_token(gateway, 100)
    plan(upstream, model)
    sent = len(upstream.received)
    stream = SSEStream(gateway, key, {"model": model, "messages": HI, "max_tokens": 1000})
    assert stream.response.status == 429
    stream.close()
    assert len(upstream.received) == sent
