"""The relay against a real OpenAI-compatible upstream (FakeOpenAI, an HTTP server on
127.0.0.1), through the REST bridge and over gRPC: credentials, model mapping,
pass-through of unknown fields, chunk-by-chunk streaming, cancellation, upstream
failures, fallback, usage booking and deadlines.

The gateway is shared by the module, so every test uses its own channel and model
names, and its own FakeOpenAI instances."""
from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import threading
import time
import uuid
from urllib.parse import urlsplit

import grpc
import pytest

from st_ai.v1 import chat_pb2, chat_pb2_grpc
from tests.fakes.openai_upstream import FakeOpenAI, StreamPlan

pytestmark = pytest.mark.timeout(60)

HI = [{"role": "user", "content": "Hi"}]


# -- helpers ---------------------------------------------------------------------------

@pytest.fixture
def fakes():
    """Start FakeOpenAI servers on demand; all are stopped after the test."""
    started: list[FakeOpenAI] = []

    def start(api_key: str | None = None) -> FakeOpenAI:
        fake = FakeOpenAI(api_key or f"sk-upstream-{uuid.uuid4().hex}").start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        # release any gate a test left closed so the fake's handlers can finish
        for plan in [fake.stream_plan] if fake.stream_plan else []:
            for gate in plan.gates.values():
                gate.set()
        fake.stop()


@pytest.fixture
def fake(fakes) -> FakeOpenAI:
    return fakes()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def openai_channel(gateway, fake: FakeOpenAI, models: list[str], **kwargs) -> str:
    name = unique("ch")
    gateway.channel(name, "openai", models, base_url=fake.base_url, key=fake.api_key, **kwargs)
    return name


def _connection(gateway, timeout: float) -> http.client.HTTPConnection:
    url = urlsplit(gateway.http_url)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)


def post_chat(gateway, key: str, body: dict, timeout: float = 10) -> tuple[int, dict]:
    conn = _connection(gateway, timeout)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body),
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


