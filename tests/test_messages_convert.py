"""The Messages API <-> chat conversions (server/apis/messages/), without any server: every
Message and stream event is checked by the official `anthropic` SDK's own types, and a
translated stream is accumulated by the SDK's own accumulator into the same Message as the
plain translation."""
from __future__ import annotations

import base64

import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse

from server.apis.messages.answer import message
from server.apis.messages.count import count_tokens
from server.apis.messages.errors import error_body, error_event, error_response
from server.apis.messages.request import chat_request, reasoning_effort
from server.apis.messages.stream import Translator
from server.errors import GatewayError
from server.providers.anthropic.answer import completion as anthropic_completion
from server.providers.anthropic.request import BUDGETS, messages_request
from server.providers.anthropic.models import rules
from server.providers.anthropic.stream import Translator as AnthropicChunks

EVENTS = pydantic.TypeAdapter(RawMessageStreamEvent)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


def body(**extra) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 256,
            "messages": [{"role": "user", "content": "Hello"}], **extra}


def rejected(request: dict, call=chat_request) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        call(request)
    assert caught.value.http_status == 400
    return caught.value


# -- requests ----------------------------------------------------------------------------------

def test_a_plain_request_becomes_a_chat_request_with_its_limits_and_sampling():
    chat = chat_request(body(system="Be brief.", stop_sequences=["END"], temperature=0.3, top_p=0.9,
                             top_k=40, metadata={"user_id": "u-1"}))
    assert chat == {"model": "claude-sonnet-4-5", "max_tokens": 256, "stop": ["END"], "temperature": 0.3,
                    "top_p": 0.9, "user": "u-1",
                    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]}


def test_system_text_blocks_become_one_system_message_of_text_parts():
    chat = chat_request(body(system=[{"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}},
                                     {"type": "text", "text": "Two."}]))
    assert chat["messages"][0] == {"role": "system", "content": [{"type": "text", "text": "One."},
                                                                 {"type": "text", "text": "Two."}]}


def test_a_missing_max_tokens_is_a_400_in_anthropics_words_and_shape():
    error = rejected({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert error.param == "max_tokens" and "Field required" in error.message
    status, shaped = error_response(error)
    assert status == 400 and ErrorResponse.model_validate(shaped).error.type == "invalid_request_error"


@pytest.mark.parametrize("bad", [[], "hi", None, [{"role": "system", "content": "x"}], [{"role": "user"}]])
def test_malformed_messages_are_400s_naming_the_field(bad):
    error = rejected({"model": "m", "max_tokens": 5, "messages": bad})
    assert error.param.startswith("messages")


@pytest.mark.parametrize("value", [0, -1, 1.5, "100", True])
def test_max_tokens_must_be_a_positive_integer(value):
    assert rejected(body(max_tokens=value)).param == "max_tokens"


def test_whole_numbers_that_came_over_grpc_as_doubles_are_integers():
    chat = chat_request(body(max_tokens=256.0, thinking={"type": "enabled", "budget_tokens": 8192.0}))
    assert chat["max_tokens"] == 256 and isinstance(chat["max_tokens"], int)
    assert chat["reasoning_effort"] == "medium"


def test_mcp_servers_are_a_400():
    assert rejected(body(mcp_servers=[{"type": "url", "url": "https://mcp.example.com", "name": "x"}])).param \
        == "mcp_servers"


def test_a_streamed_request_asks_chat_for_its_usage():
    chat = chat_request(body(stream=True))
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


def test_images_by_base64_and_by_url_become_image_url_parts():
    chat = chat_request(body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What are these?"}]}]))
    assert chat["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What are these?"}]}]


@pytest.mark.parametrize("source", [{"type": "file", "file_id": "f"}, {"type": "url", "url": "ftp://x/y.png"},
                                    {"type": "base64", "data": PNG}])
def test_an_image_source_chat_cannot_carry_is_a_400(source):
    error = rejected(body(messages=[{"role": "user", "content": [{"type": "image", "source": source}]}]))
    assert error.param == "messages[0].content[0].source"


def test_a_plain_text_document_is_text_and_a_pdf_is_a_400():
    chat = chat_request(body(messages=[{"role": "user", "content": [
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "a b"}}]}]))
    assert chat["messages"][0]["content"] == [{"type": "text", "text": "Notes\n\na b"}]
    error = rejected(body(messages=[{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}}]}]))
    assert error.param == "messages[0].content[0].source" and "PDF" in error.message


