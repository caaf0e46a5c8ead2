"""The fake Anthropic server (tests/fakes/anthropic.py) checked against the official
`anthropic` SDK: the SDK pointed at it parses its answers, its streams event by event and
its errors as it would Anthropic's. What the fake says is what st-ai's tests rely on."""
from __future__ import annotations

import anthropic
import pytest

from tests.fakes.anthropic import Reply, text

pytestmark = pytest.mark.timeout(60)

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def fake(fake_anthropic):
    fake_anthropic.reset()
    return fake_anthropic


@pytest.fixture
def client(fake):
    return anthropic.Anthropic(api_key=fake.key, base_url=fake.url, timeout=10, max_retries=0)


def test_the_sdk_parses_a_whole_message_with_cache_usage(fake, client):
    fake.script(text("Hello there.", input_tokens=5, output_tokens=3, cache_read=40, cache_write=60))
    message = client.messages.create(model=MODEL, max_tokens=100, messages=HI)
    assert message.content[0].type == "text" and message.content[0].text == "Hello there."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens) == (5, 3, 40, 60)
    received = fake.last()
    assert received.headers["anthropic-version"] == anthropic._constants.ANTHROPIC_API_VERSION
    assert received.body == {"model": MODEL, "max_tokens": 100, "messages": HI}


def test_the_sdk_parses_thinking_and_parallel_tool_use_blocks(fake, client):
    fake.script(Reply([{"type": "thinking", "thinking": "Two cities.", "signature": "sig-1"},
                       {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Paris"}},
                       {"type": "tool_use", "id": "toolu_b", "name": "weather", "input": {"city": "Rome"}}],
                      stop_reason="tool_use"))
    message = client.messages.create(
        model="claude-opus-4-7", max_tokens=2000, messages=HI, thinking={"type": "adaptive"},
        tools=[{"name": "weather", "input_schema": {"type": "object"}}])
    assert [block.type for block in message.content] == ["thinking", "tool_use", "tool_use"]
    assert message.content[0].thinking == "Two cities." and message.content[0].signature == "sig-1"
    assert [block.input for block in message.content[1:]] == [{"city": "Paris"}, {"city": "Rome"}]
    assert message.stop_reason == "tool_use"


def test_the_sdk_reads_the_event_stream_and_accumulates_the_same_message(fake, client):
    reply = Reply([{"type": "thinking", "thinking": "Let me see what fits.", "signature": "sig-2"},
                   {"type": "text", "text": "A fairly long answer, streamed in pieces."},
                   {"type": "tool_use", "id": "toolu_c", "name": "lookup", "input": {"q": "fits", "n": 2}}],
                  stop_reason="tool_use", cache_read=7, cache_write=11)
    fake.script(reply)
    with client.messages.stream(model="claude-opus-4-7", max_tokens=2000, messages=HI,
                                thinking={"type": "adaptive"},
                                tools=[{"name": "lookup", "input_schema": {"type": "object"}}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and "content_block_delta" in kinds and kinds[-1] == "message_stop"
    assert final.content[0].thinking == "Let me see what fits." and final.content[0].signature == "sig-2"
    assert final.content[1].text == "A fairly long answer, streamed in pieces."
    assert final.content[2].input == {"q": "fits", "n": 2}
    assert final.stop_reason == "tool_use"
    assert (final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens) == (7, 11)
    assert fake.last().body["stream"] is True


def test_the_raw_stream_sends_the_documented_event_sequence_with_a_ping(fake, client):
    fake.script(text("Hi!"))
    stream = client.messages.create(model=MODEL, max_tokens=50, messages=HI, stream=True)
    kinds = [event.type for event in stream]
    assert kinds == ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]  # the SDK skips the ping, as it does Anthropic's


def test_an_error_event_mid_stream_is_raised_by_the_sdk_as_anthropics_overloaded_error(fake, client):
    fake.script(text("never finished", error_after=3))
    with pytest.raises(anthropic.APIStatusError) as caught:
        list(client.messages.create(model=MODEL, max_tokens=50, messages=HI, stream=True))
    assert caught.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize("status, error_class", [
    (400, anthropic.BadRequestError), (402, anthropic.PaymentRequiredError), (403, anthropic.PermissionDeniedError),
    (413, anthropic.ContentTooLargeError), (429, anthropic.RateLimitError), (500, anthropic.InternalServerError),
    (529, anthropic.OverloadedError),
])
def test_scripted_errors_are_anthropics_error_bodies_the_sdk_classifies(fake, client, status, error_class):
    fake.fail(status, "Scripted failure.", retry_after="2" if status == 429 else None)
    with pytest.raises(error_class) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=HI)
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["message"] == "Scripted failure."


def test_a_wrong_key_is_an_authentication_error_and_an_unknown_model_not_found(fake):
    wrong = anthropic.Anthropic(api_key="sk-ant-wrong", base_url=fake.url, timeout=10, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        wrong.messages.create(model=MODEL, max_tokens=50, messages=HI)
    assert caught.value.body["error"]["type"] == "authentication_error"
    client = anthropic.Anthropic(api_key=fake.key, base_url=fake.url, timeout=10, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-unknown-9", max_tokens=50, messages=HI)


def test_the_fake_refuses_what_the_current_api_version_and_models_refuse(fake, client):
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        client.messages.create(model=MODEL, max_tokens=50, messages=HI, extra_body={"temperature": 0.5})
    with pytest.raises(anthropic.BadRequestError, match="thinking.type.enabled"):
        client.messages.create(model="claude-opus-4-7", max_tokens=5000, messages=HI,
                               thinking={"type": "enabled", "budget_tokens": 2000})
    with pytest.raises(anthropic.BadRequestError, match="tool_use_id"):
        client.messages.create(model=MODEL, max_tokens=50, messages=[
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_nowhere", "content": "x"}]}])


def test_the_sdk_counts_tokens_and_the_fake_refuses_what_only_creating_takes(fake, client):
    tools = [{"name": "weather", "description": "Weather in a city.", "input_schema": {"type": "object"}}]
    counted = client.messages.count_tokens(model=MODEL, system="Be brief.", tools=tools, messages=HI)
    received = fake.last()
    assert received.path == "/v1/messages/count_tokens"
    assert received.body == {"model": MODEL, "system": "Be brief.", "tools": tools, "messages": HI}
    # the fake's count: 3 per message, one per word of the texts (not of roles' or types' names)
    assert counted.input_tokens == 3 + len("Hi Be brief. weather Weather in a city.".split())
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.count_tokens(model=MODEL, messages=HI, extra_body={"max_tokens": 10})
    assert caught.value.body["error"]["message"] == "max_tokens: Extra inputs are not permitted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-unknown", messages=HI)