class SSEStream:
    """A streamed chat completion read event by event, as raw bytes."""

    def __init__(self, gateway, key: str, body: dict, timeout: float = 5) -> None:
        self.conn = _connection(gateway, timeout)
        self.conn.request("POST", "/v1/chat/completions", body=json.dumps({**body, "stream": True}),
                          headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        self.response = self.conn.getresponse()
        self.buffer = b""

    def next_event(self) -> bytes | None:
        """The next event including its `\\n\\n`, or None at the end of the body."""
        while b"\n\n" not in self.buffer:
            data = self.response.read1(65536)
            if not data:
                assert self.buffer == b"", f"stream ended inside an event: {self.buffer!r}"
                return None
            self.buffer += data
        event, _, self.buffer = self.buffer.partition(b"\n\n")
        return event + b"\n\n"

    def rest(self) -> list[bytes]:
        events = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.response.close()
        self.conn.close()


def event_json(event: bytes) -> dict:
    assert event.startswith(b"data: ") and event.endswith(b"\n\n"), event
    payload = event[len(b"data: "):-2]
    assert b"\n" not in payload, event
    return json.loads(payload)


def grpc_stub(gateway) -> tuple[grpc.Channel, chat_pb2_grpc.ChatStub]:
    channel = grpc.insecure_channel(gateway.grpc_target)
    return channel, chat_pb2_grpc.ChatStub(channel)


def grpc_request(model: str, **kwargs) -> chat_pb2.ChatCompletionRequest:
    return chat_pb2.ChatCompletionRequest(
        model=model, messages=[chat_pb2.ChatMessage(role="user", text="Hi")], **kwargs)


def auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def chunk(model: str, delta: dict, finish_reason: str | None = None, **extra) -> dict:
    return {"id": "chatcmpl-plan", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model, "system_fingerprint": "fp_plan", **extra,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}


def assert_no_leak(text: str, fake_or_key, base_url: str | None = None) -> None:
    key = fake_or_key.api_key if isinstance(fake_or_key, FakeOpenAI) else fake_or_key
    base_url = base_url or (fake_or_key.base_url if isinstance(fake_or_key, FakeOpenAI) else None)
    assert key not in text
    if base_url:
        url = urlsplit(base_url)
        assert base_url not in text
        assert f"{url.hostname}:{url.port}" not in text
        assert str(url.port) not in text


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# -- 1. credentials -----------------------------------------------------------------------

def test_upstream_receives_channel_key_never_client_token(gateway, fake):
    model = unique("cred-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("cred"))

    status, answer = post_chat(gateway, key, {"model": model, "messages": HI})
    assert status == 200, answer
    stream = SSEStream(gateway, key, {"model": model, "messages": HI})
    try:
        assert stream.rest()[-1] == b"data: [DONE]\n\n"
    finally:
        stream.close()

    channel, stub = grpc_stub(gateway)
    with channel:
        stub.CreateChatCompletion(grpc_request(model), metadata=auth(key), timeout=10)

    assert len(fake.received) == 3
    for received in fake.received:
        assert received.headers["Authorization"] == f"Bearer {fake.api_key}"
        assert key not in json.dumps(received.headers)
        assert key not in json.dumps(received.body)
        assert key[3:] not in json.dumps(received.headers) + json.dumps(received.body)


# -- 2. model mapping ---------------------------------------------------------------------

def test_model_map_sends_upstream_model_name(gateway, fake):
    public = unique("public-name")
    upstream = unique("upstream-name")
    openai_channel(gateway, fake, [public], model_map={public: upstream})
    key = gateway.token(unique("map"))

    status, answer = post_chat(gateway, key, {"model": public, "messages": HI})
    assert status == 200, answer
    stream = SSEStream(gateway, key, {"model": public, "messages": HI})
    try:
        stream.rest()
    finally:
        stream.close()

    assert [r.body["model"] for r in fake.received] == [upstream, upstream]


# -- 3. unknown request fields --------------------------------------------------------------

def test_unknown_request_fields_reach_upstream_unchanged(gateway, fake):
    model = unique("extra-req-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("extra-req"))
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": "Be brief.", "x_message_extra": {"k": [1, None, "v"]}},
            {"role": "user", "content": [
                {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]},
        ],
        "temperature": 0,
        "x_custom": {"a": [1, None]},
        "metadata": {"trace": "abc"},
        "top_k": 40,
        "seed": 0,
    }

    status, answer = post_chat(gateway, key, body)
    assert status == 200, answer
    assert fake.received[-1].body == body

    stream = SSEStream(gateway, key, body)
    try:
        stream.rest()
    finally:
        stream.close()
    streamed = fake.received[-1].body
    assert streamed == {**body, "stream": True, "stream_options": {"include_usage": True}}
    assert streamed["x_custom"] == {"a": [1, None]}
    assert streamed["messages"][0]["x_message_extra"] == {"k": [1, None, "v"]}

    # the same over gRPC: extra_json is spread back into the upstream's JSON
    channel, stub = grpc_stub(gateway)
    with channel:
        request = chat_pb2.ChatCompletionRequest(
            model=model, extra_json=json.dumps({"x_custom": {"a": [1, None]}}),
            messages=[chat_pb2.ChatMessage(role="user", text="Hi",
                                           extra_json=json.dumps({"x_message_extra": True}))])
        stub.CreateChatCompletion(request, metadata=auth(key), timeout=10)
    received = fake.received[-1].body
    assert received["x_custom"] == {"a": [1, None]}
    assert received["messages"] == [{"role": "user", "content": "Hi", "x_message_extra": True}]


# -- 4. unknown response fields -------------------------------------------------------------

def _completion_with_extras(model: str) -> dict:
    return {
        "id": "chatcmpl-extras", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Answer.", "refusal": None,
                        "reasoning_content": "Thinking it over.",
                        "annotations": [{"type": "url_citation",
                                         "url_citation": {"url": "https://example.com", "title": "Ex",
                                                          "start_index": 0, "end_index": 7}}],
                        "x_message_extra": {"n": 1}},
            "logprobs": None, "finish_reason": "stop", "x_choice_extra": "c",
        }],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                  "prompt_tokens_details": {"cached_tokens": 0, "x_detail": 9},
                  "x_usage_extra": [1, 2]},
        "system_fingerprint": None,
        "provider_extra": {"region": "eu", "list": [1, None, {"deep": True}]},
    }


