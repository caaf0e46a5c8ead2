"""The Gemini provider's pure translation, without any server: OpenAI chat requests to
Gemini requests, Gemini answers and stream events to OpenAI completions and chunks, JSON
Schema to Gemini's Schema, reasoning effort to thinking config, Google's errors to the
gateway's."""
from __future__ import annotations

import base64
import itertools

import orjson
import pytest

from server.errors import GatewayError
from server.providers.gemini import errors, media, schema, thinking
from server.providers.gemini.request import to_gemini
from server.providers.gemini.response import to_openai, usage
from server.providers.gemini.stream import StreamTranslator
from server.store.channels import Channel

FLASH = "gemini-2.5-flash"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False}}}]


def ids():
    counter = itertools.count(1)
    return lambda: f"call_{next(counter)}"


def channel() -> Channel:
    return Channel(id=1, name="g", type="gemini", base_url="https://generativelanguage.googleapis.com",
                   key="AIzaSySECRET", models=(FLASH,))


# -- requests ---------------------------------------------------------------------------------

def test_system_and_developer_messages_become_the_system_instruction_and_assistant_becomes_model():
    request = to_gemini({"model": FLASH, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Again"},
        {"role": "user", "content": [{"type": "text", "text": "please"}]}]}, FLASH)
    assert request == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]},
                     {"role": "model", "parts": [{"text": "Bonjour"}]},
                     {"role": "user", "parts": [{"text": "Again"}, {"text": "please"}]}]}


def test_a_lone_system_message_becomes_the_users_turn():
    assert to_gemini({"model": FLASH, "messages": [{"role": "system", "content": "Say hi"}]}, FLASH) == {
        "contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}


def test_images_audio_and_files_go_inline_and_image_urls_are_marked_for_fetching():
    request = to_gemini({"model": FLASH, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://images.example/cat.jpg", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": PNG, "format": "wav"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG}", "filename": "a.pdf"}}]}]}, FLASH)
    assert request["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {media.FETCH: "https://images.example/cat.jpg", media.PARAM: "messages[0].content[2].image_url.url"},
        {"inlineData": {"mimeType": "audio/wav", "data": PNG}},
        {"inlineData": {"mimeType": "application/pdf", "data": PNG}}]


@pytest.mark.parametrize("part, param", [
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}, "messages[0].content[0].image_url.url"),
    ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, "messages[0].content[0].image_url.url"),
    ({"type": "input_audio", "input_audio": {"data": PNG, "format": "flac"}}, "messages[0].content[0].input_audio.format"),
    ({"type": "file", "file": {"file_id": "file-123"}}, "messages[0].content[0].file.file_data"),
    ({"type": "video", "video": {}}, "messages[0].content[0].type"),
])
def test_a_part_gemini_cannot_take_is_a_400_naming_it(part, param):
    with pytest.raises(GatewayError) as caught:
        to_gemini({"model": FLASH, "messages": [{"role": "user", "content": [part]}]}, FLASH)
    assert (caught.value.http_status, caught.value.param) == (400, param)