def test_a_tool_round_trip_becomes_tool_calls_and_tool_messages_in_chats_order():
    chat = chat_request(body(messages=[
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Two cities.", "signature": "sig-1"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
             "content": [{"type": "text", "text": "station offline"},
                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
            {"type": "text", "text": "Summarize."}]}]))
    assert chat["messages"][1:] == [
        {"role": "assistant", "content": "Checking.",
         "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
                        {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}],
         "thinking_blocks": [{"type": "thinking", "thinking": "Two cities.", "signature": "sig-1"}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: station offline"},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "text", "text": "Summarize."}]}]


def test_thinking_blocks_sent_back_reach_an_anthropic_upstream_with_their_signatures():
    thinking = [{"type": "thinking", "thinking": "Hmm.", "signature": "sig-9"},
                {"type": "redacted_thinking", "data": "opaque"}]
    chat = chat_request(body(thinking={"type": "enabled", "budget_tokens": 4000}, messages=[
        {"role": "user", "content": "Use the tool."},
        {"role": "assistant", "content": [*thinking, {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]}]))
    upstream = messages_request(chat, rules("claude-sonnet-4-5", "2023-06-01"))
    assert upstream["messages"][1]["content"][:2] == thinking


def test_a_messages_request_through_chat_reaches_an_anthropic_upstream_as_the_client_sent_it():
    original = {
        "model": "claude-sonnet-4-5", "max_tokens": 4096, "system": [{"type": "text", "text": "Be brief."}],
        "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
        "tools": [{"name": "weather", "description": "Weather now",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image", "source": {
                "type": "base64", "media_type": "image/png", "data": PNG}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Calling."}, {
                "type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                                         {"type": "text", "text": "And tomorrow?"}]}]}
    assert messages_request(chat_request(original), rules("claude-sonnet-4-5", "2023-06-01")) == original


def test_unsigned_thinking_from_another_upstream_is_not_sent_back():
    chat = chat_request(body(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "from elsewhere", "signature": ""}, {"type": "text", "text": "Hi!"}]}]))
    assert chat["messages"][1] == {"role": "assistant", "content": "Hi!"}


@pytest.mark.parametrize("block", [{"type": "server_tool_use", "id": "x", "name": "web_search", "input": {}},
                                   {"type": "thinking", "thinking": "no signature"}])
def test_assistant_blocks_chat_cannot_carry_are_400s(block):
    error = rejected(body(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": [block]}]))
    assert error.param == "messages[1].content[0]"


def test_tools_and_each_tool_choice_become_chats():
    tool = {"name": "weather", "description": "Weather now", "input_schema": {"type": "object", "properties": {
        "city": {"type": "string"}}, "required": ["city"]}}
    expected = {"type": "function", "function": {"name": "weather", "description": "Weather now",
                                                 "parameters": tool["input_schema"]}}
    cases = {"auto": "auto", "any": "required", "none": "none"}
    for kind, chat_choice in cases.items():
        chat = chat_request(body(tools=[tool], tool_choice={"type": kind}))
        assert chat["tools"] == [expected] and chat["tool_choice"] == chat_choice
        assert "parallel_tool_calls" not in chat
    chat = chat_request(body(tools=[tool], tool_choice={"type": "tool", "name": "weather",
                                                        "disable_parallel_tool_use": True}))
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert chat["parallel_tool_calls"] is False


def test_a_server_tool_is_a_400_naming_it():
    error = rejected(body(tools=[{"type": "web_search_20250305", "name": "web_search"}]))
    assert error.param == "tools[0].type" and "web_search_20250305" in error.message


@pytest.mark.parametrize("budget, effort", [(1024, "low"), (4000, "low"), (BUDGETS["medium"], "medium"),
                                            (12000, "medium"), (BUDGETS["high"], "high"), (64000, "high")])
def test_a_thinking_budget_becomes_the_effort_of_its_band(budget, effort):
    assert chat_request(body(thinking={"type": "enabled", "budget_tokens": budget}))["reasoning_effort"] == effort


def test_each_effort_comes_back_as_the_budget_the_anthropic_channel_sends_for_it():
    for effort in ("low", "medium", "high"):
        assert reasoning_effort({"type": "enabled", "budget_tokens": BUDGETS[effort]}) == effort


def test_adaptive_thinking_takes_its_effort_and_disabled_thinking_none():
    assert reasoning_effort({"type": "adaptive"}, {"effort": "max"}) == "max"
    assert reasoning_effort({"type": "adaptive"}) == "high"
    assert "reasoning_effort" not in chat_request(body(thinking={"type": "disabled"}))
    assert rejected(body(thinking={"type": "enabled"})).param == "thinking.budget_tokens"
    assert "thinking" not in chat_request(body(thinking={"type": "enabled", "budget_tokens": 2048}))


# -- answers -----------------------------------------------------------------------------------

def chat_answer(reply: dict, finish: str, **choice) -> dict:
    return {"id": "chatcmpl-42", "object": "chat.completion", "created": 1, "model": "upstream-model",
            "choices": [{"index": 0, "message": {"role": "assistant", **reply}, "finish_reason": finish, **choice}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                      "prompt_tokens_details": {"cached_tokens": 80, "cache_write_tokens": 25}}}


def test_a_text_answer_is_a_message_the_sdk_reads():
    shaped = message(chat_answer({"content": "Hi there."}, "stop"), "claude-sonnet-4-5")
    parsed = Message.model_validate(shaped)
    assert parsed.id.startswith("msg_") and parsed.model == "claude-sonnet-4-5"
    assert [b.type for b in parsed.content] == ["text"] and parsed.content[0].text == "Hi there."
    assert (parsed.stop_reason, parsed.stop_sequence) == ("end_turn", None)
    assert parsed.usage.input_tokens == 15  # 120 prompt tokens minus 80 read from and 25 written to the cache
    assert (parsed.usage.output_tokens, parsed.usage.cache_read_input_tokens,
            parsed.usage.cache_creation_input_tokens) == (30, 80, 25)


@pytest.mark.parametrize("finish, stop_reason", [("stop", "end_turn"), ("length", "max_tokens"),
                                                 ("tool_calls", "tool_use"), ("content_filter", "refusal")])
def test_each_finish_reason_is_its_stop_reason(finish, stop_reason):
    assert Message.model_validate(message(chat_answer({"content": "x"}, finish))).stop_reason == stop_reason


def test_a_matched_stop_string_reported_by_chat_is_the_stop_sequence():
    parsed = Message.model_validate(message(chat_answer({"content": "1, 2"}, "stop", stop_reason=", 3")))
    assert (parsed.stop_reason, parsed.stop_sequence) == ("stop_sequence", ", 3")


def test_thinking_text_and_tool_calls_become_blocks_in_anthropics_order():
    reply = {"content": "Let me look.", "reasoning_content": "The user wants weather.",
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]}
    parsed = Message.model_validate(message(chat_answer(reply, "tool_calls")))
    assert [b.type for b in parsed.content] == ["thinking", "text", "tool_use"]
    assert parsed.content[0].thinking == "The user wants weather." and parsed.content[0].signature == ""
    assert (parsed.content[2].id, parsed.content[2].name, parsed.content[2].input) == ("call_1", "weather",
                                                                                       {"city": "Paris"})


def test_signed_thinking_blocks_keep_their_signatures():
    blocks = [{"type": "thinking", "thinking": "A.", "signature": "sig-a"}, {"type": "redacted_thinking", "data": "zz"}]
    parsed = Message.model_validate(message(chat_answer({"content": "B.", "reasoning_content": "A.",
                                                         "thinking_blocks": blocks}, "stop")))
    assert [b.model_dump(exclude_none=True) for b in parsed.content[:2]] == blocks


@pytest.mark.parametrize("raw", ['{"city": "Par', '["a list"]', "42"])
def test_tool_arguments_that_are_not_an_object_are_an_empty_input_and_kept_as_text(raw):
    reply = {"content": None, "tool_calls": [{"id": "call_1", "type": "function",
                                              "function": {"name": "weather", "arguments": raw}}]}
    parsed = Message.model_validate(message(chat_answer(reply, "tool_calls")))
    assert [b.type for b in parsed.content] == ["text", "tool_use"]
    assert raw in parsed.content[0].text and parsed.content[1].input == {}


def test_an_anthropic_message_through_chat_and_back_is_the_same_message():
    original = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [{"type": "thinking", "thinking": "Plan.", "signature": "sig"},
                            {"type": "text", "text": "Calling."},
                            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}}],
                "stop_reason": "tool_use", "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3,
                          "cache_creation_input_tokens": 2}}
    assert message(anthropic_completion(original, 1), "claude-sonnet-4-5") == original


