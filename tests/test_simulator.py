"""server/providers/simulator: deterministic chat completions, whole and streamed."""
from __future__ import annotations

import copy

import orjson
import pytest

from server.codec.json_proto import codec_for
from server.providers.simulator import PROVIDER
from server.providers.simulator import tokens
from server.providers.simulator.chat import FINGERPRINT, SimulatorChat
from server.store.channels import Channel
from st_ai.v1 import chat_pb2

CHANNEL = Channel(id=1, name="sim", type="simulator", base_url="", key="", models=("sim-model",))
SIM = SimulatorChat(None)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
        "ratio": {"type": "number"},
        "hourly": {"type": "boolean"},
        "fields": {"type": "array", "items": {"type": "string"}},
        "options": {"type": "object"},
        "note": {"type": "string"}},
        "required": ["city", "unit", "days", "ratio", "hourly", "fields", "options"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}
JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
              "object": dict}


def chat(text: str = "Hello there, simulator!", **extra) -> dict:
    return {"model": "sim-model", "messages": [{"role": "system", "content": "Be brief."},
                                               {"role": "user", "content": text}], **extra}


async def complete(body: dict) -> dict:
    return await SIM.complete(CHANNEL, copy.deepcopy(body), None)


async def stream(body: dict) -> list[dict]:
    return [chunk async for chunk in SIM.stream(CHANNEL, copy.deepcopy(body), None)]


def content_of(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def finish_of(chunks: list[dict]) -> str | None:
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(reasons) == 1, reasons
    return reasons[0]


def test_provider_spec_is_labelled_simulator():
    assert PROVIDER.type == "simulator"
    assert PROVIDER.label.startswith("SIMULATOR")
    assert PROVIDER.chat is SimulatorChat


# -- determinism ------------------------------------------------------------------------------

async def test_same_request_gives_the_same_content_and_id():
    first, second = await complete(chat()), await complete(chat())
    assert first["id"] == second["id"] and first["id"].startswith("chatcmpl-")
    assert first["choices"] == second["choices"]
    assert first["usage"] == second["usage"]
    assert first["system_fingerprint"] == FINGERPRINT


async def test_key_order_does_not_change_the_id():
    body = chat(temperature=0.5, seed=7)
    reordered = dict(reversed(list(body.items())))
    assert (await complete(body))["id"] == (await complete(reordered))["id"]


async def test_different_requests_give_different_ids():
    assert (await complete(chat("a")))["id"] != (await complete(chat("b")))["id"]
    assert (await complete(chat("a")))["id"] != (await complete(chat("a", temperature=1)))["id"]


async def test_stream_is_deterministic_too():
    first, second = await stream(chat()), await stream(chat())
    strip = [[{k: v for k, v in c.items() if k != "created"} for c in chunks] for chunks in (first, second)]
    assert strip[0] == strip[1]
    assert len({c["id"] for c in first}) == 1


async def test_reply_echoes_the_last_user_message():
    answer = await complete(chat("Hi"))
    message = answer["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "Simulated reply to: Hi", "refusal": None}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["model"] == "sim-model" and answer["object"] == "chat.completion"


async def test_images_are_mentioned_and_counted():
    body = {"model": "sim-model", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}
    answer = await complete(body)
    content = answer["choices"][0]["message"]["content"]
    assert "2 image(s)" in content and "https://example.com/cat.png" in content and "base64" in content
    assert answer["usage"]["prompt_tokens"] >= 2 * tokens.PER_IMAGE


# -- token counts -----------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    chat(), chat("x" * 10 + " words, and punctuation!"), chat(max_tokens=3),
    chat(tools=[WEATHER]),
    {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "see"},
                                                            {"type": "image_url", "image_url": {"url": "u"}}]}]},
], ids=["plain", "punctuation", "truncated", "tool-call", "image"])
async def test_token_counts_are_consistent(body):
    answer = await complete(body)
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] == tokens.prompt_tokens(body["messages"])
    message = answer["choices"][0]["message"]
    calls = message.get("tool_calls") or []
    expected = tokens.count(message["content"] or "") + sum(
        tokens.count(c["function"]["name"]) + tokens.count(c["function"]["arguments"]) for c in calls)
    assert usage["completion_tokens"] == expected > 0

    chunks = await stream({**body, "stream": True, "stream_options": {"include_usage": True}})
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
    assert all("usage" not in c for c in chunks[:-1])


def test_token_counting_rules():
    assert tokens.count("Hello, world!") == 4
    assert tokens.count("") == 0
    messages = [{"role": "user", "content": "Hi"}]
    assert tokens.prompt_tokens(messages) == tokens.PER_REPLY + tokens.PER_MESSAGE + 1 + 1


async def test_longer_prompts_cost_more():
    short, long = await complete(chat("Hi")), await complete(chat("Hi " * 50))
    assert long["usage"]["prompt_tokens"] == short["usage"]["prompt_tokens"] + 49


async def test_no_usage_chunk_unless_asked():
    chunks = await stream(chat(stream=True))
    assert all(c["choices"] for c in chunks) and all("usage" not in c for c in chunks)


# -- tool calls -------------------------------------------------------------------------------

