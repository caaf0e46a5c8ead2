"""The official `openai` Python SDK, sync and async, pointed at st-ai unchanged except for
`base_url` and `api_key`, talking to the built-in simulator: plain and streamed chat,
tool-call round trips, image inputs, and the model list a token may see."""
from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass

import pytest
from openai import AsyncOpenAI, AuthenticationError, NotFoundError, OpenAI, PermissionDeniedError

FINGERPRINT = "st-ai-simulator"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a place.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "City name"}},
            "required": ["location"],
        },
    },
}
# A 1x1 transparent PNG.
PNG_1X1 = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")).decode()


@dataclass(frozen=True)
class Setup:
    base_url: str
    model: str            # a model every test chats with
    other_models: list[str]   # more models the same simulator channel serves
    all_key: str          # a token for every model
    limited_key: str      # a token for `limited_models` only
    limited_models: list[str]

    def client(self, key: str | None = None) -> OpenAI:
        return OpenAI(base_url=self.base_url, api_key=key or self.all_key, timeout=10, max_retries=0)

    def async_client(self, key: str | None = None) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.base_url, api_key=key or self.all_key, timeout=10, max_retries=0)


@pytest.fixture(scope="module")
def sdk(gateway) -> Setup:
    """One simulator channel serving four models, a token for all of them and one for two."""
    tag = uuid.uuid4().hex[:8]
    models = [f"sdk-sim-{tag}-{suffix}" for suffix in ("chat", "mini", "vision", "extra")]
    gateway.channel(f"sdk-sim-{tag}", "simulator", models)
    limited = models[1:3]
    return Setup(
        base_url=gateway.base_url, model=models[0], other_models=models[1:],
        all_key=gateway.token(f"sdk-all-{tag}"),
        limited_key=gateway.token(f"sdk-limited-{tag}", models=limited),
        limited_models=limited,
    )


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def weather_question() -> list[dict]:
    return [{"role": "user", "content": "What is the weather in Paris?"}]


def assert_usage_adds_up(usage) -> None:
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def assert_weather_call(call) -> None:
    """A tool call the way a client would use it: an id, a known function, schema-valid JSON."""
    assert call.id and call.type == "function"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments, dict)
    assert set(arguments) >= {"location"}
    assert isinstance(arguments["location"], str) and arguments["location"]


def tool_reply(call_id: str, name: str, arguments: str, result: str) -> list[dict]:
    """The two messages a client appends after running a tool: the assistant's call and the result."""
    return [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def reassemble_tool_calls(chunks) -> dict[int, dict]:
    """Merge streamed tool-call deltas by index, as OpenAI's documentation tells clients to."""
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "type": None, "name": "", "arguments": ""})
                if delta.id:
                    call["id"] = delta.id
                if delta.type:
                    call["type"] = delta.type
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
    return calls


