"""server/apis/messages/exchange.py: one Messages request as the relay core carries it,
without any server. What the client gets is checked by the official `anthropic` SDK's own
types (and its own stream accumulator); what is billed by st-ai's own meter."""
from __future__ import annotations

import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent

from server.apis.messages.exchange import MessagesExchange, exchange
from server.billing.usage_count import StreamMeter, answer_texts
from server.core.exchange import EventStream, Exchange
from server.errors import GatewayError, upstream_failed

EVENTS = pydantic.TypeAdapter(RawMessageStreamEvent)
PDF = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}


def body(**extra) -> dict:
    return {"model": "claude-public", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}], **extra}


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    out = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
           "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        out["usage"] = usage
    return out


def anthropic_stream() -> list[dict]:
    """Anthropic's events for a thinking block, a text and a tool call (as its API sends them)."""
    return [
        {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 40, "output_tokens": 1, "cache_read_input_tokens": 100,
                      "cache_creation_input_tokens": 20}}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                      "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Checking."}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                      "name": "weather", "input": {}}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta",
                                                              "partial_json": '{"city": "Oslo"}'}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 30}},
        {"type": "message_stop"},
    ]


def fold(events: list[dict]) -> Message:
    """The SDK's Message from events as its stream reader gets them (it skips pings)."""
    snapshot, buffers = None, {}
    for event in events:
        if event["type"] == "ping":
            continue
        snapshot = accumulate_event(event=EVENTS.validate_python(event), current_snapshot=snapshot, json_bufs=buffers)
    return snapshot


def test_it_is_an_exchange_of_the_messages_api():
    built = exchange(body())
    for name in Exchange.__annotations__:
        assert hasattr(built, name)
    for protocol, made in ((Exchange, built), (EventStream, built.translated_events()),
                           (EventStream, built.native_events())):
        assert all(callable(getattr(made, name)) for name, value in vars(protocol).items()
                   if callable(value) and not name.startswith("_"))
    assert (built.api, built.model, built.refusal) == ("messages", "claude-public", None)


@pytest.mark.parametrize("broken, param", [
    ({"model": None}, "model"), ({"model": ""}, "model"), ({"messages": None}, "messages"),
    ({"messages": []}, "messages"), ({"max_tokens": None}, "max_tokens"), ({"max_tokens": 0}, "max_tokens")])
def test_what_no_channel_could_take_is_a_400_at_once(broken, param):
    request = {k: v for k, v in {**body(), **broken}.items() if v is not None}
    with pytest.raises(GatewayError) as caught:
        exchange(request)
    assert (caught.value.http_status, caught.value.param) == (400, param)


def test_a_missing_field_is_worded_as_anthropic_words_it():
    with pytest.raises(GatewayError) as caught:
        exchange({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})
    assert caught.value.message == "max_tokens: Field required"