def arguments_satisfy(schema: dict, arguments: dict) -> None:
    for name in schema["required"]:
        assert name in arguments, name
        prop = schema["properties"][name]
        value = arguments[name]
        assert isinstance(value, JSON_TYPES[prop["type"]]), (name, value)
        if prop["type"] in ("integer", "number"):
            assert not isinstance(value, bool)
        if "enum" in prop:
            assert value in prop["enum"]
    assert set(arguments) <= set(schema["properties"])


async def test_tool_call_arguments_satisfy_the_required_params():
    answer = await complete(chat("What's the weather in Paris?", tools=[WEATHER]))
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    arguments = orjson.loads(call["function"]["arguments"])
    arguments_satisfy(WEATHER["function"]["parameters"], arguments)
    assert arguments["city"] == "Paris"


async def test_tool_call_without_required_fills_every_property():
    tool = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}}}}
    answer = await complete(chat("go", tools=[tool]))
    arguments = orjson.loads(answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    arguments_satisfy({**tool["function"]["parameters"], "required": ["a", "b"]}, arguments)


async def test_named_tool_choice_picks_that_tool():
    body = chat("Time in Tokyo?", tools=[WEATHER, TIME],
                tool_choice={"type": "function", "function": {"name": "get_time"}})
    call = (await complete(body))["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_time"
    arguments_satisfy(TIME["function"]["parameters"], orjson.loads(call["function"]["arguments"]))


async def test_tool_choice_none_answers_in_text():
    answer = await complete(chat("Hi", tools=[WEATHER], tool_choice="none"))
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in answer["choices"][0]["message"]


async def test_tool_result_is_answered_in_text():
    body = {"model": "sim-model", "tools": [WEATHER], "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]}
    answer = await complete(body)
    assert answer["choices"][0]["message"]["content"] == "The tool get_weather returned: 18C"
    assert answer["choices"][0]["finish_reason"] == "stop"


async def test_streamed_tool_call_arguments_concatenate_to_the_whole_call():
    body = chat("What's the weather in Paris?", tools=[WEATHER])
    whole = (await complete(body))["choices"][0]["message"]["tool_calls"][0]
    chunks = await stream({**body, "stream": True})
    first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["index"] == 0 and first["function"]["name"] == "get_weather"
    assert first["id"] == "call_" + chunks[0]["id"][-24:]  # as in the whole answer
    assert whole["id"].startswith("call_")
    arguments = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                        for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))
    assert arguments == whole["function"]["arguments"]
    assert finish_of(chunks) == "tool_calls"


# -- max_tokens -------------------------------------------------------------------------------

LONG = "Tell me everything about the history of the Roman Empire, from its founding to its fall."


@pytest.mark.parametrize("limit_key", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("limit", [1, 3, 5])
async def test_max_tokens_truncates_with_finish_reason_length(limit_key, limit):
    full = (await complete(chat(LONG)))["choices"][0]["message"]["content"]
    answer = await complete(chat(LONG, **{limit_key: limit}))
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "length"
    content = choice["message"]["content"]
    assert full.startswith(content) and content != full and content
    assert answer["usage"]["completion_tokens"] == tokens.count(content) <= limit

    chunks = await stream(chat(LONG, stream=True, **{limit_key: limit}))
    assert content_of(chunks) == content
    assert finish_of(chunks) == "length"


async def test_max_tokens_large_enough_does_not_truncate():
    full = await complete(chat(LONG))
    needed = full["usage"]["completion_tokens"]
    exact = await complete(chat(LONG, max_tokens=needed))
    assert exact["choices"][0]["finish_reason"] == "stop"
    assert exact["choices"][0]["message"]["content"] == full["choices"][0]["message"]["content"]
    cut = await complete(chat(LONG, max_tokens=needed - 1))
    assert cut["choices"][0]["finish_reason"] == "length"


# -- streaming --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["Hi", LONG, "  spaced   out\ttext\n\nwith lines  ", "naïve café — 東京!",
                                  "a,b;c...d"])
async def test_streamed_deltas_concatenate_to_the_whole_answer(text):
    whole = (await complete(chat(text)))["choices"][0]["message"]["content"]
    chunks = await stream(chat(text, stream=True))
    assert content_of(chunks) == whole
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert finish_of(chunks) == "stop"
    assert chunks[-1]["choices"][0]["delta"] == {}
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk" and chunk["model"] == "sim-model"


def test_pieces_cover_the_text_exactly():
    for text in ["", " ", "Hello, world!", "  a  b  ", "x\n\ny", "東京 is big."]:
        assert "".join(tokens.pieces(text)) == text


async def test_n_gives_n_identical_choices():
    answer = await complete(chat(n=3))
    assert [c["index"] for c in answer["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in answer["choices"]}) == 1


# -- shapes survive the gateway's codec --------------------------------------------------------

async def test_answers_and_chunks_fit_the_protobuf_types():
    completion = codec_for(chat_pb2.ChatCompletion)
    chunk_codec = codec_for(chat_pb2.ChatCompletionChunk)
    for body in (chat(), chat(tools=[WEATHER])):
        answer = await complete(body)
        message = completion.to_message(answer)
        # nothing typed fell back to extra_json: only nulls and unknown keys are there
        assert set(orjson.loads(message.choices[0].extra_json or "{}")) <= {"logprobs"}
        assert completion.to_dict(message) == answer
        for chunk in await stream({**body, "stream": True, "stream_options": {"include_usage": True}}):
            assert chunk_codec.to_dict(chunk_codec.to_message(chunk)) == chunk
