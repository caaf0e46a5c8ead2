"""server/codec/json_proto.py: OpenAI JSON (as dicts) <-> protobuf messages."""
from __future__ import annotations

import copy

import orjson
import pytest

from server.codec.json_proto import MAX_EXTRA_DEPTH, MAX_STRUCT_DEPTH, codec_for
from server.errors import GatewayError
from st_ai.v1 import chat_pb2, embeddings_pb2, models_pb2

REQUEST = codec_for(chat_pb2.ChatCompletionRequest, strict=True)
COMPLETION = codec_for(chat_pb2.ChatCompletion)
CHUNK = codec_for(chat_pb2.ChatCompletionChunk)


def round_trip(codec, data: dict) -> dict:
    """dict -> message -> wire bytes -> message -> dict."""
    message = codec.to_message(copy.deepcopy(data))
    again = type(message).FromString(message.SerializeToString())
    return codec.to_dict(again)


def nested(depth: int, leaf=1) -> dict:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def reject(codec, data: dict) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        codec.to_message(data)
    assert caught.value.http_status == 400
    return caught.value


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "strict": False,
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 0, "maximum": 14},
                "ratio": {"type": "number", "multipleOf": 0.5},
                "tags": {"type": "array", "items": {"type": "string"}, "default": []},
                "options": {"type": "object", "properties": {}, "additionalProperties": False},
                "note": {"type": ["string", "null"], "default": None},
            },
            "required": ["city"],
        },
    },
}