def test_unknown_response_fields_reach_rest_client(gateway, fake):
    model = unique("extra-resp-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("extra-resp"))
    fake.completion = _completion_with_extras(model)

    status, answer = post_chat(gateway, key, {"model": model, "messages": HI})
    assert status == 200, answer
    assert answer == fake.completion
    assert answer["provider_extra"] == {"region": "eu", "list": [1, None, {"deep": True}]}
    message = answer["choices"][0]["message"]
    assert message["annotations"][0]["type"] == "url_citation"
    assert message["reasoning_content"] == "Thinking it over."
    assert answer["choices"][0]["x_choice_extra"] == "c"


def test_unknown_response_fields_reach_grpc_client_in_extra_json(gateway, fake):
    model = unique("extra-grpc-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("extra-grpc"))
    fake.completion = _completion_with_extras(model)

    channel, stub = grpc_stub(gateway)
    with channel:
        answer = stub.CreateChatCompletion(grpc_request(model), metadata=auth(key), timeout=10)
    top = json.loads(answer.extra_json)
    assert top["provider_extra"] == {"region": "eu", "list": [1, None, {"deep": True}]}
    assert top["system_fingerprint"] is None
    choice = answer.choices[0]
    assert json.loads(choice.extra_json) == {"logprobs": None, "x_choice_extra": "c"}
    assert choice.message.text == "Answer."
    assert choice.message.reasoning_content == "Thinking it over."  # a typed field
    message_extra = json.loads(choice.message.extra_json)
    assert message_extra["annotations"] == fake.completion["choices"][0]["message"]["annotations"]
    assert message_extra["x_message_extra"] == {"n": 1}
    assert message_extra["refusal"] is None
    assert json.loads(answer.usage.extra_json) == {"x_usage_extra": [1, 2]}
    assert json.loads(answer.usage.prompt_tokens_details.extra_json) == {"x_detail": 9}


def test_unknown_fields_in_stream_chunks_reach_clients(gateway, fake):
    model = unique("extra-chunk-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("extra-chunk"))
    chunks = [
        chunk(model, {"role": "assistant", "content": "", "reasoning_content": "Hmm",
                      "x_delta_extra": [None]}, provider_extra={"seq": 0}),
        chunk(model, {"content": "Yes"}, provider_extra={"seq": 1}),
        chunk(model, {}, "stop"),
    ]
    fake.stream_plan = StreamPlan(chunks)

    stream = SSEStream(gateway, key, {"model": model, "messages": HI})
    try:
        events = stream.rest()
    finally:
        stream.close()
    assert events[-1] == b"data: [DONE]\n\n"
    assert [event_json(e) for e in events[:-1]] == chunks

    channel, stub = grpc_stub(gateway)
    with channel:
        got = list(stub.StreamChatCompletion(grpc_request(model), metadata=auth(key), timeout=10))
    assert len(got) == 3
    assert json.loads(got[0].extra_json) == {"provider_extra": {"seq": 0}}
    assert got[0].choices[0].delta.reasoning_content == "Hmm"
    assert json.loads(got[0].choices[0].delta.extra_json) == {"x_delta_extra": [None]}
    assert json.loads(got[0].choices[0].extra_json) == {"logprobs": None, "finish_reason": None}
    assert got[2].choices[0].finish_reason == "stop"


# -- 5. streaming chunk by chunk, SSE framing ------------------------------------------------

def test_stream_chunks_reach_client_as_upstream_sends_them(gateway, fake):
    model = unique("stream-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("stream"))
    chunks = [
        chunk(model, {"role": "assistant", "content": ""}),
        chunk(model, {"content": "Hel"}),
        chunk(model, {"content": "lo"}),
        chunk(model, {}, "stop"),
        {**chunk(model, {}), "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2,
                                                      "total_tokens": 6}},
    ]
    gate = threading.Event()
    sent = [threading.Event() for _ in chunks]
    fake.stream_plan = StreamPlan(chunks, gates={1: gate}, sent=sent)

    stream = SSEStream(gateway, key, {"model": model, "messages": HI})
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type").startswith("text/event-stream")
        first = stream.next_event()
        # chunk 0 arrived while the upstream is still held before chunk 1
        assert not gate.is_set() and not sent[1].is_set()
        assert event_json(first) == chunks[0]
        assert b'"finish_reason":null' in first
        gate.set()
        rest = stream.rest()
    finally:
        stream.close()

    events = [first, *rest]
    assert events[-1] == b"data: [DONE]\n\n"
    parsed = [event_json(e) for e in events[:-1]]
    # the usage chunk was asked for by the gateway, not the client: it is kept back
    assert parsed == chunks[:4]
    for event, data in zip(events[:3], parsed[:3]):
        assert data["choices"][0]["finish_reason"] is None
        assert "finish_reason" in data["choices"][0]
    assert parsed[3]["choices"][0]["finish_reason"] == "stop"
    assert b"".join(events).count(b"data: ") == 5
    assert fake.received[-1].body["stream_options"] == {"include_usage": True}


def test_stream_usage_chunk_relayed_when_client_asks(gateway, fake):
    model = unique("stream-usage-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("stream-usage"))

    stream = SSEStream(gateway, key, {"model": model, "messages": HI,
                                      "stream_options": {"include_usage": True}})
    try:
        events = stream.rest()
    finally:
        stream.close()
    parsed = [event_json(e) for e in events[:-1]]
    assert parsed[-1]["choices"] == []
    assert parsed[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert events[-1] == b"data: [DONE]\n\n"


# -- 6. client disconnect cancels the upstream request ---------------------------------------

def _held_plan(model: str) -> StreamPlan:
    return StreamPlan([chunk(model, {"role": "assistant", "content": ""}), chunk(model, {"content": "never"}),
                       chunk(model, {}, "stop")], gates={1: threading.Event()}, sent=[threading.Event()])


def test_rest_client_disconnect_cancels_upstream_request(gateway, fake):
    model = unique("cancel-rest-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("cancel-rest"))
    fake.stream_plan = _held_plan(model)

    stream = SSEStream(gateway, key, {"model": model, "messages": HI})
    try:
        assert event_json(stream.next_event())["choices"][0]["delta"]["role"] == "assistant"
        assert not fake.connection_closed.is_set()
    finally:
        stream.close()
    assert fake.connection_closed.wait(5), "the upstream request outlived the client"

    def statuses() -> list[int]:
        db = sqlite3.connect(gateway.db_path, timeout=5)
        try:
            return [r[0] for r in db.execute("SELECT status FROM ledger WHERE model = ?", [model])]
        finally:
            db.close()
    # the abandoned stream is still booked, as a client-closed request
    assert wait_until(lambda: statuses() == [499], timeout=5), statuses()


def test_grpc_cancel_cancels_upstream_request(gateway, fake):
    model = unique("cancel-grpc-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("cancel-grpc"))
    fake.stream_plan = _held_plan(model)
    fake.connection_closed.clear()

    channel, stub = grpc_stub(gateway)
    with channel:
        call = stub.StreamChatCompletion(grpc_request(model), metadata=auth(key), timeout=30)
        first = next(call)
        assert first.choices[0].delta.role == "assistant"
        assert not fake.connection_closed.is_set()
        call.cancel()
        assert fake.connection_closed.wait(5), "the upstream request outlived the cancelled RPC"
        with pytest.raises(grpc.RpcError) as raised:
            next(call)
        assert raised.value.code() == grpc.StatusCode.CANCELLED


# -- 7. upstream failures -----------------------------------------------------------------------

def _error_case(gateway, fake, prefix: str, fail_with, **fields) -> tuple[int, dict, str]:
    model = unique(f"{prefix}-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique(prefix))
    fake.fail_with = fail_with
    status, body = post_chat(gateway, key, {"model": model, "messages": HI, **fields})
    return status, body, model


def test_upstream_500_becomes_502_upstream_error(gateway, fake):
    status, body, _ = _error_case(gateway, fake, "e500", (500, {"error": {
        "message": f"internal failure at {fake.base_url} with key {fake.api_key}", "type": "server_error"}}))
    assert status == 502, body
    assert body["error"]["type"] == "upstream_error"
    assert body["error"]["code"] == "upstream_error"
    assert_no_leak(json.dumps(body), fake)


def test_upstream_401_bad_channel_key_becomes_502_not_401(gateway, fakes):
    fake = fakes()
    model = unique("e401-model")
    wrong_key = f"sk-wrong-{uuid.uuid4().hex}"
    gateway.channel(unique("ch"), "openai", [model], base_url=fake.base_url, key=wrong_key)
    key = gateway.token(unique("e401"))

    status, body = post_chat(gateway, key, {"model": model, "messages": HI})
    assert status == 502, body
    assert body["error"]["type"] == "upstream_error"
    assert fake.received[-1].headers["Authorization"] == f"Bearer {wrong_key}"
    assert_no_leak(json.dumps(body), wrong_key, fake.base_url)
    assert_no_leak(json.dumps(body), fake)
    assert "platform.openai.com" not in body["error"]["message"]


def test_upstream_400_relays_message_and_param(gateway, fake):
    status, body, _ = _error_case(gateway, fake, "e400", (400, {"error": {
        "message": "Invalid value for 'temperature': must be at most 1.",
        "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}}), temperature=1.5)
    assert status == 400, body
    assert body["error"] == {"message": "Invalid value for 'temperature': must be at most 1.",
                             "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}


def test_upstream_400_param_naming_no_field_of_the_request_is_dropped(gateway, fake):
    status, body, _ = _error_case(gateway, fake, "e400p", (400, {"error": {
        "message": "Invalid value for 'temperature'.", "type": "invalid_request_error",
        "param": "temperature", "code": "invalid_value"}}))
    assert status == 400, body
    assert body["error"]["param"] is None and body["error"]["code"] == "invalid_value"


def test_upstream_400_message_is_scrubbed_of_key_and_url(gateway, fake):
    status, body, _ = _error_case(gateway, fake, "e400s", (400, {"error": {
        "message": f"Bad request to {fake.base_url}/chat/completions using {fake.api_key}",
        "type": "invalid_request_error", "param": None, "code": None}}))
    assert status == 400, body
    assert body["error"]["message"].startswith("Bad request to ")
    assert_no_leak(json.dumps(body), fake)


def test_upstream_429_on_every_attempt_becomes_a_503_not_the_clients_own_429(gateway, fake):
    status, body, _ = _error_case(gateway, fake, "e429", (429, {"error": {
        "message": f"Rate limit reached for key {fake.api_key}", "type": "requests", "code": "rate_limit_exceeded"}}))
    assert status == 503, body
    assert body["error"]["code"] == "upstream_rate_limited", body
    assert_no_leak(json.dumps(body), fake)


def _refused_channel(gateway) -> tuple[str, str, str]:
    """A channel of its own (its breaker trips after a request's attempts) whose upstream
    refuses connections: (model, upstream key, base URL)."""
    model, upstream_key = unique("refused-model"), f"sk-refused-{uuid.uuid4().hex}"
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    gateway.channel(unique("ch"), "openai", [model], base_url=base_url, key=upstream_key)
    return model, upstream_key, base_url


def test_upstream_connection_refused_becomes_502(gateway):
    model, upstream_key, base_url = _refused_channel(gateway)
    key = gateway.token(unique("refused"))

    status, body = post_chat(gateway, key, {"model": model, "messages": HI})
    assert status == 502, body
    assert body["error"]["type"] == "upstream_error"
    assert_no_leak(json.dumps(body), upstream_key, base_url)

    model, upstream_key, base_url = _refused_channel(gateway)
    stream = SSEStream(gateway, key, {"model": model, "messages": HI})
    try:
        assert stream.response.status == 502
        streamed = json.loads(stream.response.read())
    finally:
        stream.close()
    assert streamed["error"]["type"] == "upstream_error"
    assert_no_leak(json.dumps(streamed), upstream_key, base_url)


def test_upstream_errors_over_grpc_carry_no_secrets(gateway, fake):
    model = unique("egrpc-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("egrpc"))
    fake.fail_with = (500, {"error": {"message": f"boom {fake.base_url} {fake.api_key}"}})
    channel, stub = grpc_stub(gateway)
    with channel:
        with pytest.raises(grpc.RpcError) as raised:
            stub.CreateChatCompletion(grpc_request(model), metadata=auth(key), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    details = raised.value.details() + repr(raised.value.trailing_metadata())
    assert_no_leak(details, fake)


def test_mid_stream_upstream_error_becomes_in_band_sse_error(gateway, fake):
    model = unique("midstream-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("midstream"))
    fake.stream_plan = StreamPlan([
        chunk(model, {"role": "assistant", "content": "Par"}),
        {"error": {"message": f"The server is overloaded ({fake.base_url}, {fake.api_key})",
                   "type": "server_error", "code": None}},
        chunk(model, {"content": "never"}),
    ])

    stream = SSEStream(gateway, key, {"model": model, "messages": HI})
    try:
        assert stream.response.status == 200
        events = stream.rest()
    finally:
        stream.close()
    assert len(events) == 2, events
    assert event_json(events[0])["choices"][0]["delta"]["content"] == "Par"
    error = event_json(events[1])["error"]
    assert error["type"] == "upstream_error"
    assert "overloaded" in error["message"]
    assert_no_leak(error["message"], fake)
    assert b"[DONE]" not in b"".join(events)


# -- 8. fallback -----------------------------------------------------------------------------

@pytest.mark.parametrize("failure", ["http_500", "closed_port"])
def test_fallback_to_lower_priority_channel(gateway, fakes, failure):
    model = unique(f"fallback-{failure}")
    good = fakes()
    # each channel also serves a model of its own, so gateway.channel() can wait for it
    openai_channel(gateway, good, [model, unique("probe-good")], priority=1)
    bad = None
    if failure == "http_500":
        bad = fakes()
        bad.fail_with = (500, {"error": {"message": "down"}})
        openai_channel(gateway, bad, [model, unique("probe-bad")], priority=10)
    else:
        gateway.channel(unique("ch"), "openai", [model, unique("probe-bad")],
                        base_url=f"http://127.0.0.1:{closed_port()}/v1", key="sk-x", priority=10)
    key = gateway.token(unique("fallback"))

    for _ in range(2):
        status, answer = post_chat(gateway, key, {"model": model, "messages": HI})
        assert status == 200, answer
        assert answer["choices"][0]["message"]["content"] == "Hello from the fake."
    stream = SSEStream(gateway, key, {"model": model, "messages": HI})
    try:
        events = stream.rest()
    finally:
        stream.close()
    assert events[-1] == b"data: [DONE]\n\n"
    assert "".join(event_json(e)["choices"][0]["delta"].get("content", "") for e in events[:-1]) == "Hello!"
    assert len(good.received) == 3
    if bad is not None:
        assert len(bad.received) == 3  # the better channel was tried first every time


# -- 9. usage booking ----------------------------------------------------------------------

def test_usage_is_booked_per_request(gateway, fake):
    public = unique("usage-public")
    upstream = unique("usage-upstream")
    openai_channel(gateway, fake, [public], model_map={public: upstream})
    token_name = unique("usage")
    key = gateway.token(token_name)
    fake.completion = {
        "id": "chatcmpl-u", "object": "chat.completion", "created": 1700000000, "model": upstream,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 101, "completion_tokens": 7, "total_tokens": 108}}

    for _ in range(2):
        status, answer = post_chat(gateway, key, {"model": public, "messages": HI})
        assert status == 200, answer
    stream = SSEStream(gateway, key, {"model": public, "messages": HI})  # default usage 9/3/12
    try:
        stream.rest()
    finally:
        stream.close()

    def rows() -> list[sqlite3.Row]:
        db = sqlite3.connect(gateway.db_path, timeout=5)
        db.row_factory = sqlite3.Row
        try:
            token_id = db.execute("SELECT id FROM tokens WHERE name = ?", [token_name]).fetchone()["id"]
            return [dict(r) | {"expected_token": token_id} for r in db.execute(
                "SELECT * FROM ledger WHERE model = ? ORDER BY id", [public])]
        finally:
            db.close()

    assert wait_until(lambda: len(rows()) >= 3, timeout=5), rows()
    booked = rows()
    assert len(booked) == 3
    for row in booked:
        assert row["token_id"] == row["expected_token"]
        assert row["upstream_model"] == upstream
        assert row["status"] == 200
        assert row["kind"] == "chat"
    unary = [r for r in booked if not r["stream"]]
    streamed = [r for r in booked if r["stream"]]
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in unary] == [(101, 7)] * 2
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in streamed] == [(9, 3)]


# -- 10. gRPC deadline -----------------------------------------------------------------------

def test_grpc_deadline_bounds_upstream_call(gateway, fake):
    model = unique("deadline-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("deadline"))
    fake.delay = 5.0

    channel, stub = grpc_stub(gateway)
    with channel:
        for call in (stub.CreateChatCompletion,
                     lambda *a, **kw: list(stub.StreamChatCompletion(*a, **kw))):
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as raised:
                call(grpc_request(model), metadata=auth(key), timeout=1)
            elapsed = time.monotonic() - started
            assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert elapsed < 2.5, elapsed
    assert len(fake.received) == 2


def test_grpc_deadline_ends_upstream_stream_mid_answer(gateway, fake):
    model = unique("deadline-stream-model")
    openai_channel(gateway, fake, [model])
    key = gateway.token(unique("deadline-stream"))
    fake.stream_plan = _held_plan(model)

    channel, stub = grpc_stub(gateway)
    with channel:
        started = time.monotonic()
        call = stub.StreamChatCompletion(grpc_request(model), metadata=auth(key), timeout=1)
        assert next(call).choices[0].delta.role == "assistant"
        with pytest.raises(grpc.RpcError) as raised:
            next(call)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2.5
    # the upstream request does not outlive the deadline
    assert fake.connection_closed.wait(3), "the upstream stream outlived the gRPC deadline"
