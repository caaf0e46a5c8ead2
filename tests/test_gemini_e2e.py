"""st-ai in front of the fake Gemini API (tests/fakes/gemini.py), end to end: the official
openai SDK over REST and gRPC by reflection get OpenAI's behaviour from a `gemini`
channel — plain and streamed answers, images by URL and base64, parallel tool calls round
trips with their thought signatures, usage with cached and reasoning tokens, every finish
reason, safety blocks and each class of Google's errors — while the fake checks the exact
request Google would get. Everything listens on 127.0.0.1."""
from __future__ import annotations

import json
import sqlite3
import time

import grpc
import openai
import pytest
from google.protobuf import json_format
from openai import OpenAI

from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.gemini import FakeGemini, GoogleFault, Reply
from tests.reflection_client import Reflected, auth, error_detail
from tests.fakes.image_host import ImageHost
from tests.test_provider_gemini import PNG, PNG_B64

pytestmark = pytest.mark.timeout(90)

FLASH, PRO3, BROKEN = "gemini-2.5-flash", "gemini-3-pro-preview", "gemini-2.0-flash"
TIMEOUT = 15.0
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                           "parameters": {"type": "object", "properties": {
                                               "city": {"type": "string"}}, "required": ["city"],
                                               "additionalProperties": False}}}]