# -- streams -----------------------------------------------------------------------------------

def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-42", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model",
            "choices": choices, **extra}


USAGE = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
         "prompt_tokens_details": {"cached_tokens": 80, "cache_write_tokens": 25}}


def translate(chunks: list[dict], **kwargs) -> list[tuple[str, dict]]:
    translator = Translator("claude-sonnet-4-5", **kwargs)
    events = translator.start("chatcmpl-42")
    for piece in chunks:
        events += translator.feed(piece)
    return events + translator.finish()


def validated(events: list[tuple[str, dict]]) -> list:
    parsed = []
    for name, data in events:
        assert name == data["type"]
        parsed.append(EVENTS.validate_python(data))
    return parsed


def accumulated(events: list[tuple[str, dict]]) -> dict:
    snapshot, buffers = None, {}
    for event in validated(events):
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    return snapshot.model_dump(exclude_none=True)


TOOL_CHUNKS = [
    chunk({"role": "assistant", "reasoning_content": "The user "}),
    chunk({"reasoning_content": "wants weather."}),
    chunk({"content": "Let me "}),
    chunk({"content": "look."}),
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                           "function": {"name": "weather", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                           "function": {"name": "time", "arguments": "{}"}}]}),
    chunk({}, "tool_calls"),
    chunk(usage=USAGE),
]
TOOL_ANSWER = chat_answer({"content": "Let me look.", "reasoning_content": "The user wants weather.",
                           "tool_calls": [{"id": "call_1", "type": "function",
                                           "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
                                          {"id": "call_2", "type": "function",
                                           "function": {"name": "time", "arguments": "{}"}}]}, "tool_calls")


def test_a_stream_follows_anthropics_event_sequence_with_indexed_blocks():
    events = translate(TOOL_CHUNKS)
    validated(events)
    assert [(name, data.get("index"), (data.get("delta") or data.get("content_block") or {}).get("type"))
            for name, data in events] == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"), ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"), ("content_block_delta", 1, "text_delta"),
        ("content_block_delta", 1, "text_delta"), ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"), ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"), ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"), ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None), ("message_stop", None, None)]


