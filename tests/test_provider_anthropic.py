"""The anthropic provider's pure translation: OpenAI chat requests into Messages requests,
Messages answers and stream events into OpenAI completions and chunks, Anthropic's errors
into the gateway's. No server here (tests/test_anthropic_e2e.py runs them through st-ai)."""
from __future__ import annotations

import orjson
import pytest

from server.errors import GatewayError
from server.providers.anthropic import answer, errors
from server.providers.anthropic.models import rules, version_of
from server.providers.anthropic.request import messages_request
from server.providers.anthropic.stream import StreamError, Translator
from server.store.channels import Channel

CURRENT = "2026-10-21"
OLD = "2023-06-01"
CHANNEL = Channel(1, "claude", "anthropic", "https://api.anthropic.com", "sk-ant-secret-key-123456")


def translate(body: dict, version: str = CURRENT, stream: bool = False) -> dict:
    return messages_request(body, rules(body["model"], version), stream)


def chat(model: str = "claude-sonnet-4-5-20250929", **fields) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], **fields}


# -- models ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model, version", [
    ("claude-sonnet-4-5-20250929", ("sonnet", 4, 5)),
    ("claude-opus-4-7", ("opus", 4, 7)),
    ("claude-3-7-sonnet-20250219", ("sonnet", 3, 7)),
    ("claude-3-5-haiku-latest", ("haiku", 3, 5)),
    ("claude-opus-4-20250514", ("opus", 4, 0)),
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0", ("haiku", 4, 5)),
    ("claude-opus-5-5", ("opus", 5, 5)),
    ("gpt-4o", None),
])
def test_model_names_are_read_as_family_and_version(model, version):
    assert version_of(model) == version


@pytest.mark.parametrize("model, sampling, thinking", [
    ("claude-3-5-haiku-20241022", "all", None),
    ("claude-3-7-sonnet-20250219", "all", "budget"),
    ("claude-opus-4-20250514", "all", "budget"),
    ("claude-sonnet-4-5-20250929", "one", "budget"),
    ("claude-haiku-4-5", "one", "budget"),
    ("claude-sonnet-4-6", "one", "adaptive"),
    ("claude-opus-4-7", "none", "adaptive"),
    ("claude-opus-5-5", "none", "adaptive"),
])
def test_what_each_model_takes_on_the_2023_version(model, sampling, thinking):
    assert (rules(model, OLD).sampling, rules(model, OLD).thinking) == (sampling, thinking)


def test_the_current_version_takes_no_sampling_parameters_on_any_model():
    assert {rules(m, CURRENT).sampling for m in ("claude-3-5-haiku-20241022", "claude-sonnet-4-5")} == {"none"}


# -- requests -------------------------------------------------------------------------------

def test_system_and_developer_messages_become_system_blocks_and_turns_are_content_blocks():
    body = {"model": "claude-sonnet-4-5-20250929", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Again"}]}
    sent = translate(body)
    assert sent["system"] == [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}]
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Bonjour"}]},
        {"role": "user", "content": [{"type": "text", "text": "Again"}]}]


def test_consecutive_same_role_turns_are_merged():
    body = {"model": "claude-haiku-4-5", "messages": [
        {"role": "user", "content": "one"}, {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]}
    assert translate(body)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]


def test_images_from_urls_and_base64_data_uris():
    body = chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "high"}}]}])
    assert translate(body)["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}}]


@pytest.mark.parametrize("part, param", [
    ({"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}, "messages[0].content[0].image_url"),
    ({"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}}, "messages[0].content[0].image_url"),
    ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "messages[0].content[0]"),
])
def test_content_anthropic_cannot_take_is_a_400_naming_the_part(part, param):
    with pytest.raises(GatewayError) as caught:
        translate(chat(messages=[{"role": "user", "content": [part]}]))
    assert (caught.value.http_status, caught.value.param) == (400, param)


def test_tools_tool_calls_and_parallel_results_round_trip():
    body = chat(
        tools=[{"type": "function", "function": {"name": "weather", "description": "Weather in a city",
                                                 "parameters": {"type": "object",
                                                                "properties": {"city": {"type": "string"}}}}},
               {"type": "function", "function": {"name": "now"}}],
        messages=[{"role": "user", "content": "Weather in Paris and Rome?"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
                      {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}]},
                  {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                  {"role": "tool", "tool_call_id": "toolu_2", "content": "24C"}])
    sent = translate(body)
    assert sent["tools"] == [
        {"name": "weather", "description": "Weather in a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}}]
    assert "tool_choice" not in sent
    assert sent["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                                     {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24C"}]}]


TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize("choice, parallel, expected", [
    ("auto", None, {"type": "auto"}),
    ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "weather"}}, None, {"type": "tool", "name": "weather"}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
])
def test_tool_choice_and_parallel_tool_calls(choice, parallel, expected):
    fields = {"tools": TOOLS}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel
    assert translate(chat(**fields))["tool_choice"] == expected


def test_tool_call_arguments_that_are_not_a_json_object_are_a_400():
    body = chat(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}])
    with pytest.raises(GatewayError) as caught:
        translate(body)
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


