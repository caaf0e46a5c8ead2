"""The Responses API's pure conversions: request bodies into chat requests, chat completions
into `response` objects, chat chunks into the typed stream events. Every answer and event
is checked by the official `openai` SDK's own types, and streams are accumulated by the
SDK's own stream state. No server here (the end-to-end tests run them through st-ai)."""
from __future__ import annotations

import orjson
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from server.apis.responses import answer, carry
from server.apis.responses.history import conversation
from server.apis.responses.request import BUILT_IN_TOOLS, chat_body, read_request
from server.apis.responses.stream import ResponseEvents
from server.errors import GatewayError, upstream_failed
from server.providers.anthropic.stream import Translator

EVENTS = TypeAdapter(ResponseStreamEvent)


def chat_for(body: dict, history: list[dict] | None = None) -> dict:
    request = read_request(body)
    return chat_body(request, [*(history or []), *request.input_items])


# OpenAI's own response objects carry `store`, which the SDK's type does not declare.
UNDECLARED_BY_OPENAI = {Response: {"store"}}


def no_extras(model: BaseModel, where: str = "") -> None:
    """Every field st-ai sent is one the SDK's type declares (pydantic keeps the rest aside)."""
    extra = set(model.model_extra or {}) - UNDECLARED_BY_OPENAI.get(type(model), set())
    assert not extra, f"{where or type(model).__name__} has undeclared fields {extra}"
    for name in type(model).model_fields:
        value = getattr(model, name)
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, BaseModel):
                no_extras(child, f"{where}.{name}")


def valid_response(value: dict) -> Response:
    parsed = Response.model_validate(value)
    no_extras(parsed, "response")
    return parsed


def valid_events(events: list[dict]) -> list:
    parsed = [EVENTS.validate_python(event) for event in events]
    for event in parsed:
        no_extras(event, event.type)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return parsed


def accumulated(events: list[dict]) -> Response:
    """The final response the SDK's `client.responses.stream(...)` helper builds from them."""
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in valid_events(events):
        state.handle_event(event)
    assert state._completed_response is not None
    return state._completed_response


def completion(message: dict, finish_reason: str = "stop", usage: dict | None = None) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def chunk(delta: dict | None = None, finish_reason: str | None = None, usage: dict | None = None) -> dict:
    value: dict = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
    if usage is not None:
        value["usage"] = usage
    return value


def streamed(body: dict, chunks: list[dict]) -> list[dict]:
    events = ResponseEvents(answer.shell(read_request(body), "resp_1", 1700000000))
    out = events.start()
    for piece in chunks:
        out += events.feed(piece)
    return out + events.finish()


def rejected(body: dict) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        chat_for(body)
    assert caught.value.http_status == 400
    return caught.value


WEATHER = {"type": "function", "name": "weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
           "strict": True}


# -- requests -------------------------------------------------------------------------------

def test_a_string_input_with_instructions_becomes_a_system_and_a_user_message():
    body = chat_for({"model": "m", "input": "Hi there", "instructions": "Be brief.", "max_output_tokens": 64,
                     "temperature": 0.5, "top_p": 0.9, "reasoning": {"effort": "low", "summary": "auto"}})
    assert body == {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                               {"role": "user", "content": "Hi there"}],
                    "max_completion_tokens": 64, "temperature": 0.5, "top_p": 0.9, "reasoning_effort": "low"}


def test_message_items_with_text_and_image_parts_keep_their_roles():
    body = chat_for({"model": "m", "input": [
        {"role": "developer", "content": "Answer in French."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Un chat."}]},
        {"role": "system", "content": [{"type": "input_text", "text": "Stay polite."}]},
    ]})
    assert body["messages"] == [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/cat.png",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "Un chat."},
        {"role": "system", "content": "Stay polite."},
    ]


def test_consecutive_function_calls_join_one_assistant_message_and_outputs_become_tool_messages():
    body = chat_for({"model": "m", "tools": [WEATHER], "input": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_a", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_b", "name": "weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "21C"}]},
        {"type": "function_call", "call_id": "call_c", "name": "weather", "arguments": '{"city":"Oslo"}'},
    ]})
    assert body["messages"][1:] == [
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "21C"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_c", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
    ]