def full_request() -> dict:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse.", "x_sys_extra": {"a": [1, {"b": None}]}},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=",
                                                    "detail": "low", "x_vendor": 1}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ]},
            {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
                {"id": "call_abc", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "18C and sunny"},
            {"role": "user", "name": "alice", "content": ""},
        ],
        "temperature": 0,
        "top_p": 1,
        "n": 1,
        "seed": 2**62 + 12345,
        "max_tokens": 256,
        "max_completion_tokens": 0,
        "stream": False,
        "stream_options": {"include_usage": False},
        "parallel_tool_calls": False,
        "logprobs": False,
        "top_logprobs": 0,
        "user": "",
        "stop": ["\n\n", "END"],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "strict": True,
            "schema": {"type": "object", "required": ["items"], "additionalProperties": False,
                       "properties": {"items": {"type": "array", "items": {
                           "type": "object", "properties": {
                               "name": {"type": "string"},
                               "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                               "children": {"type": "array", "items": {"$ref": "#"}}}}}}}}},
        "logit_bias": {"50256": -100},
        "metadata": None,
        "prediction": {"type": "content", "content": [{"type": "text", "text": "x"}]},
        "modalities": [],
        "reasoning_effort": "low",
    }


# -- round trips ------------------------------------------------------------------------

def test_full_request_round_trips_identically():
    request = full_request()
    assert round_trip(REQUEST, request) == request


@pytest.mark.parametrize("stop", ["END", ["a", "b"], [""], ""])
def test_stop_as_string_or_list_round_trips(stop):
    request = {"model": "m", "stop": stop}
    out = round_trip(REQUEST, request)
    assert out == request
    assert type(out["stop"]) is type(stop)


def test_stop_string_and_list_use_different_oneof_members():
    assert REQUEST.to_message({"stop": "x"}).WhichOneof("stop") == "stop_text"
    assert REQUEST.to_message({"stop": ["x"]}).WhichOneof("stop") == "stop_list"


@pytest.mark.parametrize("choice", ["none", "auto", "required",
                                    {"type": "function", "function": {"name": "f"}}])
def test_tool_choice_as_string_or_object_round_trips(choice):
    request = {"model": "m", "tool_choice": choice}
    assert round_trip(REQUEST, request) == request


def test_content_as_string_or_parts_round_trips():
    text = {"role": "user", "content": "hello"}
    parts = {"role": "user", "content": [{"type": "text", "text": "hello"},
                                         {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
    request = {"messages": [text, parts]}
    message = REQUEST.to_message(request)
    assert message.messages[0].WhichOneof("content") == "text"
    assert message.messages[1].WhichOneof("content") == "parts"
    assert round_trip(REQUEST, request) == request


def test_empty_string_content_is_kept_as_a_string():
    request = {"messages": [{"role": "user", "content": ""}]}
    assert round_trip(REQUEST, request) == request


def test_zeros_and_false_are_kept():
    request = {"temperature": 0, "n": 0, "seed": 0, "max_tokens": 0, "stream": False,
               "logprobs": False, "parallel_tool_calls": False, "top_logprobs": 0,
               "frequency_penalty": 0.0, "presence_penalty": -0.0, "model": ""}
    out = round_trip(REQUEST, request)
    assert out == request
    assert out["stream"] is False and out["logprobs"] is False


def test_explicit_nulls_are_kept_at_every_level():
    request = {"model": "m", "temperature": None, "stop": None, "tool_choice": None,
               "messages": [{"role": "assistant", "content": None, "name": None, "tool_calls": None,
                             "refusal": None}],
               "tools": [{"type": "function", "function": {"name": "f", "description": None,
                                                           "parameters": None, "strict": None}}],
               "response_format": {"type": "text", "json_schema": None}}
    out = round_trip(REQUEST, request)
    assert out == request
    assert "temperature" in out and out["temperature"] is None


def test_empty_arrays_are_kept():
    request = {"model": "m", "messages": [], "tools": [], "stop": [],
               "x": [], "logit_bias": {}}
    out = round_trip(REQUEST, request)
    assert out == request
    assert out["messages"] == [] and out["stop"] == [] and out["tools"] == []


def test_empty_objects_are_kept():
    request = {"model": "m", "stream_options": {}, "response_format": {"type": "json_schema", "json_schema": {}},
               "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}
    assert round_trip(REQUEST, request) == request


def test_unknown_keys_are_kept_at_every_level():
    request = {
        "model": "m", "top_extra": {"deep": [1, 2, {"x": None}]},
        "messages": [{"role": "user", "msg_extra": True,
                      "content": [{"type": "image_url", "part_extra": "p",
                                   "image_url": {"url": "u", "img_extra": 1.5}}],
                      "tool_calls": [{"id": "c", "call_extra": 0,
                                      "function": {"name": "f", "arguments": "{}", "fn_extra": []}}]}],
        "tools": [{"type": "function", "tool_extra": "t",
                   "function": {"name": "f", "def_extra": {"k": "v"}}}],
        "tool_choice": {"type": "function", "choice_extra": 1, "function": {"name": "f", "named_extra": 2}},
        "response_format": {"type": "json_object", "rf_extra": False},
        "stream_options": {"include_usage": True, "so_extra": None},
    }
    assert round_trip(REQUEST, request) == request


def test_a_key_named_extra_json_is_data_like_any_other():
    request = {"model": "m", "extra_json": {"not": "special"}}
    assert round_trip(REQUEST, request) == request


def test_seed_near_two_to_the_62_stays_an_exact_int():
    for seed in (2**62, 2**62 + 1, 2**63 - 1, -(2**63)):
        out = round_trip(REQUEST, {"seed": seed})
        assert out["seed"] == seed
        assert type(out["seed"]) is int


def test_int64_is_written_as_an_integer_in_json():
    out = round_trip(REQUEST, {"seed": 2**62 + 3, "max_tokens": 7})
    text = orjson.dumps(out).decode()
    assert f'"seed":{2**62 + 3}' in text
    assert '"max_tokens":7' in text and "7.0" not in text


def test_integral_float_for_an_int_field_becomes_an_int():
    out = round_trip(REQUEST, {"max_tokens": 100.0})
    assert out["max_tokens"] == 100 and type(out["max_tokens"]) is int


def test_response_format_json_schema_with_nested_schema_round_trips():
    request = {"response_format": full_request()["response_format"]}
    out = round_trip(REQUEST, request)
    assert out == request
    items = out["response_format"]["json_schema"]["schema"]["properties"]["items"]
    assert items["items"]["properties"]["children"]["items"] == {"$ref": "#"}


def test_struct_numbers_keep_their_json_type():
    params = {"type": "object", "minimum": 0, "maximum": 14, "multipleOf": 0.5, "flag": True, "none": None}
    out = round_trip(REQUEST, {"tools": [{"function": {"name": "f", "parameters": params}}]})
    got = out["tools"][0]["function"]["parameters"]
    assert got == params
    assert type(got["minimum"]) is int and type(got["maximum"]) is int
    assert type(got["multipleOf"]) is float
    assert got["flag"] is True and got["none"] is None


def test_completion_with_tool_calls_round_trips():
    completion = {
        "id": "chatcmpl-123", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls",
                     "message": {"role": "assistant", "content": None, "refusal": None, "annotations": [],
                                 "tool_calls": [{"id": "call_1", "type": "function",
                                                 "function": {"name": "get_weather",
                                                              "arguments": "{\"city\":\"Paris\"}"}}]}},
                    {"index": 1, "logprobs": {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
                                                           "top_logprobs": []}]},
                     "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0,
                                                "rejected_prediction_tokens": 0}},
        "system_fingerprint": "fp_abc", "service_tier": "default",
        "provider_extra": {"k": [1, 2]},
    }
    assert round_trip(COMPLETION, completion) == completion


STREAM = [
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": None,
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                  "logprobs": None, "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                        "function": {"name": "f", "arguments": ""}}]},
                  "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\""}}]},
                  "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "x", "reasoning_content": "think"}}], "usage": None},
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
     "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
]