DECLARED = [{"functionDeclarations": [{"name": "get_weather", "description": "Current weather in a city",
                                       "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                                                      "required": ["city"]}}]}]
TWO_CALLS = [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "UEFSSVM="},
             {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]
ASK = [{"role": "user", "content": "Weather in Paris and Oslo?"}]


@pytest.fixture(scope="module")
def fake():
    server = FakeGemini().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def image_host():
    server = ImageHost(PNG).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fake):
    db_path = str(tmp_path_factory.mktemp("gemini") / "st-ai.db")
    open_db(db_path).close()
    # failures on purpose here must not rest the channel for the next test, nor a probe of the
    # channel with the wrong key reach the fake during another test
    gateway = start_gateway(db_path, "--cooldown-failures", "1000", "--probe-interval", "3600")
    gateway.channel("gemini", "gemini", [FLASH, PRO3], base_url=fake.base_url, key=fake.api_key)
    gateway.channel("gemini-bad-key", "gemini", [BROKEN], base_url=fake.base_url, key="AIzaSyNOT0the0key")
    yield gateway
    stop_gateway(gateway)


@pytest.fixture(scope="module")
def key(gw):
    return gw.token("gemini-e2e")


@pytest.fixture
def upstream(fake):
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture
def client(gw, key):
    return OpenAI(base_url=gw.base_url, api_key=key, timeout=TIMEOUT, max_retries=0)


def booked(gw, stream: bool) -> tuple[int, int, int]:
    """(prompt, cached, completion) tokens of the last ledger row of its kind, once it is written."""
    deadline = time.monotonic() + 5
    while True:
        db = sqlite3.connect(gw.db_path, timeout=5)
        try:
            row = db.execute("SELECT prompt_tokens, cached_tokens, completion_tokens FROM ledger WHERE stream = ? "
                             "AND status = 200 ORDER BY id DESC LIMIT 1", [int(stream)]).fetchone()
        finally:
            db.close()
        if row is not None or time.monotonic() > deadline:
            return tuple(row) if row else None
        time.sleep(0.05)


def only_call(fake: FakeGemini):
    (call,) = fake.received
    assert call.headers["x-goog-api-key"] == fake.api_key
    assert "Authorization" not in call.headers  # the client's st-ai token never goes upstream
    return call


# -- plain and streamed -----------------------------------------------------------------------

def test_plain_chat_sends_googles_request_and_answers_openais(gw, client, upstream):
    upstream.replies.append(Reply.text("Bonjour", " !", promptTokenCount=12, candidatesTokenCount=3,
                                       totalTokenCount=15))
    answer = client.chat.completions.create(model=FLASH, temperature=0.4, max_tokens=64, stop=["END"], messages=[
        {"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}])
    assert answer.choices[0].message.content == "Bonjour !" and answer.choices[0].finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (12, 3, 15)
    assert booked(gw, stream=False) == (12, 0, 3)
    call = only_call(upstream)
    assert call.path == f"/v1beta/models/{FLASH}:generateContent"
    assert call.body == {"systemInstruction": {"parts": [{"text": "Answer in French."}]},
                         "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
                         "generationConfig": {"temperature": 0.4, "maxOutputTokens": 64, "stopSequences": ["END"]}}


def test_streamed_chat_arrives_chunk_by_chunk_with_usage_when_asked(gw, client, upstream):
    upstream.replies.append(Reply([[{"text": "Counting.", "thought": True}, {"text": "one "}, {"text": "two"}]],
                                  usage={"promptTokenCount": 40, "cachedContentTokenCount": 32,
                                         "candidatesTokenCount": 2, "thoughtsTokenCount": 5, "totalTokenCount": 47}))
    chunks = list(client.chat.completions.create(model=FLASH, stream=True, reasoning_effort="low",
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "Count"}]))
    shown = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in shown) == "one two"
    assert "".join((d.model_extra or {}).get("reasoning_content") or "" for d in shown) == "Counting."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and (usage.prompt_tokens, usage.completion_tokens) == (40, 7)
    assert usage.prompt_tokens_details.cached_tokens == 32 and usage.completion_tokens_details.reasoning_tokens == 5
    assert booked(gw, stream=True) == (40, 32, 7)  # Gemini's counts are what the request is billed for
    call = only_call(upstream)
    assert call.path == f"/v1beta/models/{FLASH}:streamGenerateContent" and call.query == "alt=sse"
    assert call.body == {"contents": [{"role": "user", "parts": [{"text": "Count"}]}],
                         "generationConfig": {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}}


def test_a_stream_without_include_usage_shows_no_usage_chunk(client, upstream):
    chunks = list(client.chat.completions.create(model=FLASH, stream=True, messages=[{"role": "user", "content": "Hi"}]))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello from the fake Gemini."


# -- images -----------------------------------------------------------------------------------

def test_images_by_url_and_base64_go_inline(client, upstream, image_host):
    image_host.received.clear()
    client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare these"},
        {"type": "image_url", "image_url": {"url": f"http://127.0.0.1:{image_host.port}/cat.png"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}])
    call = only_call(upstream)
    assert call.body["contents"] == [{"role": "user", "parts": [
        {"text": "Compare these"}, {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]}]
    assert len(image_host.received) == 1 and "x-goog-api-key" not in image_host.received[0]


def test_an_image_url_at_a_metadata_address_is_a_400_naming_it(client, upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data/x.png"}}]}])
    error = caught.value.body
    assert error["param"] == "messages[0].content[0].image_url.url" and error["code"] == "invalid_image_url"
    assert upstream.received == []


# -- tools ------------------------------------------------------------------------------------

def test_a_parallel_tool_call_round_trip_keeps_the_thought_signature(client, upstream):
    upstream.replies += [Reply([TWO_CALLS]), Reply.text("Paris 21°, Oslo 3°.")]
    first = client.chat.completions.create(model=FLASH, messages=ASK, tools=TOOLS, tool_choice="required")
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    calls = message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)
    assert calls[0].model_extra["extra_content"] == {"google": {"thought_signature": "UEFSSVM="}}
    # the SDK sends the assistant message back as it got it
    second = client.chat.completions.create(model=FLASH, tools=TOOLS, messages=ASK + [
        message, {"role": "tool", "tool_call_id": calls[1].id, "content": json.dumps({"celsius": 3})},
        {"role": "tool", "tool_call_id": calls[0].id, "content": json.dumps({"celsius": 21})}])
    assert second.choices[0].message.content == "Paris 21°, Oslo 3°."
    asked, answered = upstream.received
    assert asked.body["tools"] == DECLARED and asked.body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert answered.body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Oslo?"}]},
        {"role": "model", "parts": TWO_CALLS},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"celsius": 3}}},
                                   {"functionResponse": {"name": "get_weather", "response": {"celsius": 21}}}]}]