def test_function_tools_are_nested_and_tool_choice_names_a_function():
    body = chat_for({"model": "m", "input": "x", "tools": [WEATHER], "parallel_tool_calls": False,
                     "tool_choice": {"type": "function", "name": "weather"}})
    assert body["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "Weather in a city", "parameters": WEATHER["parameters"], "strict": True}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert body["parallel_tool_calls"] is False


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_modes_pass_as_they_are(choice):
    assert chat_for({"model": "m", "input": "x", "tools": [WEATHER], "tool_choice": choice})["tool_choice"] == choice


@pytest.mark.parametrize("fmt, expected", [
    ({"type": "text"}, None),
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_schema", "name": "city", "strict": True, "description": "A city",
      "schema": {"type": "object", "properties": {"name": {"type": "string"}}}},
     {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "description": "A city",
                                             "schema": {"type": "object",
                                                        "properties": {"name": {"type": "string"}}}}}),
])
def test_text_format_becomes_response_format(fmt, expected):
    body = chat_for({"model": "m", "input": "x", "text": {"format": fmt}})
    assert body.get("response_format") == expected


def test_a_stream_asks_the_relay_for_usage_and_the_route_keeps_its_own_fields_aside():
    request = read_request({"model": "m", "input": "x", "stream": True, "store": False,
                            "metadata": {"team": "a"}, "previous_response_id": "resp_0",
                            "prompt_cache_key": "k", "service_tier": "auto", "truncation": "auto"})
    assert (request.stream, request.store, request.metadata, request.previous_response_id) == \
        (True, False, {"team": "a"}, "resp_0")
    body = chat_body(request, request.input_items)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert not {"store", "metadata", "previous_response_id", "prompt_cache_key", "service_tier"} & set(body)
    assert read_request({"model": "m", "input": "x"}).store is True  # OpenAI's default