def test_a_tool_round_trip_keeps_signatures_and_names_results_after_their_calls():
    signed = {"google": {"thought_signature": "U0lHTkVE"}}
    request = to_gemini({"model": FLASH, "tools": TOOLS, "tool_choice": "auto", "messages": [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
             "extra_content": signed},
            {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"celsius": 21}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "3 degrees"}]}, FLASH)
    assert request["contents"][1:] == [
        {"role": "model", "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "U0lHTkVE"},
            {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "weather", "response": {"celsius": 21}}},
            {"functionResponse": {"name": "weather", "response": {"output": "3 degrees"}}}]}]
    assert request["tools"] == [{"functionDeclarations": [{"name": "weather", "description": "Weather in a city",
                                                           "parameters": {"type": "OBJECT", "properties": {
                                                               "city": {"type": "STRING"}}, "required": ["city"]}}]}]
    assert request["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


def test_a_gemini_3_call_given_back_without_its_signature_gets_googles_placeholder():
    request = to_gemini({"model": "gemini-3-pro-preview", "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [{"id": "x", "type": "function",
                                              "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "x", "content": "sunny"}]}, "gemini-3-pro-preview")
    assert request["contents"][1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"


def test_a_tool_result_for_no_earlier_call_and_unreadable_arguments_are_400s():
    with pytest.raises(GatewayError) as caught:
        to_gemini({"model": FLASH, "messages": [{"role": "user", "content": "x"},
                                                {"role": "tool", "tool_call_id": "nope", "content": "1"}]}, FLASH)
    assert caught.value.param == "messages[1].tool_call_id"
    with pytest.raises(GatewayError) as caught:
        to_gemini({"model": FLASH, "messages": [{"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}, FLASH)
    assert caught.value.param == "messages[0].tool_calls[0].function.arguments"


@pytest.mark.parametrize("choice, config", [
    ("none", {"mode": "NONE"}), ("auto", {"mode": "AUTO"}), ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "weather"}}, {"mode": "ANY", "allowedFunctionNames": ["weather"]}),
])
def test_tool_choice_becomes_the_function_calling_config(choice, config):
    request = to_gemini({"model": FLASH, "tools": TOOLS, "tool_choice": choice,
                         "messages": [{"role": "user", "content": "x"}]}, FLASH)
    assert request["toolConfig"] == {"functionCallingConfig": config}


def test_generation_config_takes_every_sampling_and_limit_field():
    request = to_gemini({"model": FLASH, "messages": [{"role": "user", "content": "x"}], "temperature": 0.2,
                         "top_p": 0.9, "max_tokens": 100, "max_completion_tokens": 50, "stop": ["END", "STOP"],
                         "n": 2, "seed": 7, "presence_penalty": 0.5, "frequency_penalty": -0.5,
                         "response_format": {"type": "json_object"}}, FLASH)
    assert request["generationConfig"] == {
        "temperature": 0.2, "topP": 0.9, "candidateCount": 2, "seed": 7, "presencePenalty": 0.5,
        "frequencyPenalty": -0.5, "maxOutputTokens": 50, "stopSequences": ["END", "STOP"],
        "responseMimeType": "application/json"}


def test_zero_penalties_are_not_sent():
    request = to_gemini({"model": FLASH, "messages": [{"role": "user", "content": "x"}], "presence_penalty": 0,
                         "frequency_penalty": 0.0, "temperature": 0}, FLASH)
    assert request["generationConfig"] == {"temperature": 0}


def test_a_json_schema_response_format_becomes_a_response_schema():
    request = to_gemini({"model": FLASH, "messages": [{"role": "user", "content": "x"}], "stop": "END",
                         "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": True,
                                             "schema": {"type": "object", "properties": {
                                                 "name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
                                                 "required": ["name", "age"], "additionalProperties": False}}}},
                        FLASH)
    assert request["generationConfig"] == {"stopSequences": ["END"], "responseMimeType": "application/json",
                                           "responseSchema": {"type": "OBJECT", "properties": {
                                               "name": {"type": "STRING"},
                                               "age": {"type": "INTEGER", "nullable": True}},
                                               "required": ["name", "age"]}}


def test_json_schema_is_reduced_to_what_gemini_takes():
    given = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "$defs": {
        "unit": {"type": "string", "enum": ["C", "F"], "description": "scale"}},
        "properties": {
            "unit": {"$ref": "#/$defs/unit"},
            "when": {"type": "string", "format": "date-time", "examples": ["2024-01-01T00:00:00Z"]},
            "email": {"type": "string", "format": "email"},
            "count": {"type": "integer", "minimum": 1, "maximum": 9, "enum": [1, 2]},
            "kind": {"const": "point"},
            "size": {"type": ["string", "null"], "enum": ["S", "M", None]},
            "either": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
            "box": {"allOf": [{"type": "object", "properties": {"w": {"type": "number"}}, "required": ["w"]},
                              {"properties": {"h": {"type": "number"}}, "required": ["h"]}]}},
        "required": ["unit", "missing"], "additionalProperties": False}
    assert schema.reduce(given) == {"type": "OBJECT", "required": ["unit"], "properties": {
        "unit": {"type": "STRING", "enum": ["C", "F"], "format": "enum", "description": "scale"},
        "when": {"type": "STRING", "format": "date-time"},
        "email": {"type": "STRING"},
        "count": {"type": "INTEGER", "minimum": 1, "maximum": 9},
        "kind": {"type": "STRING", "enum": ["point"], "format": "enum"},
        "size": {"type": "STRING", "nullable": True, "enum": ["S", "M"], "format": "enum"},
        "either": {"nullable": True, "anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
        "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 1},
        "box": {"type": "OBJECT", "properties": {"w": {"type": "NUMBER"}, "h": {"type": "NUMBER"}},
                "required": ["w", "h"]}}}


def test_a_recursive_schema_stops_and_a_function_without_parameters_declares_none():
    tree = {"type": "object", "properties": {"child": {"$ref": "#"}}, "$defs": {}}
    assert schema.reduce(tree)["properties"]["child"] == {}
    assert schema.parameters({"type": "object", "properties": {}}) is None
    assert schema.parameters(None) is None


@pytest.mark.parametrize("model, effort, config", [
    ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("gemini-2.5-flash", "medium", {"thinkingBudget": 8192, "includeThoughts": True}),
    ("gemini-2.5-flash", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
    ("gemini-2.5-flash", "none", {"thinkingBudget": 0, "includeThoughts": False}),
    ("gemini-2.5-pro", "none", {"thinkingBudget": 128, "includeThoughts": True}),
    ("gemini-3-pro-preview", "low", {"thinkingLevel": "low", "includeThoughts": True}),
    ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high", "includeThoughts": True}),
    ("gemini-3-pro-preview", "minimal", {"thinkingLevel": "low", "includeThoughts": True}),
    ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "minimal", "includeThoughts": True}),
    ("gemini-3-flash-preview", "medium", {"thinkingLevel": "medium", "includeThoughts": True}),
    ("gemini-2.0-flash", "high", None),
])
def test_reasoning_effort_becomes_the_thinking_config_the_models_generation_takes(model, effort, config):
    assert thinking.thinking_config(effort, model) == config


def test_an_unknown_reasoning_effort_is_a_400():
    with pytest.raises(GatewayError) as caught:
        to_gemini({"model": FLASH, "reasoning_effort": "max", "messages": [{"role": "user", "content": "x"}]}, FLASH)
    assert (caught.value.http_status, caught.value.param) == (400, "reasoning_effort")


# -- answers ----------------------------------------------------------------------------------

def test_an_answer_with_thoughts_and_parallel_calls_becomes_one_message():
    answer = {"responseId": "r1", "candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
        {"text": "Thinking it over.", "thought": True},
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "U0lH"},
        {"functionCall": {"name": "weather", "args": {"city": "Oslo"}, "id": "g-2"}}]}}],
        "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 20,
                          "thoughtsTokenCount": 30, "totalTokenCount": 150}}
    completion = to_openai(answer, FLASH, 1700000000, ids())
    assert completion == {"id": "chatcmpl-r1", "object": "chat.completion", "created": 1700000000, "model": FLASH,
                          "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                              "role": "assistant", "content": None, "reasoning_content": "Thinking it over.",
                              "tool_calls": [
                                  {"id": "call_1", "type": "function", "extra_content": {
                                      "google": {"thought_signature": "U0lH"}},
                                   "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
                                  {"id": "g-2", "type": "function",
                                   "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]}}],
                          "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
                                    "prompt_tokens_details": {"cached_tokens": 60},
                                    "completion_tokens_details": {"reasoning_tokens": 30}}}


@pytest.mark.parametrize("reason, finish", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("OTHER", "stop"),
])
def test_each_finish_reason(reason, finish):
    answer = {"candidates": [{"finishReason": reason, "content": {"parts": [{"text": "x"}]}}]}
    assert to_openai(answer, FLASH, 0)["choices"][0]["finish_reason"] == finish


def test_a_blocked_prompt_is_a_400_content_filter():
    with pytest.raises(GatewayError) as caught:
        to_openai({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}, FLASH, 0)
    assert (caught.value.http_status, caught.value.code) == (400, "content_filter")
    assert "PROHIBITED_CONTENT" in caught.value.message


def test_usage_without_thoughts_or_cache_has_zero_details():
    assert usage({"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}) == {
        "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
        "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}


# -- streams ----------------------------------------------------------------------------------

def events_to_chunks(events: list[dict], include_usage: bool = True) -> list[dict]:
    translator = StreamTranslator("chatcmpl-s", FLASH, 5, include_usage, ids())
    chunks = [chunk for event in events for chunk in translator.event(event)]
    return chunks + translator.end()


def deltas(chunks):
    return [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) if c["choices"] else c["usage"]
            for c in chunks]


def test_a_stream_of_thoughts_text_and_calls_becomes_chunks_with_stable_ids_and_usage_last():
    meta = {"promptTokenCount": 10, "totalTokenCount": 10}
    events = [
        {"candidates": [{"content": {"parts": [{"text": "Hmm.", "thought": True}]}}], "usageMetadata": meta},
        {"candidates": [{"content": {"parts": [{"text": "Checking"}]}}], "usageMetadata": meta},
        {"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "U0lH"}]}}]},
        {"candidates": [{"content": {"parts": [{"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}]},
                         "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 6,
                           "cachedContentTokenCount": 2, "totalTokenCount": 20}}]
    chunks = events_to_chunks(events)
    assert {c["id"] for c in chunks} == {"chatcmpl-s"} and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert deltas(chunks) == [
        ({"role": "assistant", "reasoning_content": "Hmm."}, None),
        ({"content": "Checking"}, None),
        ({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "extra_content": {
            "google": {"thought_signature": "U0lH"}}, "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}]},
         None),
        ({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                          "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]}, None),
        ({}, "tool_calls"),
        {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20, "prompt_tokens_details": {
            "cached_tokens": 2}, "completion_tokens_details": {"reasoning_tokens": 6}}]


def test_a_stream_without_include_usage_sends_no_usage_chunk_and_a_bare_finish_keeps_its_role():
    chunks = events_to_chunks([{"candidates": [{"finishReason": "SAFETY"}],
                                "usageMetadata": {"promptTokenCount": 3}}], include_usage=False)
    assert deltas(chunks) == [({"role": "assistant"}, "content_filter")]


def test_a_blocked_prompt_in_a_stream_is_a_400_before_any_chunk():
    with pytest.raises(GatewayError) as caught:
        events_to_chunks([{"promptFeedback": {"blockReason": "SAFETY"}}])
    assert (caught.value.http_status, caught.value.code) == (400, "content_filter")


# -- errors -----------------------------------------------------------------------------------

def google(status: int, code: str, message: str = "m", **extra) -> bytes:
    return orjson.dumps({"error": {"code": status, "message": message, "status": code, **extra}})


@pytest.mark.parametrize("status, body, expected", [
    (400, google(400, "INVALID_ARGUMENT", "Bad field."), (400, "invalid_request", False, None)),
    (400, google(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details=[
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]),
     (502, "upstream_error", True, "credentials")),
    (403, google(403, "PERMISSION_DENIED"), (502, "upstream_error", True, "credentials")),
    (401, google(401, "UNAUTHENTICATED"), (502, "upstream_error", True, "credentials")),
    (404, google(404, "NOT_FOUND", "models/x is not found"), (404, "model_not_found", False, None)),
    (429, google(429, "RESOURCE_EXHAUSTED", details=[
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]),
     (429, "upstream_rate_limited", True, None)),
    (500, google(500, "INTERNAL"), (502, "upstream_error", True, None)),
    (503, google(503, "UNAVAILABLE"), (502, "upstream_error", True, None)),
    (504, google(504, "DEADLINE_EXCEEDED"), (502, "upstream_error", True, None)),
])
def test_googles_errors_map_to_the_gateways(status, body, expected):
    error = errors.from_response(status, body, channel())
    assert (error.http_status, error.code, error.retryable, error.channel_fault) == expected, error
    if status == 429:
        assert error.retry_after == 37.0
    assert "AIzaSySECRET" not in error.message
