"""Rate limits per token end to end: a real `st-ai serve` (one, or two on one database) in
front of FakeOpenAI on 127.0.0.1. The request over a limit gets 429 `rate_limit_exceeded`
with `Retry-After`, nothing reaches the upstream and nothing is reserved; every answer of a
limited token carries OpenAI's x-ratelimit-* headers, over REST and as gRPC metadata."""
from __future__ import annotations

import http.client
import json
import threading
import uuid
from urllib.parse import urlsplit

import grpc
import pytest

from server.billing import estimate
from server.billing.prices import PriceChanges
from server.store import tokens as token_store
from server.store.db import open_db
from server.store.rate_limits import Limits
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.openai_upstream import StreamPlan
from tests.test_quota_relay import HI, fake, priced_model, status_of, upstream  # noqa: F401
from tests.test_relay_upstream import SSEStream, auth, event_json, grpc_request
from st_ai.v1 import chat_pb2_grpc, models_pb2, models_pb2_grpc

pytestmark = pytest.mark.timeout(120)

REQUEST_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")
TOKEN_HEADERS = ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")
A_REQUEST = 10_000  # the model's price per request: 0.01


def limited_token(gateway, quota: int | None = 1_000_000, **limits) -> tuple[str, str]:
    name = f"rl-{uuid.uuid4().hex[:8]}"
    db = open_db(gateway.db_path)
    try:
        _, key = token_store.create(db, name, quota=quota, limits=Limits(**limits))
    finally:
        db.close()
    gateway.wait_for(lambda: gateway._status("/v1/models", key) == 200, f"token {name}")  # a read: takes nothing
    return name, key


def call(gateway, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
    """(status, headers with lower-case names, JSON body)."""
    url = urlsplit(gateway.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read())
    finally:
        conn.close()


def chat(gateway, key: str, model: str, **extra) -> tuple[int, dict, dict]:
    return call(gateway, key, "POST", "/v1/chat/completions", {"model": model, "messages": HI, **extra})


def assert_refused(status: int, headers: dict, body: dict, kind: str) -> int:
    """A rate-limit 429 as OpenAI sends it; returns its Retry-After."""
    assert status == 429
    assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == kind
    retry_after = headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    return int(retry_after)


@pytest.fixture
def model(gateway, upstream):
    return priced_model(gateway, upstream, PriceChanges(per_request=A_REQUEST))


# -- requests per minute -------------------------------------------------------------------

def test_the_request_over_rpm_gets_429_with_retry_after_and_goes_nowhere(gateway, upstream, model):
    name, key = limited_token(gateway, rpm=2)
    for remaining in ("1", "0"):
        status, headers, _ = chat(gateway, key, model)
        assert status == 200
        assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"],
                headers["x-ratelimit-reset-requests"]) == ("2", remaining, "1m0s")
        assert not any(h in headers for h in TOKEN_HEADERS)  # only the limits set
    sent = len(upstream.received)
    status, headers, body = chat(gateway, key, model)
    assert_refused(status, headers, body, "requests")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert len(upstream.received) == sent
    quota = status_of(gateway, name)
    assert (quota.used, quota.reserved) == (2 * A_REQUEST, 0)  # nothing reserved for the refused one


def test_the_request_over_rpm_over_grpc_is_resource_exhausted_with_its_figures_in_metadata(gateway, upstream, model):
    _, key = limited_token(gateway, rpm=1)
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_pb2_grpc.ChatStub(channel)
        _, first = stub.CreateChatCompletion.with_call(grpc_request(model), metadata=auth(key), timeout=10)
        # a unary answer's figures come with it, in its trailing metadata
        trailing = dict(first.trailing_metadata())
        assert (trailing["x-ratelimit-limit-requests"], trailing["x-ratelimit-remaining-requests"]) == ("1", "0")
        assert not any(key.startswith("x-ratelimit-") for key, _ in first.initial_metadata())
        sent = len(upstream.received)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateChatCompletion(grpc_request(model), metadata=auth(key), timeout=10)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailing = dict(refused.value.trailing_metadata())
    assert 1 <= int(trailing["retry-after"]) <= 60 and trailing["x-ratelimit-remaining-requests"] == "0"
    assert len(upstream.received) == sent


def test_reads_carry_the_figures_and_never_count(gateway, upstream, model):
    _, key = limited_token(gateway, rpm=2)
    for _ in range(3):
        status, headers, _ = call(gateway, key, "GET", "/v1/models")
        assert status == 200 and headers["x-ratelimit-remaining-requests"] == "2"
    assert chat(gateway, key, model)[1]["x-ratelimit-remaining-requests"] == "1"
    status, headers, _ = call(gateway, key, "GET", "/v1/models")
    assert headers["x-ratelimit-remaining-requests"] == "1"
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        _, read = models_pb2_grpc.ModelsStub(channel).ListModels.with_call(
            models_pb2.ListModelsRequest(), metadata=auth(key), timeout=10)
    assert dict(read.trailing_metadata())["x-ratelimit-remaining-requests"] == "1"
    assert chat(gateway, key, model)[0] == 200  # the second request of the minute, whatever was read