@pytest.mark.parametrize("chunk", STREAM, ids=range(len(STREAM)))
def test_stream_chunks_round_trip(chunk):
    assert round_trip(CHUNK, chunk) == chunk


def test_chunk_index_zero_is_kept():
    message = CHUNK.to_message(STREAM[2])
    assert message.choices[0].HasField("index") and message.choices[0].index == 0
    assert message.choices[0].delta.tool_calls[0].HasField("index")


def test_models_round_trip():
    model_codec = codec_for(models_pb2.Model)
    model = {"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "st-ai", "x": None}
    assert round_trip(model_codec, model) == model
    get = codec_for(models_pb2.GetModelRequest, strict=True)
    assert round_trip(get, {"model": "a/b"}) == {"model": "a/b"}


# -- lenient codec: providers' answers -----------------------------------------------------

def test_lenient_codec_keeps_wrong_typed_values_in_extra_json():
    answer = {
        "id": 123, "created": "1700000000", "object": ["x"], "model": "m",
        "choices": [{"index": "0", "finish_reason": 1,
                     "message": {"role": "assistant", "content": 42, "tool_calls": "nope"}}],
        "usage": {"prompt_tokens": 1.5, "completion_tokens": 2**63, "total_tokens": "3"},
    }
    message = COMPLETION.to_message(copy.deepcopy(answer))
    assert not message.HasField("id") and not message.HasField("created")
    assert orjson.loads(message.extra_json) == {"id": 123, "created": "1700000000", "object": ["x"]}
    assert orjson.loads(message.choices[0].message.extra_json) == {"content": 42, "tool_calls": "nope"}
    assert message.choices[0].message.WhichOneof("content") is None
    assert orjson.loads(message.usage.extra_json) == {"prompt_tokens": 1.5, "completion_tokens": 2**63,
                                                      "total_tokens": "3"}
    assert message.model == "m"
    assert round_trip(COMPLETION, answer) == answer


@pytest.mark.parametrize("answer", [
    {"choices": "nope", "usage": [1], "system_fingerprint": {"a": 1}},
    {"choices": [1, {"index": 0}]},
    {"choices": [{"index": 2**31}]},
    {"choices": [{"message": {"content": [{"type": "text", "text": 5}, "str"]}}]},
    {"choices": [{"message": {"content": [{"type": "text", "text": 5}]}}]},
    {"choices": [{"message": {"content": {"unexpected": "object"}}}]},
    {"choices": [{"message": {"tool_calls": [{"index": -1.5, "function": "f"}]}}]},
], ids=["top", "list-item", "int32-range", "part-list", "part-text", "content-object", "tool-call"])
def test_lenient_codec_gives_wrong_typed_values_back(answer):
    assert round_trip(COMPLETION, answer) == answer


def test_lenient_chunk_with_wrong_typed_delta_gives_it_back():
    chunk = {"id": "c", "choices": [{"index": 0, "delta": "oops", "finish_reason": False}]}
    assert round_trip(CHUNK, chunk) == chunk


# -- strict codec: requests ---------------------------------------------------------------

@pytest.mark.parametrize("request_body, param", [
    ({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": 5}]}, "messages[1].content"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": {"a": 1}}]}, "messages[1].content"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": 7}}]}, "tools[0].function.name"),
    ({"tools": ["f"]}, "tools[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 3}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": {"a": 1}}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"stop": ["a", 1]}, "stop[1]"),
    ({"stop": 5}, "stop"),
    ({"tool_choice": 1}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": "f"}}, "tool_choice.function"),
    ({"tool_choice": {"type": "function", "function": {"name": 1}}}, "tool_choice.function.name"),
    ({"response_format": {"type": "json_schema", "json_schema": []}}, "response_format.json_schema"),
    ({"temperature": "0.5"}, "temperature"),
    ({"stream": 1}, "stream"),
    ({"stream": "true"}, "stream"),
    ({"n": True}, "n"),
    ({"n": 1.5}, "n"),
    ({"n": 2**31}, "n"),
    ({"seed": 2**63}, "seed"),
    ({"max_tokens": "100"}, "max_tokens"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"messages": {"role": "user"}}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
])
def test_strict_codec_error_names_the_param_path(request_body, param):
    error = reject(REQUEST, request_body)
    assert error.param == param
    assert f"'{param}'" in error.message
    assert error.code == "invalid_type"
    assert error.body()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("key, param", [
    ("temperature", "temperature"), ("n", "n"), ("model", "model"), ("seed", "seed"),
    ("stream_options", "stream_options"), ("tool_choice", "tool_choice"),
    ("response_format", "response_format"),
])
def test_strict_codec_rejects_an_empty_array_where_no_array_fits(key, param):
    error = reject(REQUEST, {"model": "m", key: []} if key != "model" else {key: []})
    assert error.param == param and "got an array" in error.message


