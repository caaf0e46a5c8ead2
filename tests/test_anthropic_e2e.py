"""`anthropic` channels end to end: the official `openai` SDK (and a gRPC client by
reflection) talking to st-ai, st-ai talking to a real fake of Anthropic's Messages API on
127.0.0.1 (tests/fakes/anthropic.py). Each case asserts the exact upstream request, headers
and body, and what the client got: plain and streamed answers, images from URLs and
base64, parallel tool calls both ways, usage with prompt-cache reads and writes and their
cost in the ledger, every finish reason, every class of upstream error with its retry and
failover rule, and reasoning.

The gateway is shared by the module: every test uses its own channel and model names."""
from __future__ import annotations

import json
import uuid

import grpc
import pytest
from google.protobuf import json_format
from openai import APIError, APIStatusError, BadRequestError, OpenAI

from server.billing.prices import PriceChanges
from server.store import channels as channel_store
from server.store import prices as price_store
from server.store.db import open_db
from tests.fakes.anthropic import KEY, FakeAnthropic, Reply, error_body, text
from tests.fakes.faults import Fault
from tests.reflection_client import Reflected, auth, error_detail

pytestmark = pytest.mark.timeout(90)

HAIKU = "claude-haiku-4-5"
OPUS = "claude-opus-4-7"
HAIKU_3_5 = "claude-3-5-haiku-20241022"
PATH = "/v1/messages"
HI = [{"role": "user", "content": "Hi"}]
WEATHER = {"type": "function", "function": {
    "name": "weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PARIS_AND_ROME = Reply([{"type": "text", "text": "Checking both."},
                        {"type": "tool_use", "id": "toolu_paris", "name": "weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "toolu_rome", "name": "weather", "input": {"city": "Rome"}}],
                       stop_reason="tool_use")
PNG_BASE64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


# -- fixtures and helpers ------------------------------------------------------------------

@pytest.fixture(scope="module")
def servers():
    first, second = FakeAnthropic().start(), FakeAnthropic(key="sk-ant-api03-second-fake-key-987654").start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
def fake(servers) -> FakeAnthropic:
    for server in servers:
        server.reset()
    return servers[0]


@pytest.fixture
def backup(servers, fake) -> FakeAnthropic:
    return servers[1]


@pytest.fixture(scope="module")
def key(gateway) -> str:
    return gateway.token(f"claude-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def client(gateway, key) -> OpenAI:
    return OpenAI(base_url=gateway.base_url, api_key=key, timeout=20, max_retries=0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def claude(gateway, fake: FakeAnthropic, upstream: str = HAIKU, api_version: str | None = None,
           model: str | None = None) -> str:
    """An anthropic channel serving a public model name mapped to `upstream`; the name."""
    model = model or unique("claude")
    gateway.channel(unique("anthropic"), "anthropic", [model], base_url=fake.url, key=fake.key,
                    model_map={model: upstream}, api_version=api_version)
    return model


def claude_pair(gateway, first: FakeAnthropic, second: FakeAnthropic, first_upstream: str = HAIKU) -> str:
    """A public model served by an anthropic channel on `first` and, after it, one on
    `second`; both get the model in one commit, so the gateway never routes to one only."""
    model = unique("claude-pair")
    db = open_db(gateway.db_path)
    try:
        ids = [channel_store.add(db, unique("anthropic"), "anthropic", fake.url, fake.key, [f"{model}-idle"],
                                 {model: upstream}, priority=rank).id
               for rank, fake, upstream in ((1, first, first_upstream), (0, second, HAIKU))]
        with db.conn:
            for channel_id in ids:
                db.conn.execute("UPDATE channels SET models = ? WHERE id = ?", [json.dumps([model]), channel_id])
    finally:
        db.close()
    probe = gateway.token(unique("probe"))
    gateway.wait_for(lambda: model in gateway._models(probe), f"model {model}")
    return model


def assert_headers(received, version: str = "2026-10-21", key: str = KEY) -> None:
    assert received.headers["x-api-key"] == key
    assert received.headers["anthropic-version"] == version
    assert received.headers["content-type"] == "application/json"
    assert "authorization" not in received.headers


def extra(model) -> dict:
    """A pydantic object's fields, the SDK's extras (reasoning_content, cache_write_tokens) included."""
    return model.model_dump()


# -- plain and streamed --------------------------------------------------------------------

def test_a_plain_chat_is_one_messages_call_with_system_and_the_models_max_tokens(gateway, fake, client):
    model = claude(gateway, fake)
    done = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], temperature=0.4)
    received = fake.last()
    assert_headers(received)
    # the current API version takes no temperature: left out, not sent to fail
    assert received.body == {"model": HAIKU, "max_tokens": 64_000, "system": [{"type": "text", "text": "Be brief."}],
                             "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    assert done.choices[0].message.content == "Hello from Claude."
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (21, 9, 30)


def test_the_2023_version_gets_the_sampling_parameters_the_model_takes(gateway, fake, client):
    older = claude(gateway, fake, HAIKU_3_5, api_version="2023-06-01")
    client.chat.completions.create(model=older, messages=HI, temperature=0.2, top_p=0.9, max_tokens=100,
                                   stop=["END"], user="user-7")
    received = fake.last()
    assert_headers(received, "2023-06-01")
    assert received.body == {"model": HAIKU_3_5, "max_tokens": 100, "temperature": 0.2, "top_p": 0.9,
                             "stop_sequences": ["END"], "metadata": {"user_id": "user-7"},
                             "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    one = claude(gateway, fake, HAIKU, api_version="2023-06-01")
    client.chat.completions.create(model=one, messages=HI, temperature=0.2, top_p=0.9, max_tokens=100)
    assert (fake.last().body.get("temperature"), "top_p" in fake.last().body) == (0.2, False)
    newest = claude(gateway, fake, OPUS, api_version="2023-06-01")
    client.chat.completions.create(model=newest, messages=HI, temperature=0.2, top_p=0.9, max_tokens=100)
    assert "temperature" not in fake.last().body and "top_p" not in fake.last().body


def test_a_streamed_chat_arrives_as_chunks_with_the_role_first_and_usage_last(gateway, fake, client):
    model = claude(gateway, fake)
    fake.script(text("Streaming a reply in several small pieces.", cache_read=5, cache_write=6))
    chunks = list(client.chat.completions.create(model=model, messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    received = fake.last()
    assert_headers(received)
    assert received.body == {"model": HAIKU, "max_tokens": 64_000, "stream": True,
                             "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(contents) == "Streaming a reply in several small pieces." and len(contents) > 3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == []
    usage = extra(chunks[-1].usage)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (21 + 5 + 6, 9)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 5
    assert usage["prompt_tokens_details"]["cache_write_tokens"] == 6


def test_without_include_usage_the_client_gets_no_usage_chunk(gateway, fake, client):
    model = claude(gateway, fake)
    chunks = list(client.chat.completions.create(model=model, messages=HI, stream=True))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)


# -- images --------------------------------------------------------------------------------

def test_images_from_a_url_and_base64_go_up_as_image_blocks(gateway, fake, client):
    model = claude(gateway, fake)
    client.chat.completions.create(model=model, max_tokens=50, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": "https://images.example.com/cat.jpg"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_BASE64}"}}]}])
    assert_headers(fake.last())
    assert fake.last().body == {"model": HAIKU, "max_tokens": 50, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image", "source": {"type": "url", "url": "https://images.example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}}]}]}


def test_an_audio_part_is_a_400_naming_it_and_nothing_goes_upstream(gateway, fake, client):
    model = claude(gateway, fake)
    with pytest.raises(BadRequestError) as caught:
        client.chat.completions.create(model=model, max_tokens=50, messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}])
    assert caught.value.body["param"] == "messages[0].content[0]"
    assert fake.received == []


# -- tools -----------------------------------------------------------------------------------

def tool_results() -> list[dict]:
    return [{"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking both.", "tool_calls": [
                {"id": "toolu_paris", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
                {"id": "toolu_rome", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_paris", "content": "18C, cloudy"},
            {"role": "tool", "tool_call_id": "toolu_rome", "content": "24C, sunny"}]


EXPECTED_ROUND_TRIP = [
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "toolu_paris", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_rome", "name": "weather", "input": {"city": "Rome"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_paris", "content": "18C, cloudy"},
                                 {"type": "tool_result", "tool_use_id": "toolu_rome", "content": "24C, sunny"}]}]
ANTHROPIC_WEATHER = {"name": "weather", "description": "Current weather in a city.",
                     "input_schema": WEATHER["function"]["parameters"]}


def test_a_parallel_tool_call_round_trip(gateway, fake, client):
    model = claude(gateway, fake)
    fake.script(PARIS_AND_ROME, text("Paris 18C, Rome 24C."))
    first = client.chat.completions.create(model=model, max_tokens=500, tools=[WEATHER], tool_choice="auto",
                                           messages=tool_results()[:1])
    assert_headers(fake.last())
    assert fake.last().body == {"model": HAIKU, "max_tokens": 500, "messages": EXPECTED_ROUND_TRIP[:1],
                                "tools": [ANTHROPIC_WEATHER], "tool_choice": {"type": "auto"}}
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("toolu_paris", "weather", {"city": "Paris"}), ("toolu_rome", "weather", {"city": "Rome"})]
    second = client.chat.completions.create(model=model, max_tokens=500, tools=[WEATHER], messages=tool_results())
    assert fake.last().body == {"model": HAIKU, "max_tokens": 500, "messages": EXPECTED_ROUND_TRIP,
                                "tools": [ANTHROPIC_WEATHER]}
    assert second.choices[0].message.content == "Paris 18C, Rome 24C."


def test_a_streamed_parallel_tool_call_round_trip(gateway, fake, client):
    model = claude(gateway, fake)
    fake.script(PARIS_AND_ROME, text("Paris 18C, Rome 24C."))
    chunks = list(client.chat.completions.create(model=model, max_tokens=500, tools=[WEATHER], stream=True,
                                                 tool_choice="required", parallel_tool_calls=False,
                                                 messages=tool_results()[:1]))
    assert fake.last().body == {"model": HAIKU, "max_tokens": 500, "messages": EXPECTED_ROUND_TRIP[:1],
                                "tools": [ANTHROPIC_WEATHER], "stream": True,
                                "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("toolu_paris", "weather", {"city": "Paris"}), ("toolu_rome", "weather", {"city": "Rome"})]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    streamed = list(client.chat.completions.create(model=model, max_tokens=500, tools=[WEATHER], stream=True,
                                                   messages=tool_results()))
    assert fake.last().body["messages"] == EXPECTED_ROUND_TRIP
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "Paris 18C, Rome 24C."


def test_a_named_tool_choice_is_anthropics_tool_choice(gateway, fake, client):
    model = claude(gateway, fake)
    fake.script(Reply([{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}],
                      stop_reason="tool_use"))
    client.chat.completions.create(model=model, max_tokens=100, tools=[WEATHER], messages=HI,
                                   tool_choice={"type": "function", "function": {"name": "weather"}})
    assert fake.last().body["tool_choice"] == {"type": "tool", "name": "weather"}


# -- usage and its cost ----------------------------------------------------------------------

def priced_claude(gateway, fake: FakeAnthropic) -> str:
    model = unique("claude-priced")
    db = open_db(gateway.db_path)
    try:  # per 1M: input 3.00, cache reads 0.30, cache writes 3.75, output 15.00
        price_store.set_price(db, model, PriceChanges(input=3_000_000, cached_input=300_000, cache_write=3_750_000,
                                                      output=15_000_000))
    finally:
        db.close()
    return claude(gateway, fake, model=model)


def ledger_rows(gateway, model: str) -> list[dict]:
    db = open_db(gateway.db_path)
    try:
        return [dict(r) for r in db.query("SELECT * FROM ledger WHERE model = ? ORDER BY id", [model])]
    finally:
        db.close()


CACHED = dict(input_tokens=100, cache_read=1000, cache_write=2000, output_tokens=50)
# 100 * 3.00 + 1000 * 0.30 + 2000 * 3.75 + 50 * 15.00 per 1M = 8850 micro-units
CACHED_COST = 8850


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_cache_reads_and_writes_are_prompt_tokens_priced_at_their_own_prices(gateway, fake, client, stream):
    model = priced_claude(gateway, fake)
    fake.script(text("Cached answer.", **CACHED))
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=HI, max_tokens=100, stream=True,
                                                     stream_options={"include_usage": True}))
        usage = extra(chunks[-1].usage)
    else:
        usage = extra(client.chat.completions.create(model=model, messages=HI, max_tokens=100).usage)
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (3100, 50, 3150)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 1000
    assert usage["prompt_tokens_details"]["cache_write_tokens"] == 2000
    gateway.wait_for(lambda: len(ledger_rows(gateway, model)) == 1, "the ledger row")
    [row] = ledger_rows(gateway, model)
    assert (row["prompt_tokens"], row["cached_tokens"], row["cache_write_tokens"], row["completion_tokens"],
            row["cost"], row["estimate"]) == (3100, 1000, 2000, 50, CACHED_COST, 0)


# -- finish reasons --------------------------------------------------------------------------

STOPS = [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
         ("refusal", "content_filter")]


def reply_for(stop: str) -> Reply:
    if stop == "tool_use":
        return Reply([{"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Lima"}}],
                     stop_reason=stop)
    return text("Partial", stop_reason=stop, stop_sequence="END" if stop == "stop_sequence" else None)


@pytest.mark.parametrize("stop, finish", STOPS)
def test_each_stop_reason_is_its_finish_reason_plain_and_streamed(gateway, fake, client, stop, finish):
    model = claude(gateway, fake)
    fake.script(reply_for(stop), reply_for(stop))
    assert client.chat.completions.create(model=model, messages=HI, max_tokens=50,
                                          tools=[WEATHER]).choices[0].finish_reason == finish
    chunks = list(client.chat.completions.create(model=model, messages=HI, max_tokens=50, tools=[WEATHER],
                                                 stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [finish]


# -- upstream errors -------------------------------------------------------------------------

def always(fake: FakeAnthropic, status: int, kind: str, message: str = "It failed.",
           retry_after: str | None = None) -> None:
    fake.faults.always(PATH, Fault("status", status, error_body(kind, message),
                                   {"retry-after": retry_after} if retry_after else {}))


@pytest.mark.parametrize("status, kind, client_status, client_type, client_code, hits", [
    (400, "invalid_request_error", 400, "invalid_request_error", None, 1),
    (413, "request_too_large", 413, "invalid_request_error", "request_too_large", 1),
    (404, "not_found_error", 404, "not_found_error", "model_not_found", 1),
    (401, "authentication_error", 502, "upstream_error", "upstream_error", 1),
    (403, "permission_error", 502, "upstream_error", "upstream_error", 1),
    (402, "billing_error", 502, "upstream_error", "upstream_error", 1),
    (429, "rate_limit_error", 503, "service_unavailable_error", "upstream_rate_limited", 3),
    (500, "api_error", 502, "upstream_error", "upstream_error", 3),
    (529, "overloaded_error", 502, "upstream_error", "upstream_error", 3),
])
def test_each_class_of_upstream_error_reaches_the_client_with_its_status_type_and_code(
        gateway, fake, client, status, kind, client_status, client_type, client_code, hits):
    model = claude(gateway, fake)
    always(fake, status, kind, f"Upstream says no ({kind}).")
    with pytest.raises(APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=HI, max_tokens=50)
    error = caught.value
    assert (error.status_code, error.body["type"], error.body["code"]) == (client_status, client_type, client_code)
    assert fake.faults.hits(PATH) == hits  # client faults are not retried; a bad key or account not asked again
    assert fake.key not in json.dumps(error.body)
    if status in (400, 404, 413):
        assert f"Upstream says no ({kind})." in error.body["message"]


def test_an_overloaded_channel_falls_over_to_a_second_one(gateway, fake, backup, client):
    model = claude_pair(gateway, fake, backup)
    always(fake, 529, "overloaded_error", "Overloaded", retry_after="1")
    done = client.chat.completions.create(model=model, messages=HI, max_tokens=50)
    assert done.choices[0].message.content == "Hello from Claude."
    assert fake.faults.hits(PATH) == 1 and backup.faults.hits(PATH) == 1
    assert_headers(backup.last(), key=backup.key)


def test_a_client_fault_does_not_fall_over(gateway, fake, backup, client):
    model = claude_pair(gateway, fake, backup)
    always(fake, 400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum")
    with pytest.raises(BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=HI, max_tokens=50)
    assert "prompt is too long" in caught.value.body["message"]
    assert (fake.faults.hits(PATH), backup.faults.hits(PATH)) == (1, 0)


def test_an_overloaded_error_event_before_any_content_falls_over_when_streaming(gateway, fake, backup, client):
    model = claude_pair(gateway, fake, backup)
    fake.script(text("never said", error_after=3))  # message_start, content_block_start, ping, then the error
    chunks = list(client.chat.completions.create(model=model, messages=HI, max_tokens=50, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from Claude."
    assert (len(fake.received), len(backup.received)) == (1, 1)


def test_an_error_event_after_content_ends_the_stream_with_an_error(gateway, fake, backup, client):
    model = claude(gateway, fake)
    fake.script(text("Some words already sent before it broke.", error_after=5))
    seen = []
    with pytest.raises(APIError) as caught:  # the SDK's error for an error event in a stream
        for chunk in client.chat.completions.create(model=model, messages=HI, max_tokens=50, stream=True):
            seen.append(chunk)
    assert seen and seen[0].choices[0].delta.content
    assert "Overloaded" in str(caught.value)
    assert len(fake.received) == 1 and backup.received == []


def test_an_unknown_model_on_one_channel_is_tried_on_the_next(gateway, fake, backup, client):
    model = claude_pair(gateway, fake, backup, first_upstream="claude-not-there-1")
    assert client.chat.completions.create(model=model, messages=HI, max_tokens=50).choices[0].message.content
    assert (len(fake.received), len(backup.received)) == (1, 1)


# -- reasoning -------------------------------------------------------------------------------

THOUGHT = Reply([{"type": "thinking", "thinking": "The user greets me; greet back.", "signature": "sig-x"},
                 {"type": "text", "text": "Hello!"}])


def test_reasoning_effort_is_adaptive_thinking_on_newer_models_surfaced_as_reasoning_content(gateway, fake, client):
    model = claude(gateway, fake, OPUS)
    fake.script(THOUGHT, THOUGHT)
    done = client.chat.completions.create(model=model, messages=HI, reasoning_effort="high", temperature=0.3)
    assert_headers(fake.last())
    assert fake.last().body == {"model": OPUS, "max_tokens": 128_000, "thinking": {"type": "adaptive"},
                                "output_config": {"effort": "high"},
                                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    message = extra(done.choices[0].message)
    assert (message["content"], message["reasoning_content"]) == ("Hello!", "The user greets me; greet back.")
    chunks = list(client.chat.completions.create(model=model, messages=HI, reasoning_effort="high", stream=True))
    reasoning = "".join(extra(c.choices[0].delta).get("reasoning_content") or "" for c in chunks if c.choices)
    assert reasoning == "The user greets me; greet back."
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"


def test_reasoning_effort_is_a_thinking_budget_on_older_models(gateway, fake, client):
    model = claude(gateway, fake, HAIKU, api_version="2023-06-01")
    fake.script(THOUGHT)
    done = client.chat.completions.create(model=model, messages=HI, reasoning_effort="low", max_tokens=4000,
                                          temperature=0.5)
    assert_headers(fake.last(), "2023-06-01")
    assert fake.last().body == {"model": HAIKU, "max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 2048},
                                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    assert extra(done.choices[0].message)["reasoning_content"] == "The user greets me; greet back."


# -- over gRPC, by reflection ----------------------------------------------------------------

@pytest.fixture(scope="module")
def grpc_channel(gateway):
    with grpc.insecure_channel(gateway.grpc_target) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


def test_grpc_plain_and_streamed_chat_with_an_image_and_cache_usage(gateway, fake, key, grpc_channel):
    model = claude(gateway, fake)
    reflected = Reflected(grpc_channel)
    create, Request = reflected.callable("st_ai.v1.Chat", "CreateChatCompletion")
    stream, _ = reflected.callable("st_ai.v1.Chat", "StreamChatCompletion")
    fake.script(text("Plain over gRPC.", cache_read=4, cache_write=8), text("Streamed over gRPC.", cache_read=4,
                                                                          cache_write=8))
    body = {"model": model, "max_tokens": 80, "messages": [{"role": "user", "parts": {"items": [
        {"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "https://img.example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_BASE64}"}}]}}]}
    done = create(json_format.ParseDict(body, Request()), metadata=auth(key), timeout=20)
    assert fake.last().body["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "url", "url": "https://img.example.com/a.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}}]
    assert done.choices[0].message.text == "Plain over gRPC."
    assert (done.usage.prompt_tokens, done.usage.prompt_tokens_details.cached_tokens,
            done.usage.prompt_tokens_details.cache_write_tokens) == (33, 4, 8)
    chunks = list(stream(json_format.ParseDict({**body, "stream_options": {"include_usage": True}}, Request()),
                         metadata=auth(key), timeout=20))
    assert "".join(c.choices[0].delta.text for c in chunks if c.choices) == "Streamed over gRPC."
    assert chunks[-1].usage.prompt_tokens_details.cache_write_tokens == 8


def test_grpc_tool_call_round_trip_and_an_upstream_400(gateway, fake, key, grpc_channel):
    model = claude(gateway, fake)
    reflected = Reflected(grpc_channel)
    create, Request = reflected.callable("st_ai.v1.Chat", "CreateChatCompletion")
    fake.script(PARIS_AND_ROME)
    first = create(json_format.ParseDict({"model": model, "max_tokens": 100, "tools": [WEATHER],
                                          "messages": [{"role": "user", "text": "Weather in Paris and Rome?"}]},
                                         Request()), metadata=auth(key), timeout=20)
    assert [c.id for c in first.choices[0].message.tool_calls] == ["toolu_paris", "toolu_rome"]
    assert first.choices[0].finish_reason == "tool_calls"
    messages = [{"role": m["role"], **({"text": m["content"]} if isinstance(m.get("content"), str) else {}),
                 **{k: v for k, v in m.items() if k in ("tool_calls", "tool_call_id")}} for m in tool_results()]
    create(json_format.ParseDict({"model": model, "max_tokens": 100, "tools": [WEATHER], "messages": messages},
                                 Request()), metadata=auth(key), timeout=20)
    assert fake.last().body["messages"] == EXPECTED_ROUND_TRIP
    always(fake, 400, "invalid_request_error", "messages: too many images")
    with pytest.raises(grpc.RpcError) as caught:
        create(json_format.ParseDict({"model": model, "max_tokens": 100, "messages": [{"role": "user", "text": "x"}]},
                                     Request()), metadata=auth(key), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_detail(reflected, caught.value)
    assert (detail.http_status, detail.type) == (400, "invalid_request_error")
    assert "too many images" in detail.message


def test_reasoning_through_a_tool_call_keeps_the_signed_thinking_the_client_sends_back(gateway, fake, client):
    model = claude(gateway, fake, OPUS)
    fake.script(Reply([{"type": "thinking", "thinking": "I need the weather tool.", "signature": "sig-tool"},
                       {"type": "tool_use", "id": "toolu_w", "name": "weather", "input": {"city": "Oslo"}}],
                      stop_reason="tool_use"),
                text("Oslo is cold."), text("Oslo is still cold."))
    question = [{"role": "user", "content": "Weather in Oslo?"}]
    first = extra(client.chat.completions.create(model=model, messages=question, tools=[WEATHER],
                                                 reasoning_effort="medium").choices[0].message)
    assert first["thinking_blocks"] == [{"type": "thinking", "thinking": "I need the weather tool.",
                                         "signature": "sig-tool"}]
    call = first["tool_calls"][0]
    turn = {"role": "assistant", "content": None, "tool_calls": [call], "thinking_blocks": first["thinking_blocks"]}
    result = {"role": "tool", "tool_call_id": call["id"], "content": "-3C"}
    done = client.chat.completions.create(model=model, tools=[WEATHER], reasoning_effort="medium",
                                          messages=[*question, turn, result])
    body = fake.last().body
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "medium"}
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "I need the weather tool.", "signature": "sig-tool"},
        {"type": "tool_use", "id": "toolu_w", "name": "weather", "input": {"city": "Oslo"}}]
    assert done.choices[0].message.content == "Oslo is cold."
    # a client that drops the thinking still gets its answer: thinking is left out for that request
    del turn["thinking_blocks"]
    client.chat.completions.create(model=model, tools=[WEATHER], reasoning_effort="medium",
                                   messages=[*question, turn, result])
    assert "thinking" not in fake.last().body


def test_streamed_thinking_ends_with_its_signed_block(gateway, fake, client):
    model = claude(gateway, fake, OPUS)
    fake.script(THOUGHT)
    chunks = list(client.chat.completions.create(model=model, messages=HI, reasoning_effort="low", stream=True))
    blocks = [b for c in chunks if c.choices for b in extra(c.choices[0].delta).get("thinking_blocks") or []]
    assert blocks == [{"type": "thinking", "thinking": "The user greets me; greet back.", "signature": "sig-x"}]


def test_grpc_streamed_reasoning_and_parallel_tool_calls(gateway, fake, key, grpc_channel):
    model = claude(gateway, fake, OPUS)
    reflected = Reflected(grpc_channel)
    stream, Request = reflected.callable("st_ai.v1.Chat", "StreamChatCompletion")
    fake.script(Reply([{"type": "thinking", "thinking": "Both cities, in parallel.", "signature": "sig-g"},
                       *PARIS_AND_ROME.content[1:]], stop_reason="tool_use"))
    request = {"model": model, "tools": [WEATHER], "reasoning_effort": "high",
               "messages": [{"role": "user", "text": "Weather in Paris and Rome?"}]}
    chunks = list(stream(json_format.ParseDict(request, Request()), metadata=auth(key), timeout=20))
    assert fake.last().body["thinking"] == {"type": "adaptive"}
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.reasoning_content for d in deltas) == "Both cities, in parallel."
    calls: dict[int, dict] = {}
    for delta in deltas:
        for call in delta.tool_calls:
            merged = calls.setdefault(call.index, {"id": "", "arguments": ""})
            merged["id"] += call.id
            merged["arguments"] += call.function.arguments
    assert [(c["id"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("toolu_paris", {"city": "Paris"}), ("toolu_rome", {"city": "Rome"})]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


@pytest.mark.parametrize("stop, finish", STOPS)
def test_grpc_each_stop_reason_is_its_finish_reason(gateway, fake, key, grpc_channel, stop, finish):
    model = claude(gateway, fake)
    create, Request = Reflected(grpc_channel).callable("st_ai.v1.Chat", "CreateChatCompletion")
    fake.script(reply_for(stop))
    done = create(json_format.ParseDict({"model": model, "max_tokens": 50, "tools": [WEATHER],
                                         "messages": [{"role": "user", "text": "Hi"}]}, Request()),
                  metadata=auth(key), timeout=20)
    assert done.choices[0].finish_reason == finish


@pytest.mark.parametrize("status, kind, code, http_status, client_code", [
    (400, "invalid_request_error", grpc.StatusCode.INVALID_ARGUMENT, 400, ""),
    (413, "request_too_large", grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "request_too_large"),
    (404, "not_found_error", grpc.StatusCode.NOT_FOUND, 404, "model_not_found"),
    (401, "authentication_error", grpc.StatusCode.UNAVAILABLE, 502, "upstream_error"),
    (429, "rate_limit_error", grpc.StatusCode.UNAVAILABLE, 503, "upstream_rate_limited"),
    (529, "overloaded_error", grpc.StatusCode.UNAVAILABLE, 502, "upstream_error"),
])
def test_grpc_each_class_of_upstream_error(gateway, fake, key, grpc_channel, status, kind, code, http_status,
                                           client_code):
    model = claude(gateway, fake)
    reflected = Reflected(grpc_channel)
    create, Request = reflected.callable("st_ai.v1.Chat", "CreateChatCompletion")
    always(fake, status, kind)
    with pytest.raises(grpc.RpcError) as caught:
        create(json_format.ParseDict({"model": model, "max_tokens": 50, "messages": [{"role": "user", "text": "Hi"}]},
                                     Request()), metadata=auth(key), timeout=20)
    assert caught.value.code() == code
    detail = error_detail(reflected, caught.value)
    assert (detail.http_status, detail.code) == (http_status, client_code)