def test_image_requests_count_against_rpm_like_chats(gateway, upstream, model):
    _, key = limited_token(gateway, rpm=2)
    image = {"model": model, "prompt": "a cat", "size": "1024x1024"}
    status, headers, body = call(gateway, key, "POST", "/v1/images/generations", image)
    assert status == 200 and len(body["data"]) == 1 and headers["x-ratelimit-remaining-requests"] == "1"
    assert chat(gateway, key, model)[0] == 200
    sent = len(upstream.received)
    assert_refused(*call(gateway, key, "POST", "/v1/images/generations", image), "requests")
    assert len(upstream.received) == sent


def test_video_polls_carry_the_figures_beside_their_poll_hint_and_never_count(gateway, upstream):
    video_model = f"video-{uuid.uuid4().hex[:8]}"
    gateway.channel(f"ch-{video_model}", "openai", [video_model], base_url=upstream.base_url, key=upstream.api_key,
                    model_map={video_model: "sora-2"})
    _, key = limited_token(gateway, quota=None, rpm=3)
    status, created, video = call(gateway, key, "POST", "/v1/videos", {"model": video_model, "prompt": "a cat"})
    assert status == 200 and video["status"] == "queued", video
    for _ in range(4):  # the documented client polls every few seconds
        status, headers, polled = call(gateway, key, "GET", f"/v1/videos/{video['id']}")
        assert status == 200 and polled["status"] in ("queued", "in_progress")
        assert "openai-poll-after-ms" in headers  # the service's own metadata, merged with the figures
        assert headers["x-ratelimit-remaining-requests"] == created["x-ratelimit-remaining-requests"]


def test_video_creation_counts_against_rpm_and_a_generating_task_holds_no_concurrency_slot(gateway, upstream):
    video_model = f"video-{uuid.uuid4().hex[:8]}"
    gateway.channel(f"ch-{video_model}", "openai", [video_model], base_url=upstream.base_url, key=upstream.api_key,
                    model_map={video_model: "sora-2"})
    _, key = limited_token(gateway, quota=None, rpm=2, max_concurrency=1)
    create = {"model": video_model, "prompt": "a cat"}
    for remaining in ("1", "0"):  # the first task is still generating when the second is created
        status, headers, video = call(gateway, key, "POST", "/v1/videos", create)
        assert status == 200 and video["status"] == "queued", video
        assert headers["x-ratelimit-remaining-requests"] == remaining
    gateway.wait_for(lambda: sum(r.path == "/v1/videos" and r.method == "POST" for r in upstream.received) >= 2,
                     "both tasks submitted")
    submitted = sum(r.path == "/v1/videos" and r.method == "POST" for r in upstream.received)
    assert_refused(*call(gateway, key, "POST", "/v1/videos", create), "requests")
    assert sum(r.path == "/v1/videos" and r.method == "POST" for r in upstream.received) == submitted


# -- tokens per minute -----------------------------------------------------------------------

def test_tpm_counts_the_worst_case_and_is_corrected_to_the_real_tokens_at_settlement(gateway, upstream, model):
    _, key = limited_token(gateway, tpm=1000)
    asked = {"model": model, "messages": HI, "max_tokens": 900}
    worst = estimate.Prompt(asked, model).bound + 900  # the prompt bounded by its bytes
    status, headers, _ = chat(gateway, key, model, max_tokens=900)
    assert status == 200
    assert (headers["x-ratelimit-limit-tokens"], headers["x-ratelimit-remaining-tokens"],
            headers["x-ratelimit-reset-tokens"]) == ("1000", str(1000 - worst), "1m0s")
    # it used 16 tokens (FakeOpenAI's usage): the rest of its 900 came back, so another fits
    status, headers, _ = chat(gateway, key, model, max_tokens=900)
    assert status == 200 and headers["x-ratelimit-remaining-tokens"] == str(1000 - 16 - worst)


def test_a_request_whose_byte_bound_is_over_tpm_but_whose_exact_count_fits_is_admitted_at_the_count(
        gateway, upstream, model):
    words = [{"role": "user", "content": "hello " * 300}]  # 1,800 bytes, about 300 tokens
    asked = {"model": model, "messages": words, "max_tokens": 100}
    prompt = estimate.Prompt(asked, model)
    assert prompt.exact() + 100 < 1000 < prompt.bound + 100
    _, key = limited_token(gateway, tpm=1000)
    status, headers, _ = call(gateway, key, "POST", "/v1/chat/completions", asked)
    assert status == 200
    # reserved at the exact count, then settled at FakeOpenAI's 16 tokens
    assert headers["x-ratelimit-remaining-tokens"] == str(1000 - prompt.exact() - 100)