def test_a_streamed_parallel_tool_call_round_trip_keeps_ids_and_the_signature(client, upstream):
    upstream.replies += [Reply([TWO_CALLS]), Reply.text("Done.")]
    chunks = list(client.chat.completions.create(model=FLASH, messages=ASK, tools=TOOLS, stream=True,
                                                 tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert [d.index for d in deltas] == [0, 1] and len({d.id for d in deltas}) == 2
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assembled = [{"id": d.id, "type": "function", "function": {"name": d.function.name,
                                                              "arguments": d.function.arguments},
                  **({"extra_content": d.model_extra["extra_content"]} if "extra_content" in d.model_extra else {})}
                 for d in deltas]
    reply = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=FLASH, stream=True, tools=TOOLS, messages=ASK + [
            {"role": "assistant", "tool_calls": assembled},
            {"role": "tool", "tool_call_id": deltas[0].id, "content": "21"},
            {"role": "tool", "tool_call_id": deltas[1].id, "content": "3"}]) if c.choices)
    assert reply == "Done."
    asked, answered = upstream.received
    assert asked.body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY",
                                                                  "allowedFunctionNames": ["get_weather"]}}
    assert answered.body["contents"][1:] == [
        {"role": "model", "parts": TWO_CALLS},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": 21}}},
                                   {"functionResponse": {"name": "get_weather", "response": {"output": 3}}}]}]


# -- generation config ------------------------------------------------------------------------

def test_n_candidates_come_back_as_choices_plain_and_streamed(client, upstream):
    two = Reply([[{"text": "first"}], [{"text": "second"}]], finish=["STOP", "MAX_TOKENS"])
    upstream.replies += [two, two]
    answer = client.chat.completions.create(model=FLASH, n=2, messages=[{"role": "user", "content": "x"}])
    assert [(c.index, c.message.content, c.finish_reason) for c in answer.choices] == [
        (0, "first", "stop"), (1, "second", "length")]
    chunks = list(client.chat.completions.create(model=FLASH, n=2, stream=True,
                                                 messages=[{"role": "user", "content": "x"}]))
    texts, finishes = {}, {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            finishes[choice.index] = choice.finish_reason or finishes.get(choice.index)
    assert (texts, finishes) == ({0: "first", 1: "second"}, {0: "stop", 1: "length"})
    assert [r.body["generationConfig"] for r in upstream.received] == [{"candidateCount": 2}] * 2


def test_a_json_schema_response_format_reaches_gemini_as_a_schema_it_takes(client, upstream):
    upstream.replies.append(Reply.text('{"name": "Ada", "born": 1815, "tags": []}'))
    person = {"type": "object", "$defs": {"tag": {"type": "string", "enum": ["math", "poetry"]}},
              "properties": {"name": {"type": "string"}, "born": {"type": ["integer", "null"]},
                             "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
                             "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
              "required": ["name", "born", "tags", "note"], "additionalProperties": False}
    answer = client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "Ada?"}],
                                            response_format={"type": "json_schema", "json_schema": {
                                                "name": "person", "strict": True, "schema": person}})
    assert json.loads(answer.choices[0].message.content)["name"] == "Ada"
    assert only_call(upstream).body["generationConfig"] == {"responseMimeType": "application/json", "responseSchema": {
        "type": "OBJECT", "required": ["name", "born", "tags", "note"], "properties": {
            "name": {"type": "STRING"}, "born": {"type": "INTEGER", "nullable": True},
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["math", "poetry"], "format": "enum"}},
            "note": {"type": "STRING", "nullable": True}}}}


# -- finish reasons, reasoning, blocks --------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("reason, finish", [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
                                            ("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"),
                                            ("SPII", "content_filter"), ("BLOCKLIST", "content_filter")])