def streamed_text(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --- plain completions -------------------------------------------------------------------

def test_sync_client_gets_a_plain_completion_with_consistent_usage(sdk):
    completion = sdk.client().chat.completions.create(
        model=sdk.model, messages=[{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Hello there"}])

    assert completion.object == "chat.completion"
    assert completion.id
    assert completion.model == sdk.model
    assert completion.system_fingerprint == FINGERPRINT
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Simulated reply to: Hello there"
    assert not choice.message.tool_calls
    assert_usage_adds_up(completion.usage)


def test_async_client_gets_the_same_plain_completion(sdk):
    messages = [{"role": "user", "content": "Hello from asyncio"}]

    async def ask():
        async with sdk.async_client() as client:
            return await client.chat.completions.create(model=sdk.model, messages=messages)

    completion = run(ask())
    expected = sdk.client().chat.completions.create(model=sdk.model, messages=messages)

    assert completion.choices[0].message.content == "Simulated reply to: Hello from asyncio"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.system_fingerprint == FINGERPRINT
    assert_usage_adds_up(completion.usage)
    assert completion.usage.model_dump() == expected.usage.model_dump()


def test_max_tokens_cuts_the_answer_with_finish_reason_length(sdk):
    completion = sdk.client().chat.completions.create(
        model=sdk.model, max_tokens=3,
        messages=[{"role": "user", "content": "one two three four five six"}])

    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "Simulated reply to"
    assert completion.usage.completion_tokens == 3
    assert_usage_adds_up(completion.usage)


# --- streaming ---------------------------------------------------------------------------

def test_sync_stream_arrives_chunk_by_chunk_and_matches_the_whole_answer(sdk):
    messages = [{"role": "user", "content": "Tell me a short story about a lighthouse"}]
    client = sdk.client()
    whole = client.chat.completions.create(model=sdk.model, messages=messages)

    with client.chat.completions.create(model=sdk.model, messages=messages, stream=True) as stream:
        chunks = list(stream)

    assert len(chunks) > 3
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.system_fingerprint == FINGERPRINT for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert streamed_text(chunks) == whole.choices[0].message.content
    # Without stream_options.include_usage no usage chunk comes.
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_sync_stream_with_include_usage_ends_with_a_usage_only_chunk(sdk):
    messages = [{"role": "user", "content": "Count the stars"}]
    client = sdk.client()
    whole = client.chat.completions.create(model=sdk.model, messages=messages)

    stream = client.chat.completions.create(model=sdk.model, messages=messages, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)

    last = chunks[-1]
    assert last.choices == []
    assert_usage_adds_up(last.usage)
    assert last.usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert streamed_text(chunks) == whole.choices[0].message.content


def test_async_stream_arrives_chunk_by_chunk_and_matches_the_whole_answer(sdk):
    messages = [{"role": "user", "content": "Describe the sea at night"}]
    whole = sdk.client().chat.completions.create(model=sdk.model, messages=messages)

    async def stream_it(**extra):
        async with sdk.async_client() as client:
            stream = await client.chat.completions.create(model=sdk.model, messages=messages,
                                                          stream=True, **extra)
            return [chunk async for chunk in stream]

    chunks = run(stream_it())
    assert len(chunks) > 3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert streamed_text(chunks) == whole.choices[0].message.content
    assert all(c.usage is None for c in chunks)

    with_usage = run(stream_it(stream_options={"include_usage": True}))
    assert with_usage[-1].choices == []
    assert with_usage[-1].usage.model_dump() == whole.usage.model_dump()


def test_sdk_stream_helper_accumulates_the_final_completion(sdk):
    """`client.chat.completions.stream(...)` (the SDK's own accumulator) rebuilds the answer."""
    messages = [{"role": "user", "content": "Say something nice"}]
    client = sdk.client()
    whole = client.chat.completions.create(model=sdk.model, messages=messages)

    with client.chat.completions.stream(model=sdk.model, messages=messages) as stream:
        final = stream.get_final_completion()

    assert final.choices[0].message.content == whole.choices[0].message.content
    assert final.choices[0].finish_reason == "stop"


# --- tool calls --------------------------------------------------------------------------

def test_sync_tool_call_round_trip(sdk):
    client = sdk.client()
    messages = weather_question()

    first = client.chat.completions.create(model=sdk.model, messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert_weather_call(call)
    assert json.loads(call.function.arguments) == {"location": "Paris"}
    assert_usage_adds_up(first.usage)

    # The client sends back the assistant message exactly as received, plus the tool result.
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"})
    final = client.chat.completions.create(model=sdk.model, messages=messages, tools=[WEATHER_TOOL])

    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "The tool get_weather returned: 18C and sunny"
    assert not final.choices[0].message.tool_calls
    assert_usage_adds_up(final.usage)


def test_sync_streamed_tool_call_round_trip(sdk):
    client = sdk.client()
    messages = weather_question()

    with client.chat.completions.create(model=sdk.model, messages=messages, tools=[WEATHER_TOOL],
                                        stream=True) as stream:
        chunks = list(stream)

    assert len(chunks) > 2
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert streamed_text(chunks) == ""
    calls = reassemble_tool_calls(chunks)
    assert list(calls) == [0]
    call = calls[0]
    assert call["id"] and call["type"] == "function" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"location": "Paris"}
    # The arguments really were streamed in several pieces.
    assert sum(1 for c in chunks for t in c.choices[0].delta.tool_calls or []
               if t.function and t.function.arguments) > 1

    messages += tool_reply(call["id"], call["name"], call["arguments"], "rainy, 11C")
    with client.chat.completions.create(model=sdk.model, messages=messages, tools=[WEATHER_TOOL],
                                        stream=True) as stream:
        answer = list(stream)

    assert answer[-1].choices[0].finish_reason == "stop"
    assert streamed_text(answer) == "The tool get_weather returned: rainy, 11C"
    assert reassemble_tool_calls(answer) == {}


def test_named_tool_choice_picks_that_tool(sdk):
    other = {"type": "function", "function": {
        "name": "get_time", "parameters": {"type": "object", "properties": {
            "zone": {"type": "string"}}, "required": ["zone"]}}}
    completion = sdk.client().chat.completions.create(
        model=sdk.model, messages=weather_question(), tools=[other, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})

    assert completion.choices[0].finish_reason == "tool_calls"
    assert_weather_call(completion.choices[0].message.tool_calls[0])


def test_async_tool_call_round_trip(sdk):
    async def round_trip():
        async with sdk.async_client() as client:
            messages = weather_question()
            first = await client.chat.completions.create(model=sdk.model, messages=messages,
                                                         tools=[WEATHER_TOOL])
            call = first.choices[0].message.tool_calls[0]
            messages += tool_reply(call.id, call.function.name, call.function.arguments, "windy")
            final = await client.chat.completions.create(model=sdk.model, messages=messages,
                                                         tools=[WEATHER_TOOL])
            return first, final

    first, final = run(round_trip())
    assert first.choices[0].finish_reason == "tool_calls"
    assert_weather_call(first.choices[0].message.tool_calls[0])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "The tool get_weather returned: windy"


def test_async_streamed_tool_call_round_trip(sdk):
    async def round_trip():
        async with sdk.async_client() as client:
            messages = weather_question()
            stream = await client.chat.completions.create(model=sdk.model, messages=messages,
                                                          tools=[WEATHER_TOOL], stream=True)
            first = [chunk async for chunk in stream]
            call = reassemble_tool_calls(first)[0]
            messages += tool_reply(call["id"], call["name"], call["arguments"], "foggy")
            stream = await client.chat.completions.create(model=sdk.model, messages=messages,
                                                          tools=[WEATHER_TOOL], stream=True)
            return first, call, [chunk async for chunk in stream]

    first, call, final = run(round_trip())
    assert first[-1].choices[0].finish_reason == "tool_calls"
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"location": "Paris"}
    assert final[-1].choices[0].finish_reason == "stop"
    assert streamed_text(final) == "The tool get_weather returned: foggy"


# --- multimodal input --------------------------------------------------------------------

def test_images_by_https_url_and_inline_base64_are_accepted(sdk):
    url = "https://example.com/image.jpg"
    content = [
        {"type": "text", "text": "What is in these pictures?"},
        {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1X1}", "detail": "high"}},
    ]
    client = sdk.client()
    completion = client.chat.completions.create(
        model=sdk.model, messages=[{"role": "user", "content": content}])

    text = completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert text.startswith("Simulated reply to: What is in these pictures?")
    assert "2 image(s)" in text
    assert url in text
    assert "an inline base64 image" in text
    assert_usage_adds_up(completion.usage)
    # Images cost prompt tokens: the same question without them is cheaper.
    text_only = client.chat.completions.create(
        model=sdk.model, messages=[{"role": "user", "content": content[:1]}])
    assert completion.usage.prompt_tokens > text_only.usage.prompt_tokens

    with client.chat.completions.create(model=sdk.model, stream=True,
                                        messages=[{"role": "user", "content": content}]) as stream:
        assert streamed_text(list(stream)) == text


# --- model list --------------------------------------------------------------------------

def test_model_list_shows_only_the_models_a_limited_token_may_use(sdk):
    listed = sdk.client(sdk.limited_key).models.list()
    ids = [m.id for m in listed]

    assert sorted(ids) == sorted(sdk.limited_models)
    assert all(m.object == "model" for m in listed.data)
    assert sdk.model not in ids


def test_model_list_for_an_unlimited_token_shows_every_model(sdk):
    ids = [m.id for m in sdk.client().models.list()]

    # This module's gateway has only the one simulator channel.
    assert sorted(ids) == sorted([sdk.model, *sdk.other_models])


def test_model_retrieve_finds_allowed_models_and_hides_the_rest(sdk):
    client = sdk.client(sdk.limited_key)
    allowed = sdk.limited_models[0]

    model = client.models.retrieve(allowed)
    assert model.id == allowed and model.object == "model"

    with pytest.raises(NotFoundError):
        client.models.retrieve(sdk.model)


def test_async_model_list_respects_the_token(sdk):
    async def list_ids(key):
        async with sdk.async_client(key) as client:
            return [m.id async for m in client.models.list()]

    assert sorted(run(list_ids(sdk.limited_key))) == sorted(sdk.limited_models)
    assert sorted(run(list_ids(sdk.all_key))) == sorted([sdk.model, *sdk.other_models])


# --- errors the SDK raises ---------------------------------------------------------------

def test_sdk_raises_its_own_error_types_for_refused_requests(sdk):
    messages = [{"role": "user", "content": "Hi"}]

    with pytest.raises(PermissionDeniedError) as refused:
        sdk.client(sdk.limited_key).chat.completions.create(model=sdk.model, messages=messages)
    assert refused.value.status_code == 403
    assert sdk.model in refused.value.message

    with pytest.raises(PermissionDeniedError):
        sdk.client(sdk.limited_key).chat.completions.create(model=sdk.model, messages=messages, stream=True)

    with pytest.raises(AuthenticationError) as unknown:
        sdk.client("sk-not-a-real-token").chat.completions.create(model=sdk.model, messages=messages)
    assert unknown.value.status_code == 401