def test_max_tokens_is_the_clients_limit_else_the_models_own_most():
    assert translate(chat(max_completion_tokens=300))["max_tokens"] == 300
    assert translate(chat(max_tokens=200))["max_tokens"] == 200
    assert translate(chat("claude-sonnet-4-5-20250929"))["max_tokens"] == 64_000
    assert translate(chat("claude-opus-4-7"))["max_tokens"] == 128_000
    assert translate(chat("claude-3-5-haiku-20241022"))["max_tokens"] == 8_192


def test_stop_user_and_stream_are_mapped():
    sent = translate(chat(stop=["END", "  "], user="u-42"), stream=True)
    assert (sent["stop_sequences"], sent["metadata"], sent["stream"]) == (["END"], {"user_id": "u-42"}, True)
    assert translate(chat(stop="STOP"))["stop_sequences"] == ["STOP"]


def test_several_choices_are_a_400():
    with pytest.raises(GatewayError) as caught:
        translate(chat(n=2))
    assert (caught.value.http_status, caught.value.param) == (400, "n")


# -- sampling parameters: left out where the version or model refuses them -------------------

def test_the_current_version_gets_no_sampling_parameters():
    sent = translate(chat(temperature=0.3, top_p=0.9), CURRENT)
    assert "temperature" not in sent and "top_p" not in sent


def test_opus_4_7_and_later_get_no_sampling_parameters_on_the_2023_version():
    sent = translate(chat("claude-opus-4-7", temperature=0.3, top_p=0.9), OLD)
    assert "temperature" not in sent and "top_p" not in sent


def test_models_taking_one_sampling_parameter_get_temperature_only():
    sent = translate(chat("claude-sonnet-4-5-20250929", temperature=0.3, top_p=0.9), OLD)
    assert (sent["temperature"], "top_p" in sent) == (0.3, False)
    assert translate(chat("claude-haiku-4-5", top_p=0.9), OLD)["top_p"] == 0.9


def test_older_models_get_both_and_temperature_is_capped_at_anthropics_1():
    sent = translate(chat("claude-3-5-haiku-20241022", temperature=1.7, top_p=0.9), OLD)
    assert (sent["temperature"], sent["top_p"]) == (1.0, 0.9)


# -- reasoning ---------------------------------------------------------------------------------

def test_reasoning_effort_is_a_token_budget_on_models_that_take_one():
    sent = translate(chat("claude-sonnet-4-5-20250929", reasoning_effort="medium", temperature=0.5, top_p=0.97), OLD)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert "temperature" not in sent and sent["top_p"] == 0.97  # thinking takes top_p only near 1
    assert "output_config" not in sent


def test_a_budget_must_fit_below_max_tokens_or_thinking_is_left_out():
    assert translate(chat(reasoning_effort="high", max_tokens=5000))["thinking"]["budget_tokens"] == 4999
    assert "thinking" not in translate(chat(reasoning_effort="high", max_tokens=1000))


def test_reasoning_effort_is_adaptive_thinking_with_an_effort_on_newer_models():
    sent = translate(chat("claude-opus-4-7", reasoning_effort="xhigh"))
    assert (sent["thinking"], sent["output_config"]) == ({"type": "adaptive"}, {"effort": "xhigh"})
    sent = translate(chat("claude-sonnet-4-6", reasoning_effort="xhigh"))
    assert sent["output_config"] == {"effort": "high"}  # Sonnet 4.6 has no xhigh
    assert translate(chat("claude-opus-5-5", reasoning_effort="minimal"))["output_config"] == {"effort": "low"}


def test_no_thinking_for_models_without_it_for_none_or_when_a_tool_is_forced():
    assert "thinking" not in translate(chat("claude-3-5-haiku-20241022", reasoning_effort="high"))
    assert "thinking" not in translate(chat(reasoning_effort="none"))
    assert "thinking" not in translate(chat(reasoning_effort="high", tools=TOOLS, tool_choice="required"))


def test_thinking_blocks_the_client_sends_back_lead_the_turn_and_keep_thinking_on():
    body = chat("claude-opus-4-7", reasoning_effort="high", tools=TOOLS, messages=[
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "thinking_blocks": [{"type": "thinking", "thinking": "Ask the tool.", "signature": "s1"}],
         "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"}])
    sent = translate(body)
    assert sent["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Ask the tool.", "signature": "s1"},
        {"type": "tool_use", "id": "t1", "name": "weather", "input": {}}]
    assert sent["thinking"] == {"type": "adaptive"}