def test_each_finish_reason(client, upstream, reason, finish, stream):
    upstream.replies.append(Reply.text("Partial", finish=reason))
    if stream:
        chunks = list(client.chat.completions.create(model=FLASH, stream=True, messages=[{"role": "user", "content": "x"}]))
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == finish
    else:
        answer = client.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].finish_reason == finish
    assert only_call(upstream).body == {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}


def test_reasoning_on_a_gemini_3_model_uses_a_thinking_level_and_shows_the_summary(client, upstream):
    upstream.replies.append(Reply([[{"text": "Weighing both.", "thought": True}, {"text": "42"}]],
                                  usage={"promptTokenCount": 8, "candidatesTokenCount": 1, "thoughtsTokenCount": 90,
                                         "totalTokenCount": 99}))
    answer = client.chat.completions.create(model=PRO3, reasoning_effort="high",
                                            messages=[{"role": "user", "content": "Answer?"}])
    message = answer.choices[0].message
    assert message.content == "42" and message.model_extra["reasoning_content"] == "Weighing both."
    assert answer.usage.completion_tokens == 91 and answer.usage.completion_tokens_details.reasoning_tokens == 90
    assert only_call(upstream).body["generationConfig"] == {"thinkingConfig": {"thinkingLevel": "high",
                                                                               "includeThoughts": True}}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_blocked_prompt_is_a_400_content_filter(client, upstream, stream):
    upstream.replies.append(Reply(block_reason="SAFETY"))
    with pytest.raises(openai.BadRequestError) as caught:
        result = client.chat.completions.create(model=FLASH, stream=stream, messages=[{"role": "user", "content": "x"}])
        list(result) if stream else None
    assert caught.value.body["code"] == "content_filter" and "SAFETY" in caught.value.body["message"]
    assert len(upstream.received) == 1


# -- Google's errors --------------------------------------------------------------------------

@pytest.mark.parametrize("fault, status, code, hits", [
    (GoogleFault(400, "INVALID_ARGUMENT", "Invalid value at 'contents'."), 400, "invalid_request", 1),
    (GoogleFault(404, "NOT_FOUND", "models/x is not found."), 404, "model_not_found", 1),
    (GoogleFault(429, "RESOURCE_EXHAUSTED", "Quota exceeded."), 503, "upstream_rate_limited", 3),
    (GoogleFault(500, "INTERNAL", "An internal error has occurred."), 502, "upstream_error", 3),
    (GoogleFault(503, "UNAVAILABLE", "The model is overloaded."), 502, "upstream_error", 3),
    (GoogleFault(504, "DEADLINE_EXCEEDED", "Deadline expired."), 502, "upstream_error", 3),
])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_each_class_of_googles_errors_reaches_the_client_as_openais(client, upstream, fault, status, code, hits,
                                                                   stream):
    upstream.fail_always = fault
    with pytest.raises(openai.APIStatusError) as caught:
        result = client.chat.completions.create(model=FLASH, stream=stream, messages=[{"role": "user", "content": "x"}])
        list(result) if stream else None
    assert (caught.value.status_code, caught.value.body["code"]) == (status, code), caught.value.body
    assert [r.body for r in upstream.received] == [{"contents": [{"role": "user", "parts": [{"text": "x"}]}]}] * hits
    if status == 400:
        assert caught.value.body["message"] == "Gemini: Invalid value at 'contents'."


def test_a_key_google_refuses_is_a_502_and_never_the_clients_401(client, upstream):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=BROKEN, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502 and "AIzaSyNOT0the0key" not in json.dumps(caught.value.body)
    assert len(upstream.received) == 1


def test_an_error_after_the_first_chunk_ends_the_stream_in_band(client, upstream):
    upstream.replies.append(Reply.text("one ", "two ", "three"))
    upstream.stream_error_after = 1
    got = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model=FLASH, stream=True, messages=[{"role": "user", "content": "x"}]):
            got.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert "one " in got and "three" not in got