@pytest.mark.parametrize("extra", [
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, summarise"}, PDF]}]},
    {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
    {"mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "x"}]}])
def test_what_only_the_translation_refuses_is_held_back_for_channels_that_translate(extra):
    built = exchange(body(**extra))
    assert built.refusal is not None and built.refusal.http_status == 400
    assert built.native_body("claude-sonnet-4-5") == {**body(**extra), "model": "claude-sonnet-4-5"}
    # the estimate still counts the request's text
    assert built.chat == {"model": "claude-public", "max_tokens": 256, "messages": [
        {"role": "user", "content": built.chat["messages"][0]["content"]}]}
    assert "Hello" in built.chat["messages"][0]["content"]
    assert "JVBERi0x" not in built.chat["messages"][0]["content"]  # data is not text the model reads


def test_the_native_body_is_the_clients_with_only_the_upstream_model_changed():
    sent = body(system=[{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}], top_k=5,
                output_config={"effort": "low"}, thinking={"type": "adaptive"})
    built = exchange(sent)
    assert built.native_body("claude-public") is sent
    assert built.native_body("claude-opus-4-7") == {**sent, "model": "claude-opus-4-7"}
    assert sent["model"] == "claude-public"


def test_a_translated_answer_is_a_message_for_the_model_the_client_named():
    completion = {"id": "chatcmpl-9", "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "length",
                  "message": {"role": "assistant", "content": "Long"}}],
                  "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    answer = Message.model_validate(exchange(body()).answer(completion))
    assert (answer.model, answer.stop_reason, answer.usage.input_tokens) == ("claude-public", "max_tokens", 10)


def test_a_native_answer_names_the_clients_model_and_is_billed_from_anthropics_usage():
    native = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
              "content": [{"type": "thinking", "thinking": "Hmm.", "signature": "s"},
                          {"type": "text", "text": "Hi there"},
                          {"type": "tool_use", "id": "t", "name": "weather", "input": {"city": "Oslo"}}],
              "stop_reason": "tool_use", "stop_sequence": None,
              "usage": {"input_tokens": 40, "output_tokens": 30, "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 20}}
    built = exchange(body())
    assert Message.model_validate(built.native_answer(native)).model == "claude-public"
    metered = built.metered(native)
    assert metered["usage"]["prompt_tokens"] == 160
    assert metered["usage"]["prompt_tokens_details"] == {"cached_tokens": 100, "cache_write_tokens": 20}
    assert metered["usage"]["completion_tokens"] == 30
    assert answer_texts(metered) == ["Hi there", "Hmm.", "weather", '{"city":"Oslo"}']


def test_a_translated_stream_is_anthropics_sequence_with_a_ping_after_message_start():
    events = exchange(body()).translated_events()
    first = events.feed(chunk({"role": "assistant", "content": "Hel"}))
    assert [e["type"] for e in first] == ["message_start", "ping", "content_block_start", "content_block_delta"]
    rest = events.feed(chunk({"content": "lo"})) + events.feed(chunk({}, "stop"))
    billed = {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14,
              "prompt_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0}}
    end = events.finish(billed)
    assert [e["type"] for e in end] == ["content_block_stop", "message_delta", "message_stop"]
    message = fold(first + rest + end)
    assert [b.text for b in message.content] == ["Hello"]
    assert (message.model, message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.output_tokens) == ("claude-public", 10, 2, 2)
    assert events.metered(chunk({"content": "x"})) == chunk({"content": "x"})


def test_a_translated_stream_that_fails_ends_with_anthropics_error_event():
    events = exchange(body()).translated_events()
    events.feed(chunk({"content": "Hel"}))
    [error] = events.fail(upstream_failed("The upstream broke off."))
    assert error == {"type": "error", "error": {"type": "api_error", "message": "The upstream broke off."}}


def test_a_native_stream_holds_its_preamble_until_the_first_block_so_a_failure_can_fall_over():
    upstream = anthropic_stream()
    events = exchange(body()).native_events()
    assert events.feed(upstream[0]) == [] and events.feed(upstream[1]) == []
    first = events.feed(upstream[2])
    assert [e["type"] for e in first] == ["message_start", "ping", "content_block_start"]
    assert first[0]["message"]["model"] == "claude-public"
    rest = [e for item in upstream[3:] for e in events.feed(item)]
    assert rest == upstream[3:]
    assert events.finish({}) == []
    message = fold(first + rest)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[2].input == {"city": "Oslo"}


def test_a_native_stream_is_billed_at_its_cumulative_usage_and_its_text():
    meter = StreamMeter("claude-sonnet-4-5")
    events = exchange(body()).native_events()
    for item in anthropic_stream():
        if (counted := events.metered(item)) is not None:
            meter.saw(counted)
        if item["type"] == "message_start":
            assert meter.usage is None  # output tokens are only known at message_delta
    counts = meter.counts(lambda: 999)
    assert (counts.prompt, counts.cached, counts.cache_write, counts.completion, counts.estimate) == (
        160, 100, 20, 30, False)


def test_a_native_stream_cut_short_is_counted_from_its_text():
    meter = StreamMeter("claude-sonnet-4-5")
    events = exchange(body()).native_events()
    for item in anthropic_stream()[:8]:  # up to the text delta: no message_delta yet
        if (counted := events.metered(item)) is not None:
            meter.saw(counted)
    counts = meter.counts(lambda: 50)
    assert counts.estimate and counts.prompt == 50 and counts.completion > 0


def test_a_native_stream_failing_before_its_first_block_says_nothing_held_back_twice():
    events = exchange(body()).native_events()
    upstream = anthropic_stream()
    events.feed(upstream[0])
    ended = events.fail(upstream_failed("Overloaded"))
    assert [e["type"] for e in ended] == ["message_start", "error"]
    assert events.fail(upstream_failed("again")) == [{"type": "error", "error": {"type": "api_error",
                                                                                 "message": "again"}}]


def test_an_exchange_built_directly_keeps_its_fields():
    built = MessagesExchange(body(), {"model": "claude-public", "messages": []})
    assert built.model == "claude-public" and built.refusal is None