def test_message_start_carries_the_estimate_and_message_delta_the_real_usage():
    events = translate([chunk({"content": "Hi"}, "stop"), chunk(usage=USAGE)], input_tokens=140)
    assert events[0][1]["message"]["usage"] == {"input_tokens": 140, "output_tokens": 0}
    assert events[-2][1]["usage"] == {"input_tokens": 15, "output_tokens": 30, "cache_read_input_tokens": 80,
                                      "cache_creation_input_tokens": 25}
    assert events[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


@pytest.mark.parametrize("chunks, answer", [
    (TOOL_CHUNKS, TOOL_ANSWER),
    ([chunk({"role": "assistant", "content": ""}), chunk({"content": "1, 2"}),
      chunk({}, "stop", ), chunk(usage=USAGE)], chat_answer({"content": "1, 2"}, "stop")),
    ([chunk({"content": "cut"}), chunk({}, "length"), chunk(usage=USAGE)], chat_answer({"content": "cut"}, "length")),
])
def test_the_sdks_accumulator_builds_the_same_message_as_the_plain_translation(chunks, answer):
    streamed = accumulated(translate(chunks))
    plain = Message.model_validate(message(answer, "claude-sonnet-4-5")).model_dump(exclude_none=True)
    assert {**streamed, "id": plain["id"]} == plain
    assert streamed["id"].startswith("msg_")


def test_an_anthropic_upstreams_signed_thinking_streams_with_its_signature():
    upstream = [
        {"type": "message_start", "message": {"id": "msg_up", "type": "message", "role": "assistant",
                                              "model": "claude-sonnet-4-5", "content": [], "stop_reason": None,
                                              "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Plan."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig-7"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "zz"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Done."}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 12}},
        {"type": "message_stop"},
    ]
    chunks = AnthropicChunks(created=1, include_usage=True)
    translated = [piece for event in upstream for piece in chunks.feed(event)]
    streamed = accumulated(translate(translated))
    assert streamed["content"] == [{"type": "thinking", "thinking": "Plan.", "signature": "sig-7"},
                                   {"type": "redacted_thinking", "data": "zz"},
                                   {"type": "text", "text": "Done."}]
    assert streamed["usage"]["input_tokens"] == 9 and streamed["usage"]["output_tokens"] == 12