def test_previous_response_id_sends_the_whole_conversation_without_the_earlier_instructions():
    first = read_request({"model": "m", "input": "Weather in Paris?", "instructions": "Old rules.",
                          "tools": [WEATHER]})
    first_answer = answer.response(completion({"content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}]},
        "tool_calls"), first, "resp_1", 1)
    second = read_request({"model": "m", "previous_response_id": "resp_1", "instructions": "New rules.",
                           "input": [{"type": "function_call_output", "call_id": "call_1", "output": "18C"}]})
    items = conversation(first.input_items, first_answer["output"], second.input_items)
    assert chat_body(second, items)["messages"] == [
        {"role": "system", "content": "New rules."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]


def test_an_error_in_the_new_input_names_its_place_in_the_input_not_in_the_history():
    request = read_request({"model": "m", "previous_response_id": "resp_1", "input": [
        {"role": "user", "content": "ok"}, {"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]})
    history = [{"type": "message", "role": "user", "content": "Hi"},
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]}]
    with pytest.raises(GatewayError) as caught:
        chat_body(request, conversation(history, [], request.input_items))
    assert caught.value.param == "input[1].content[0]"


@pytest.mark.parametrize("tool", sorted(BUILT_IN_TOOLS))
def test_built_in_tools_are_a_400_naming_the_tool(tool):
    error = rejected({"model": "m", "input": "x", "tools": [WEATHER, {"type": tool}]})
    assert error.param == "tools[1].type" and f"'{tool}'" in error.message


@pytest.mark.parametrize("body, param", [
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": 5}, "input"),
    ({"model": "m", "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": "m", "input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"model": "m", "input": "x", "background": True}, "background"),
    ({"model": "m", "input": "x", "include": ["file_search_call.results"]}, "include"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
     "input[0].content[0].file_id"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
     "input[0].content[0]"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ({"model": "m", "input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
    ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0]"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
    ({"model": "m", "input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
    ({"model": "m", "input": "x", "max_output_tokens": 1.5}, "max_output_tokens"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": "x", "temperature": 2.5}, "temperature"),
    ({"model": "m", "input": "x", "top_p": -0.1}, "top_p"),
    ({"model": "m", "input": "x", "metadata": {"k": 1}}, "metadata"),
    ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
])
def test_what_chat_cannot_carry_is_a_400_naming_the_field(body, param):
    assert rejected(body).param == param


def test_a_request_chat_cannot_carry_is_still_read_for_a_channel_that_speaks_the_responses_api():
    request = read_request({"model": "m", "input": "x", "tools": [{"type": "web_search"}], "store": False,
                            "include": ["web_search_call.action.sources"], "previous_response_id": "resp_0"})
    assert (request.store, request.previous_response_id) == (False, "resp_0")
    with pytest.raises(GatewayError) as caught:
        chat_body(request, request.input_items)
    assert caught.value.http_status == 400 and caught.value.param == "include"


def test_reasoning_items_carry_st_ais_state_back_and_drop_anyone_elses():
    blocks = [{"type": "thinking", "thinking": "Paris first.", "signature": "sig-1"}]
    extra = {"google": {"thought_signature": "gsig"}}
    body = chat_for({"model": "m", "input": [
        {"role": "user", "content": "Weather?"},
        {"type": "reasoning", "id": "rs_x", "summary": [], "encrypted_content": "gAAAA-openai-own"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Paris first."}],
         "encrypted_content": carry.pack(blocks, {})},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": carry.pack([], {"call_1": extra})},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
    ]})
    assert body["messages"][1] == {"role": "assistant", "content": None, "thinking_blocks": blocks, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"},
         "extra_content": extra}]}
    assert len(body["messages"]) == 3


# -- answers --------------------------------------------------------------------------------

def test_a_text_answer_is_a_completed_response_the_sdk_reads():
    request = read_request({"model": "m", "input": "Hi", "instructions": "Be brief.", "metadata": {"a": "b"},
                            "max_output_tokens": 100, "tools": [WEATHER], "text": {"format": {"type": "json_object"}},
                            "reasoning": {"effort": "high"}, "store": False, "previous_response_id": "resp_0"})
    usage = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
             "prompt_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 4},
             "completion_tokens_details": {"reasoning_tokens": 7}}
    parsed = valid_response(answer.response(completion({"content": "{}"}, usage=usage), request, "resp_1", 17, 19))
    assert parsed.id == "resp_1" and parsed.object == "response" and parsed.status == "completed"
    assert parsed.output_text == "{}" and parsed.output[0].id.startswith("msg_")
    assert parsed.output[0].content[0].annotations == []
    assert (parsed.created_at, parsed.completed_at, parsed.model) == (17, 19, "m")
    assert parsed.usage.model_dump() == {
        "input_tokens": 30, "output_tokens": 12, "total_tokens": 42,
        "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 4, "cache_write_tokens_details": None},
        "output_tokens_details": {"reasoning_tokens": 7}}
    assert parsed.instructions == "Be brief." and parsed.metadata == {"a": "b"}
    assert parsed.max_output_tokens == 100 and parsed.store is False and parsed.previous_response_id == "resp_0"
    assert parsed.tools[0].name == "weather" and parsed.tool_choice == "auto"
    assert parsed.text.format.type == "json_object" and parsed.reasoning.effort == "high"
    assert (parsed.temperature, parsed.top_p, parsed.parallel_tool_calls) == (1.0, 1.0, True)


def test_reasoning_and_parallel_tool_calls_become_a_reasoning_item_and_function_call_items():
    message = {"content": None, "reasoning_content": "Two cities.", "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}]}
    parsed = valid_response(answer.response(completion(message, "tool_calls"), read_request(
        {"model": "m", "input": "x", "tools": [WEATHER]}), "resp_1", 1))
    kinds = [(item.type, item.id.split("_")[0]) for item in parsed.output]
    assert kinds == [("reasoning", "rs"), ("function_call", "fc"), ("function_call", "fc")]
    assert parsed.output[0].summary[0].text == "Two cities."
    assert [(c.call_id, c.name, c.arguments, c.status) for c in parsed.output[1:]] == [
        ("call_a", "weather", '{"city":"Paris"}', "completed"), ("call_b", "weather", '{"city":"Rome"}', "completed")]


@pytest.mark.parametrize("finish_reason, reason", [("length", "max_output_tokens"),
                                                   ("content_filter", "content_filter")])
def test_an_answer_cut_short_is_incomplete_with_its_reason(finish_reason, reason):
    parsed = valid_response(answer.response(completion({"content": "Half"}, finish_reason),
                                            read_request({"model": "m", "input": "x"}), "resp_1", 1))
    assert parsed.status == "incomplete" and parsed.incomplete_details.reason == reason
    assert parsed.output[0].status == "incomplete" and parsed.completed_at is None


def test_a_refusal_is_a_refusal_part():
    parsed = valid_response(answer.response(completion({"content": None, "refusal": "I can't."}),
                                            read_request({"model": "m", "input": "x"}), "resp_1", 1))
    assert [part.type for part in parsed.output[0].content] == ["refusal"]


def test_anthropic_thinking_and_gemini_signatures_survive_a_round_trip_through_the_output_items():
    blocks = [{"type": "thinking", "thinking": "Hmm.", "signature": "sig"}, {"type": "redacted_thinking", "data": "x"}]
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"},
            "extra_content": {"google": {"thought_signature": "gsig"}}}
    request = read_request({"model": "m", "input": "Weather?", "tools": [WEATHER]})
    answered = answer.response(completion({"content": None, "reasoning_content": "Hmm.", "thinking_blocks": blocks,
                                           "tool_calls": [call]}, "tool_calls"), request, "resp_1", 1)
    valid_response(answered)
    follow = [{"type": "function_call_output", "call_id": "call_1", "output": "18C"}]
    messages = chat_body(request, conversation(request.input_items, answered["output"], follow))["messages"]
    assert messages[1] == {"role": "assistant", "content": None, "thinking_blocks": blocks, "tool_calls": [call]}


# -- streams --------------------------------------------------------------------------------

TEXT_CHUNKS = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
               chunk({}, "stop"), chunk(usage={"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11})]


def test_a_text_stream_is_the_event_sequence_openai_sends():
    events = streamed({"model": "m", "input": "Hi"}, TEXT_CHUNKS)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    final = accumulated(events)
    assert final.output_text == "Hello" and final.status == "completed"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (9, 2, 11)
    created = events[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["id"] == "resp_1"
    delta = events[4]
    assert (delta["output_index"], delta["content_index"], delta["delta"], delta["logprobs"]) == (0, 0, "Hel", [])
    assert delta["item_id"] == events[2]["item"]["id"]


def test_reasoning_streams_as_summary_events_before_the_message():
    events = streamed({"model": "m", "input": "Hi", "reasoning": {"effort": "low"}}, [
        chunk({"role": "assistant", "reasoning_content": "Think"}), chunk({"reasoning_content": "ing."}),
        chunk({"content": "Done."}), chunk({}, "stop")])
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    final = accumulated(events)
    assert final.output[0].summary[0].text == "Thinking." and final.output[1].content[0].text == "Done."
    assert [e["output_index"] for e in events[2:9]] == [0] * 7
    assert final.usage is None  # the route gives its own count when the upstream gave none


def test_parallel_tool_calls_stream_as_separate_function_call_items():
    events = streamed({"model": "m", "input": "x", "tools": [WEATHER]}, [
        chunk({"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({}, "tool_calls")])
    final = accumulated(events)
    assert [(c.type, c.call_id, c.arguments, c.status) for c in final.output] == [
        ("function_call", "call_a", '{"city":"Paris"}', "completed"),
        ("function_call", "call_b", '{"city":"Rome"}', "completed")]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["output_index"], e["arguments"]) for e in done] == [(0, '{"city":"Paris"}'), (1, '{"city":"Rome"}')]
    assert events[-1]["type"] == "response.completed"


def test_a_stream_cut_by_length_ends_incomplete():
    events = streamed({"model": "m", "input": "x", "max_output_tokens": 2}, [chunk({"content": "Hal"}),
                                                                             chunk({}, "length")])
    valid_events(events)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_failure_mid_stream_is_an_error_event_and_response_failed():
    events = ResponseEvents(answer.shell(read_request({"model": "m", "input": "x"}), "resp_1", 1))
    out = events.start() + events.feed(chunk({"content": "Hal"}))
    out += events.fail(upstream_failed("The upstream stopped answering."))
    parsed = valid_events(out)
    assert [e.type for e in parsed[-2:]] == ["error", "response.failed"]
    assert parsed[-2].message == "The upstream stopped answering." and parsed[-2].code == "upstream_error"
    failed = parsed[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error"
    assert failed.output[0].status == "incomplete" and failed.output[0].content[0].text == "Hal"


def test_an_anthropic_stream_with_thinking_and_a_tool_call_keeps_its_signed_thinking():
    """Chat chunks as the anthropic provider makes them, from Anthropic's own events."""
    upstream = Translator(created=1, include_usage=True)
    anthropic_events = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 12}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Use the tool."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}},
        {"type": "message_stop"},
    ]
    chunks = [piece for event in anthropic_events for piece in upstream.feed(event)]
    request = read_request({"model": "m", "input": "Weather?", "tools": [WEATHER], "reasoning": {"effort": "low"}})
    events = streamed({"model": "m", "input": "Weather?", "tools": [WEATHER], "reasoning": {"effort": "low"}}, chunks)
    final = accumulated(events)
    assert [item.type for item in final.output] == ["reasoning", "function_call"]
    assert final.usage.input_tokens == 12 and final.usage.output_tokens == 20
    output = events[-1]["response"]["output"]
    follow = [{"type": "function_call_output", "call_id": "toolu_1", "output": "18C"}]
    messages = chat_body(request, conversation(request.input_items, output, follow))["messages"]
    assert messages[1]["thinking_blocks"] == [{"type": "thinking", "thinking": "Use the tool.", "signature": "sig"}]
    assert orjson.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


def test_gemini_signatures_that_come_with_streamed_calls_go_back_with_them():
    extra = {"google": {"thought_signature": "gsig"}}
    request = read_request({"model": "m", "input": "x", "tools": [WEATHER]})
    events = streamed({"model": "m", "input": "x", "tools": [WEATHER]}, [
        chunk({"role": "assistant", "reasoning_content": "Call it."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                    "function": {"name": "weather", "arguments": "{}"},
                                                    "extra_content": extra}]}),
        chunk({}, "tool_calls")])
    accumulated(events)
    output = events[-1]["response"]["output"]
    messages = chat_body(request, conversation(request.input_items, output, [
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"}]))["messages"]
    assert messages[1]["tool_calls"][0]["extra_content"] == extra


def test_a_streamed_answer_ends_as_the_same_response_as_the_plain_one():
    body = {"model": "m", "input": "x", "tools": [WEATHER]}
    calls = [{"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]
    usage = {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    plain = answer.response(completion({"content": "Let me check.", "reasoning_content": "Oslo.", "tool_calls": calls},
                                       "tool_calls", usage), read_request(body), "resp_1", 1)
    events = streamed(body, [chunk({"role": "assistant", "reasoning_content": "Oslo."}),
                             chunk({"content": "Let me check."}),
                             chunk({"tool_calls": [{"index": 0, **calls[0]}]}), chunk({}, "tool_calls", usage)])
    final = events[-1]["response"]

    def without_ids(response: dict) -> list[dict]:
        return [{k: v for k, v in item.items() if k != "id"} for item in response["output"]]

    assert without_ids(final) == without_ids(plain)
    assert (final["status"], final["usage"]) == (plain["status"], plain["usage"])


def test_redacted_thinking_with_no_text_still_travels_in_a_reasoning_item_before_the_answer():
    upstream = Translator(created=1, include_usage=False)
    anthropic_events = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "enc"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi."}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ]
    events = streamed({"model": "m", "input": "x"}, [c for e in anthropic_events for c in upstream.feed(e)])
    final = accumulated(events)
    assert [item.type for item in final.output] == ["reasoning", "message"] and final.output[0].summary == []
    assert not any(e["type"].startswith("response.reasoning_summary") for e in events)
    assert carry.unpack(final.output[0].encrypted_content)[0] == [{"type": "redacted_thinking", "data": "enc"}]