def test_strict_codec_rejects_an_empty_array_in_a_nested_scalar():
    error = reject(REQUEST, {"messages": [{"role": "user", "content": "x", "name": []}]})
    assert error.param == "messages[0].name"


def test_strict_error_says_what_was_expected_and_what_came():
    error = reject(REQUEST, {"messages": [{"role": "user", "content": 5}]})
    assert "expected a string or an array" in error.message and "got a number" in error.message
    error = reject(REQUEST, {"seed": 2**64})
    assert "out of range" in error.message


def test_strict_codec_rejects_unknown_keys_only_where_there_is_no_extra_json():
    stop_list = codec_for(chat_pb2.StopList, strict=True)
    error = reject(stop_list, {"items": ["a"], "surprise": 1})
    assert error.param == "surprise"
    # where extra_json exists, unknown keys are data
    assert REQUEST.to_message({"surprise": 1}).extra_json == '{"surprise":1}'


# -- deep nesting ---------------------------------------------------------------------------

def deep_list(depth: int) -> list:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("request_body, param", [
    ({"tools": [{"function": {"name": "f", "parameters": nested(MAX_STRUCT_DEPTH + 1)}}]},
     "tools[0].function.parameters"),
    ({"tools": [{"function": {"name": "f", "parameters": {"a": deep_list(200)}}}]},
     "tools[0].function.parameters"),
    ({"response_format": {"type": "json_schema", "json_schema": nested(5000)}}, "response_format.json_schema"),
    ({"x": nested(300)}, None),
    ({"x": nested(20_000)}, None),
    ({"x": deep_list(20_000)}, None),
    ({"messages": [{"role": "user", "x": nested(300)}]}, "messages[0]"),
    # under orjson's own limit on its own, over it once the typed levels above are counted
    ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                 "image_url": {"url": "u", "x": nested(250)}}]}]},
     "messages[0].content[0].image_url"),
])
def test_deep_nesting_is_a_400_not_a_crash(request_body, param):
    error = reject(REQUEST, request_body)
    assert error.param == param
    assert "deep" in error.message