# -- gRPC by reflection -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def reflected(gw):
    with grpc.insecure_channel(gw.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield Reflected(channel)


def test_grpc_plain_and_streamed_chat(reflected, key, upstream):
    create, Request = reflected.callable("st_ai.v1.Chat", "CreateChatCompletion")
    upstream.replies.append(Reply.text("Hi there", promptTokenCount=3, candidatesTokenCount=2, totalTokenCount=5,
                                       cachedContentTokenCount=1))
    completion = create(json_format.ParseDict({"model": FLASH, "messages": [{"role": "user", "text": "Hi"}]},
                                              Request()), metadata=auth(key), timeout=TIMEOUT)
    assert completion.choices[0].message.text == "Hi there" and completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens_details.cached_tokens == 1
    stream, Request = reflected.callable("st_ai.v1.Chat", "StreamChatCompletion")
    upstream.replies.append(Reply.text("a", "b"))
    chunks = list(stream(json_format.ParseDict({"model": FLASH, "messages": [{"role": "user", "text": "Hi"}],
                                                "stream_options": {"include_usage": True}}, Request()),
                         metadata=auth(key), timeout=TIMEOUT))
    assert "".join(ch.delta.text for c in chunks for ch in c.choices) == "ab"
    assert chunks[-1].usage.total_tokens == 18
    assert [r.body["contents"] for r in upstream.received] == [[{"role": "user", "parts": [{"text": "Hi"}]}]] * 2


def test_grpc_streamed_tool_round_trip_carries_the_signature_in_extra_json(reflected, key, upstream):
    stream, Request = reflected.callable("st_ai.v1.Chat", "StreamChatCompletion")
    create, _ = reflected.callable("st_ai.v1.Chat", "CreateChatCompletion")
    upstream.replies += [Reply([TWO_CALLS]), Reply.text("Done.")]
    ask = {"model": FLASH, "messages": [{"role": "user", "text": "Weather in Paris and Oslo?"}], "tools": TOOLS}
    chunks = list(stream(json_format.ParseDict(ask, Request()), metadata=auth(key), timeout=TIMEOUT))
    calls = [call for c in chunks for ch in c.choices for call in ch.delta.tool_calls]
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert json.loads(calls[0].extra_json) == {"extra_content": {"google": {"thought_signature": "UEFSSVM="}}}
    assistant = {"role": "assistant", "tool_calls": [json_format.MessageToDict(c, preserving_proto_field_name=True)
                                                     for c in calls]}
    for call in assistant["tool_calls"]:
        call.pop("index")
    follow = {**ask, "messages": ask["messages"] + [assistant] + [
        {"role": "tool", "tool_call_id": c.id, "text": "sunny"} for c in calls]}
    completion = create(json_format.ParseDict(follow, Request()), metadata=auth(key), timeout=TIMEOUT)
    assert completion.choices[0].message.text == "Done."
    assert upstream.received[1].body["contents"][1] == {"role": "model", "parts": TWO_CALLS}


def test_grpc_errors_carry_the_openai_detail(reflected, key, upstream):
    create, Request = reflected.callable("st_ai.v1.Chat", "CreateChatCompletion")
    upstream.replies.append(Reply(block_reason="PROHIBITED_CONTENT"))
    with pytest.raises(grpc.RpcError) as caught:
        create(json_format.ParseDict({"model": FLASH, "messages": [{"role": "user", "text": "x"}]}, Request()),
               metadata=auth(key), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_detail(reflected, caught.value)
    assert (detail.code, detail.http_status) == ("content_filter", 400)


def test_grpc_images_by_url_and_base64_go_inline(reflected, key, upstream, image_host):
    create, Request = reflected.callable("st_ai.v1.Chat", "CreateChatCompletion")
    parts = [{"type": "text", "text": "Compare"},
             {"type": "image_url", "image_url": {"url": f"http://127.0.0.1:{image_host.port}/cat.png"}},
             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]
    create(json_format.ParseDict({"model": FLASH, "messages": [{"role": "user", "parts": {"items": parts}}]},
                                 Request()), metadata=auth(key), timeout=TIMEOUT)
    assert only_call(upstream).body["contents"][0]["parts"] == [
        {"text": "Compare"}, {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]


def test_grpc_plain_parallel_tool_round_trip_and_reasoning(reflected, key, upstream):
    create, Request = reflected.callable("st_ai.v1.Chat", "CreateChatCompletion")
    upstream.replies += [Reply([[{"text": "Two cities.", "thought": True}, *TWO_CALLS]],
                               usage={"promptTokenCount": 9, "candidatesTokenCount": 4, "thoughtsTokenCount": 6,
                                      "totalTokenCount": 19}),
                         Reply.text("Done.")]
    ask = {"model": PRO3, "reasoning_effort": "low", "tools": TOOLS,
           "messages": [{"role": "user", "text": "Weather in Paris and Oslo?"}]}
    first = create(json_format.ParseDict(ask, Request()), metadata=auth(key), timeout=TIMEOUT)
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and message.reasoning_content == "Two cities."
    assert first.usage.completion_tokens_details.reasoning_tokens == 6 and first.usage.completion_tokens == 10
    assert [c.function.name for c in message.tool_calls] == ["get_weather"] * 2
    follow = {**ask, "messages": ask["messages"] + [json_format.MessageToDict(message, preserving_proto_field_name=True)]
              + [{"role": "tool", "tool_call_id": c.id, "text": "sunny"} for c in message.tool_calls]}
    assert create(json_format.ParseDict(follow, Request()), metadata=auth(key),
                  timeout=TIMEOUT).choices[0].message.text == "Done."
    asked, answered = upstream.received
    assert asked.body["generationConfig"] == {"thinkingConfig": {"thinkingLevel": "low", "includeThoughts": True}}
    assert answered.body["contents"][1:] == [
        {"role": "model", "parts": TWO_CALLS},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}] * 2}]