def test_the_request_over_tpm_gets_429_tokens_and_goes_nowhere(gateway, upstream, model):
    _, key = limited_token(gateway, tpm=1000)
    upstream.completion = {
        "id": "chatcmpl-big", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 600, "completion_tokens": 350, "total_tokens": 950}}
    assert chat(gateway, key, model, max_tokens=100)[0] == 200  # reserved ~110, settled at 950
    sent = len(upstream.received)
    status, headers, body = chat(gateway, key, model, max_tokens=100)
    assert_refused(status, headers, body, "tokens")
    assert headers["x-ratelimit-remaining-tokens"] == "50"
    assert len(upstream.received) == sent


# -- requests in flight ----------------------------------------------------------------------

def test_the_request_over_max_concurrency_gets_429_until_one_in_flight_ends(gateway, upstream, model):
    _, key = limited_token(gateway, max_concurrency=1)
    gate = threading.Event()
    upstream.stream_plan = StreamPlan(upstream.default_chunks(model, include_usage=True), gates={2: gate})
    stream = SSEStream(gateway, key, {"model": model, "messages": HI})
    try:
        assert stream.response.status == 200
        event_json(stream.next_event())  # the stream is in flight, held by the upstream
        sent = len(upstream.received)
        status, headers, body = chat(gateway, key, model)
        assert assert_refused(status, headers, body, "requests") == 1
        assert len(upstream.received) == sent
        gate.set()
        assert stream.rest()[-1] == b"data: [DONE]\n\n"
    finally:
        gate.set()
        stream.close()
    upstream.stream_plan = None
    assert chat(gateway, key, model)[0] == 200  # its slot was freed when it was settled


# -- headers on every answer -----------------------------------------------------------------

def test_streams_and_errors_after_admission_carry_the_figures_too(gateway, upstream, model):
    _, key = limited_token(gateway, rpm=10, tpm=100_000)
    stream = SSEStream(gateway, key, {"model": model, "messages": HI})
    try:
        headers = {k.lower(): v for k, v in stream.response.getheaders()}
        assert stream.rest()[-1] == b"data: [DONE]\n\n"
    finally:
        stream.close()
    assert all(h in headers for h in REQUEST_HEADERS + TOKEN_HEADERS)
    assert headers["x-ratelimit-remaining-requests"] == "9"
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        chunks = chat_pb2_grpc.ChatStub(channel).StreamChatCompletion(grpc_request(model), metadata=auth(key),
                                                                      timeout=10)
        initial = dict(chunks.initial_metadata())  # before the first chunk is read
        assert len(list(chunks)) > 1
    assert initial["x-ratelimit-remaining-requests"] == "8" and "x-ratelimit-remaining-tokens" in initial
    upstream.fail_with = (500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
    status, headers, body = chat(gateway, key, model)
    assert status >= 500 and "error" in body
    assert headers["x-ratelimit-remaining-requests"] == "7" and "retry-after" not in headers


def test_an_unlimited_token_gets_no_rate_limit_headers(gateway, upstream, model):
    _, key = limited_token(gateway)
    status, headers, _ = chat(gateway, key, model)
    assert status == 200 and not any(h.startswith("x-ratelimit-") for h in headers)


# -- several processes -----------------------------------------------------------------------

def test_limits_hold_across_two_processes_on_one_database(tmp_path, upstream):
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    first = start_gateway(db_path)
    second = start_gateway(db_path)
    try:
        model = priced_model(first, upstream, PriceChanges(per_request=A_REQUEST))
        _, key = limited_token(first, rpm=5)
        second.wait_for(lambda: second._status("/v1/models", key) == 200, "the token in the second process")
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda gw=gw: statuses.append(chat(gw, key, model)[0]))
                   for gw in [first, second] * 10]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(statuses) == [200] * 5 + [429] * 15  # twenty at once, from both: five a minute

        # a request in flight in one process holds the only slot in the other too
        _, single = limited_token(first, max_concurrency=1)
        second.wait_for(lambda: second._status("/v1/models", single) == 200, "the token in the second process")
        gate = threading.Event()
        upstream.stream_plan = StreamPlan(upstream.default_chunks(model, include_usage=True), gates={2: gate})
        stream = SSEStream(first, single, {"model": model, "messages": HI})
        try:
            event_json(stream.next_event())
            status, headers, body = chat(second, single, model)
            assert_refused(status, headers, body, "requests")
            gate.set()
            stream.rest()
        finally:
            gate.set()
            stream.close()
            upstream.stream_plan = None
        assert chat(second, single, model)[0] == 200
    finally:
        stop_gateway(first)
        stop_gateway(second)