def test_deep_nesting_from_raw_json_is_a_400_and_accepted_requests_serialize_again():
    depth = 250
    raw = ('{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":'
           '{"url":"u","x":' + '{"a":' * depth + '1' + '}' * depth + '}}]}]}')
    reject(REQUEST, orjson.loads(raw))
    ok = {"model": "m", "messages": [{"role": "user", "x": nested(MAX_EXTRA_DEPTH - 1)}],
          "tools": [{"function": {"name": "f", "parameters": nested(MAX_STRUCT_DEPTH)}}]}
    out = round_trip(REQUEST, ok)
    assert out == ok
    orjson.dumps(out)


@pytest.mark.parametrize("request_body", [
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": nested(MAX_STRUCT_DEPTH)}}]},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"a": deep_list(MAX_STRUCT_DEPTH - 1)}}}]},
    {"response_format": {"type": "json_schema", "json_schema": nested(MAX_STRUCT_DEPTH)}},
], ids=["parameters", "parameters-list", "json_schema"])
def test_deepest_accepted_struct_still_parses_from_the_wire(request_body):
    # what the REST bridge accepts must parse on the gRPC server (protobuf stops at 100 levels)
    message = REQUEST.to_message(request_body)
    parsed = chat_pb2.ChatCompletionRequest.FromString(message.SerializeToString())
    assert REQUEST.to_dict(parsed) == request_body


def test_lenient_codec_rejects_deep_nesting_without_crashing():
    with pytest.raises(GatewayError):
        COMPLETION.to_message({"choices": [{"index": 0, "x": nested(1000)}]})


# -- extra_json written by gRPC clients -------------------------------------------------------

@pytest.mark.parametrize("extra", ["not json", "[1, 2]", '"str"', "{", '{"a":' * 300 + "1" + "}" * 300])
def test_bad_extra_json_from_a_grpc_client_is_a_400(extra):
    message = chat_pb2.ChatCompletionRequest(model="m", extra_json=extra)
    with pytest.raises(GatewayError) as caught:
        REQUEST.to_dict(message)
    assert caught.value.http_status == 400
    assert caught.value.param == "extra_json"


def test_extra_json_from_a_grpc_client_is_merged():
    message = chat_pb2.ChatCompletionRequest(model="m", seed=2**62, extra_json='{"logit_bias":{"1":-1},"user":null}')
    assert REQUEST.to_dict(message) == {"model": "m", "seed": 2**62, "logit_bias": {"1": -1}, "user": None}


# -- a oneof of several arrays (embeddings' input), arrays of arrays -------------------------

EMBEDDING_REQUEST = codec_for(embeddings_pb2.EmbeddingRequest, strict=True)
EMBEDDING_LIST = codec_for(embeddings_pb2.EmbeddingList)