def test_no_thinking_when_continuing_a_tool_call_whose_thinking_the_client_did_not_send_back():
    body = chat("claude-opus-4-7", reasoning_effort="high", tools=TOOLS, messages=[
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
                                              "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"}])
    assert "thinking" not in translate(body)


# -- answers -----------------------------------------------------------------------------------

MESSAGE = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-opus-4-7",
           "content": [{"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                       {"type": "text", "text": "It is "}, {"type": "text", "text": "sunny."}],
           "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 100,
                     "cache_creation_input_tokens": 50}}


def test_a_message_becomes_a_chat_completion_with_reasoning_and_usage():
    done = answer.completion(MESSAGE, 1_700_000_000)
    assert done == {
        "id": "msg_01", "object": "chat.completion", "created": 1_700_000_000, "model": "claude-opus-4-7",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "It is sunny.", "reasoning_content": "Let me think.",
            "thinking_blocks": [{"type": "thinking", "thinking": "Let me think.", "signature": "sig"}]}}],
        "usage": {"prompt_tokens": 160, "completion_tokens": 20, "total_tokens": 180,
                  "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 50}}}


def test_tool_use_blocks_become_tool_calls():
    message = {**MESSAGE, "stop_reason": "tool_use", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}]}
    choice = answer.completion(message, 0)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert [orjson.loads(c["function"]["arguments"]) for c in choice["message"]["tool_calls"]] == [
        {"city": "Paris"}, {"city": "Rome"}]
    assert [c["id"] for c in choice["message"]["tool_calls"]] == ["toolu_1", "toolu_2"]


@pytest.mark.parametrize("stop, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"), ("model_context_window_exceeded", "length"),
])
def test_stop_reasons_become_finish_reasons(stop, finish):
    assert answer.finish_reason(stop) == finish


def test_thinking_tokens_are_reported_as_reasoning_tokens():
    shaped = answer.usage({"input_tokens": 5, "output_tokens": 30, "output_tokens_details": {"thinking_tokens": 12}})
    assert shaped["completion_tokens_details"] == {"reasoning_tokens": 12}


# -- streams -----------------------------------------------------------------------------------

def events(*content: dict, stop: str = "end_turn") -> list[dict]:
    out = [{"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant",
                                                "model": "claude-haiku-4-5", "content": [], "stop_reason": None,
                                                "usage": {"input_tokens": 7, "output_tokens": 1,
                                                          "cache_read_input_tokens": 3,
                                                          "cache_creation_input_tokens": 2}}},
           {"type": "ping"}]
    for index, (start, deltas) in enumerate(content):
        out.append({"type": "content_block_start", "index": index, "content_block": start})
        out.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        out.append({"type": "content_block_stop", "index": index})
    out.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 15}})
    out.append({"type": "message_stop"})
    return out


def run(stream: list[dict], include_usage: bool = True) -> tuple[list[dict], Translator]:
    translator = Translator(123, include_usage)
    chunks = [chunk for event in stream for chunk in translator.feed(event)]
    return chunks, translator