@pytest.mark.parametrize("reason, finish", [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
                                            ("RECITATION", "content_filter"), ("SPII", "content_filter")])
def test_grpc_each_finish_reason_streamed(reflected, key, upstream, reason, finish):
    stream, Request = reflected.callable("st_ai.v1.Chat", "StreamChatCompletion")
    upstream.replies.append(Reply.text("Partial", finish=reason))
    chunks = list(stream(json_format.ParseDict({"model": FLASH, "messages": [{"role": "user", "text": "x"}]},
                                               Request()), metadata=auth(key), timeout=TIMEOUT))
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == [finish]


@pytest.mark.parametrize("fault, status, code", [
    (GoogleFault(400, "INVALID_ARGUMENT", "Invalid value at 'contents'."), 400, "invalid_request"),
    (GoogleFault(404, "NOT_FOUND", "models/x is not found."), 404, "model_not_found"),
    (GoogleFault(429, "RESOURCE_EXHAUSTED", "Quota exceeded."), 503, "upstream_rate_limited"),
    (GoogleFault(500, "INTERNAL", "An internal error has occurred."), 502, "upstream_error"),
    (GoogleFault(503, "UNAVAILABLE", "The model is overloaded."), 502, "upstream_error"),
])
@pytest.mark.parametrize("method", ["CreateChatCompletion", "StreamChatCompletion"])
def test_grpc_each_class_of_googles_errors(reflected, key, upstream, fault, status, code, method):
    call, Request = reflected.callable("st_ai.v1.Chat", method)
    upstream.fail_always = fault
    with pytest.raises(grpc.RpcError) as caught:
        result = call(json_format.ParseDict({"model": FLASH, "messages": [{"role": "user", "text": "x"}]}, Request()),
                      metadata=auth(key), timeout=TIMEOUT)
        list(result) if method.startswith("Stream") else None
    detail = error_detail(reflected, caught.value)
    assert (detail.http_status, detail.code) == (status, code)
    assert no_secret_in(detail.message, upstream)


def no_secret_in(text: str, fake: FakeGemini) -> bool:
    return fake.api_key not in text and fake.base_url.split("//")[1] not in text