def test_a_stream_without_a_finish_reason_still_ends_properly():
    events = translate([chunk({"content": "partial"})])
    validated(events)
    assert [name for name, _ in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_a_failure_mid_stream_is_an_error_event_the_sdk_reads():
    translator = Translator("claude-sonnet-4-5")
    events = translator.feed(chunk({"content": "Hel"}))
    events += translator.fail(GatewayError(504, "The upstream did not answer in time.", "upstream_timeout"))
    assert events[-1][0] == "error"
    error = ErrorResponse.model_validate(events[-1][1])
    assert (error.error.type, error.error.message) == ("timeout_error", "The upstream did not answer in time.")
    assert translator.finish() == []


# -- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, kind", [(400, "invalid_request_error"), (401, "authentication_error"),
                                          (402, "billing_error"), (403, "permission_error"),
                                          (404, "not_found_error"), (429, "rate_limit_error"),
                                          (500, "api_error"), (502, "api_error"), (503, "overloaded_error"),
                                          (504, "timeout_error"), (529, "overloaded_error"),
                                          (422, "invalid_request_error"), (501, "api_error")])
def test_each_gateway_status_keeps_its_status_with_anthropics_error_type(status, kind):
    status_sent, shaped = error_response(GatewayError(status, "Something went wrong."))
    assert status_sent == status
    parsed = ErrorResponse.model_validate(shaped)
    assert (parsed.type, parsed.error.type, parsed.error.message) == ("error", kind, "Something went wrong.")


@pytest.mark.parametrize("status, kind", [(413, "request_too_large"), (409, "conflict_error")])
def test_statuses_the_sdks_error_union_lacks_still_get_anthropics_documented_type(status, kind):
    assert error_body(GatewayError(status, "No.")) == {"type": "error", "error": {"type": kind, "message": "No."}}
    assert error_event(GatewayError(413, "Too big."))[0] == "error"


# -- count_tokens ------------------------------------------------------------------------------

def test_count_tokens_counts_system_messages_and_tools_and_the_sdk_reads_it():
    plain = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello there"}]}
    counted = count_tokens(plain)
    assert MessageTokensCount.model_validate(counted).input_tokens == counted["input_tokens"] > 0
    with_system = count_tokens({**plain, "system": "You are a careful assistant. " * 20})
    tool = {"name": "weather", "description": "Weather now",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    with_tools = count_tokens({**plain, "tools": [tool]})
    assert with_system["input_tokens"] > counted["input_tokens"] + 100
    assert with_tools["input_tokens"] > counted["input_tokens"]


def test_count_tokens_scales_claude_above_an_openai_models_count():
    text = {"model": "gpt-4o", "messages": [{"role": "user", "content": "A sentence of ordinary English. " * 50}]}
    assert count_tokens({**text, "model": "claude-sonnet-4-5"})["input_tokens"] > count_tokens(text)["input_tokens"]


def test_count_tokens_needs_no_max_tokens_but_rejects_what_messages_rejects():
    assert rejected({"model": "claude-sonnet-4-5"}, count_tokens).param == "messages"
    assert rejected({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "x"}}]}]},
        count_tokens).param == "messages[0].content[0].source"


def test_a_refusal_streams_as_text_like_the_plain_answer():
    chunks = [chunk({"refusal": "I can't help with that."}), chunk({}, "content_filter"), chunk(usage=USAGE)]
    plain = message(chat_answer({"content": None, "refusal": "I can't help with that."}, "content_filter"),
                    "claude-sonnet-4-5")
    streamed = accumulated(translate(chunks))
    assert streamed["content"] == plain["content"] and streamed["stop_reason"] == "refusal"


def test_without_chats_usage_the_stream_keeps_the_estimated_input():
    streamed = accumulated(translate([chunk({"content": "Hi"}, "stop")], input_tokens=37))
    assert (streamed["usage"]["input_tokens"], streamed["usage"]["output_tokens"]) == (37, 0)


def test_chunks_after_the_end_are_ignored():
    translator = Translator("claude-sonnet-4-5")
    events = translator.feed(chunk({"content": "Hi"}, "stop")) + translator.finish()
    assert translator.feed(chunk({"content": "late"})) == [] and translator.finish() == []
    assert [name for name, _ in events][-1] == "message_stop"