def test_text_and_thinking_deltas_become_content_and_reasoning_chunks_with_usage_last():
    chunks, translator = run(events(
        ({"type": "thinking", "thinking": "", "signature": ""},
         [{"type": "thinking_delta", "thinking": "Hmm"}, {"type": "signature_delta", "signature": "x"}]),
        ({"type": "text", "text": ""}, [{"type": "text_delta", "text": "Hel"}, {"type": "text_delta", "text": "lo"}])))
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas == [{"role": "assistant", "reasoning_content": "Hmm"},
                      {"thinking_blocks": [{"type": "thinking", "thinking": "Hmm", "signature": "x"}]},
                      {"content": "Hel"}, {"content": "lo"}, {}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1] == {"id": "msg_s", "object": "chat.completion.chunk", "created": 123,
                          "model": "claude-haiku-4-5", "choices": [],
                          "usage": {"prompt_tokens": 12, "completion_tokens": 15, "total_tokens": 27,
                                    "prompt_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 2}}}
    assert translator.done


def test_parallel_tool_use_blocks_stream_as_indexed_tool_call_deltas():
    chunks, _ = run(events(
        ({"type": "text", "text": ""}, [{"type": "text_delta", "text": "Checking."}]),
        ({"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
         [{"type": "input_json_delta", "partial_json": '{"city":'}, {"type": "input_json_delta", "partial_json": '"Paris"}'}]),
        ({"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}},
         [{"type": "input_json_delta", "partial_json": '{"city":"Rome"}'}]), stop="tool_use"), include_usage=False)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert calls == [
        {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"city":'}},
        {"index": 0, "function": {"arguments": '"Paris"}'}},
        {"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": ""}},
        {"index": 1, "function": {"arguments": '{"city":"Rome"}'}}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert not any("usage" in c for c in chunks)


def test_nothing_is_said_before_the_first_content_so_an_early_error_can_fall_over():
    translator = Translator(0, True)
    assert translator.feed(events()[0]) == [] and translator.feed({"type": "ping"}) == []
    with pytest.raises(StreamError) as caught:
        translator.feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert errors.from_stream_event(caught.value.error, CHANNEL).retryable


def test_an_error_event_of_any_shape_is_a_gateway_error():
    for error in (["overloaded_error"], {"type": {"x": 1}, "message": 7}, None, "Overloaded"):
        assert errors.from_stream_event(error, CHANNEL).http_status == 502


def test_an_invalid_request_error_event_is_not_retried():
    error = errors.from_stream_event({"type": "invalid_request_error", "message": "bad"}, CHANNEL)
    assert (error.http_status, error.retryable) == (502, False)


# -- errors ------------------------------------------------------------------------------------

def body(kind: str, message: str = "It failed.") -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


@pytest.mark.parametrize("status, kind, expected", [
    (400, "invalid_request_error", (400, "invalid_request_error", None, False, None)),
    (401, "authentication_error", (502, "upstream_error", "upstream_error", True, "credentials")),
    (403, "permission_error", (502, "upstream_error", "upstream_error", True, "credentials")),
    (402, "billing_error", (502, "upstream_error", "upstream_error", False, "account")),
    (404, "not_found_error", (404, "not_found_error", "model_not_found", False, "misconfigured")),
    (413, "request_too_large", (413, "invalid_request_error", "request_too_large", False, None)),
    (429, "rate_limit_error", (429, "rate_limit_error", "upstream_rate_limited", True, None)),
    (500, "api_error", (502, "upstream_error", "upstream_error", True, None)),
    (529, "overloaded_error", (502, "upstream_error", "upstream_error", True, None)),
])
def test_each_anthropic_error_type_maps_to_status_type_code_and_retry_rule(status, kind, expected):
    error = errors.from_response(status, body(kind), CHANNEL, {"retry-after": "7"})
    assert (error.http_status, error.type, error.code, error.retryable, error.channel_fault) == expected


def test_a_rate_limit_and_an_overload_carry_the_retry_after():
    assert errors.from_response(429, body("rate_limit_error"), CHANNEL, {"Retry-After": "7"}).retry_after == 7
    assert errors.from_response(529, body("overloaded_error"), CHANNEL, {"Retry-After": "3"}).retry_after == 3


def test_a_404_without_anthropics_body_is_a_misconfigured_channel():
    error = errors.from_response(404, b"<html>Not Found</html>", CHANNEL)
    assert (error.http_status, error.channel_fault) == (502, "misconfigured")


def test_the_channel_key_never_reaches_the_client_through_an_upstream_message():
    error = errors.from_response(400, body("invalid_request_error", f"bad key {CHANNEL.key}"), CHANNEL)
    assert CHANNEL.key not in error.message


# -- the channel type --------------------------------------------------------------------------

def test_the_channel_type_is_discovered_with_anthropics_base_url_and_its_headers():
    from server.channel_rules import NewChannel, check
    from server.providers.anthropic import PROVIDER
    from server.providers.anthropic.chat import AnthropicChat, headers, messages_url
    from server.providers.registry import discover
    specs = discover()
    assert specs["anthropic"] is PROVIDER and PROVIDER.chat is AnthropicChat
    added = check(NewChannel("c", "anthropic", ["claude-opus-4-7"], key="sk-ant-api03-x"), specs)
    assert added.base_url == "https://api.anthropic.com"
    assert messages_url(CHANNEL) == "https://api.anthropic.com/v1/messages"
    with_v1 = Channel(2, "c2", "anthropic", "https://proxy.example.com/v1", "k", api_version="2023-06-01")
    assert messages_url(with_v1) == "https://proxy.example.com/v1/messages"
    assert headers(CHANNEL)["anthropic-version"] == "2026-10-21"
    assert headers(with_v1) == {"x-api-key": "k", "anthropic-version": "2023-06-01",
                                "content-type": "application/json", "accept": "application/json"}


def test_the_channel_key_never_reaches_the_client_through_a_stream_error_event():
    error = errors.from_stream_event({"type": "api_error", "message": f"key {CHANNEL.key} failed"}, CHANNEL)
    assert CHANNEL.key not in error.message and "failed" in error.message