@pytest.mark.parametrize("given, member", [
    ("one text", "input_text"),
    (["a", "b"], "input_texts"),
    ([9906, 1917], "input_tokens"),
    ([[1, 2], [3], []], "input_token_lists"),
])
def test_the_first_items_json_type_picks_the_array_member_and_the_json_round_trips(given, member):
    body = {"model": "m", "input": given, "encoding_format": "base64"}
    assert EMBEDDING_REQUEST.to_message(copy.deepcopy(body)).WhichOneof("input") == member
    assert round_trip(EMBEDDING_REQUEST, body) == body


@pytest.mark.parametrize("given, param", [
    (["a", 1], "input[1]"),
    ([1, "a"], "input[1]"),
    ([1, 2.5], "input[1]"),
    ([[1, 2], ["a"]], "input[1][0]"),
    ([[1, 2], 3], "input[1]"),
    ([{"text": "a"}], "input[0]"),
    ([True], "input[0]"),
])
def test_an_array_no_member_takes_is_a_400_naming_the_item(given, param):
    assert reject(EMBEDDING_REQUEST, {"model": "m", "input": given}).param == param


def test_embedding_vectors_come_back_as_floats_or_base64_exactly():
    answer = {"object": "list", "model": "text-embedding-3-small",
              "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -0.009327292, 1e-07]},
                       {"object": "embedding", "index": 1, "embedding": "AACAPwAAAL8="}],
              "usage": {"prompt_tokens": 8, "total_tokens": 8}}
    assert orjson.loads(orjson.dumps(round_trip(EMBEDDING_LIST, answer))) == answer


# -- to_json: the JSON a lenient codec's round trip gives, without the message -------

def test_to_json_is_the_round_trips_json_for_the_answers_providers_send():
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-3.5-turbo",
             "system_fingerprint": None, "obfuscation": "x1",
             "choices": [{"index": 0, "logprobs": None, "finish_reason": None,
                          "delta": {"role": "assistant", "content": "v1.0, 2e+5] and 3.5",
                                    "tool_calls": [{"index": 0, "id": "t", "function": {"arguments": "{\"a\": 1.0}"}}]}}],
             "usage": {"prompt_tokens": 3, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 0},
                       "cost": 0.25}}
    for data in (chunk, chunk | {"choices": []}, chunk | {"choices": [{"index": 0, "delta": {}}]},
                 chunk | {"choices": [{"index": 2**40, "delta": "text", "x": [1, {"y": None}]}]},
                 chunk | {"choices": [{"index": 0, "delta": {"content": [{"type": "text", "text": "hi"}, 3]}}]}):
        assert orjson.loads(CHUNK.to_json(data)) == round_trip(CHUNK, data)
    answer = {"id": "a", "object": "chat.completion", "created": 1,
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    assert orjson.loads(COMPLETION.to_json(answer)) == round_trip(COMPLETION, answer)


def test_to_json_turns_whole_floats_in_integer_fields_into_integers_as_the_message_does():
    data = {"created": 1700000000.0, "choices": [{"index": 0.0, "delta": {"content": "x"}}],
            "usage": {"prompt_tokens": 1e3, "completion_tokens": 2.0, "extra": 1.0}}
    assert orjson.loads(CHUNK.to_json(data)) == round_trip(CHUNK, data)
    assert orjson.loads(CHUNK.to_json(data))["created"] == 1700000000
    assert type(orjson.loads(CHUNK.to_json(data))["usage"]["extra"]) is float


def test_to_json_refuses_extras_nested_too_deep_as_the_message_does():
    with pytest.raises(GatewayError):
        CHUNK.to_json({"id": "c", "deep": nested(MAX_EXTRA_DEPTH + 1)})


def test_to_json_of_a_value_json_cannot_hold_fails_as_the_message_does():
    with pytest.raises(Exception) as direct:
        CHUNK.to_message({"id": "c", "big": 2**70})
    with pytest.raises(type(direct.value)):
        CHUNK.to_json({"id": "c", "big": 2**70})
