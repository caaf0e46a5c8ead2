"""The providers' NativeApis and TokenCounter capabilities, called directly against their
fakes on 127.0.0.1: the anthropic provider's pass-through stream (events as they arrive, an
`error` event and a stream cut short as gateway errors) and its token counts of a Messages
body and of a chat body; the gemini provider's token count. The failure matrix every
provider call passes is tests/test_provider_failures.py."""
from __future__ import annotations

import aiohttp
import pytest

from server.errors import GatewayError
from server.providers.anthropic.chat import AnthropicChat
from server.providers.gemini.chat import GeminiChat
from server.providers.interface import NativeApis, TokenCounter, Upstream
from server.store.channels import Channel
from tests.fakes import anthropic as anthropic_fake
from tests.fakes.anthropic import Reply
from tests.fakes.faults import Fault
from tests.fakes.gemini import FakeGemini, tokens_in

pytestmark = pytest.mark.timeout(60)

SECONDS = 20
HI = [{"role": "user", "content": "Hello there, Claude"}]


@pytest.fixture(scope="module")
def gemini():
    fake = FakeGemini().start()
    yield fake
    fake.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def channel(kind: str, url: str, key: str) -> Channel:
    return Channel(1, f"{kind}-channel", kind, url, key, ("m",))


async def collect(events) -> list[dict]:
    return [event async for event in events]


def test_only_the_providers_with_the_endpoints_claim_the_capabilities():
    assert issubclass(AnthropicChat, NativeApis) and issubclass(AnthropicChat, TokenCounter)
    assert issubclass(GeminiChat, TokenCounter) and not issubclass(GeminiChat, NativeApis)


async def test_a_passed_through_stream_is_anthropics_events_as_they_arrive(fake_anthropic, http):
    fake_anthropic.reset()
    fake_anthropic.script(Reply([{"type": "text", "text": "Streamed."}]))
    provider = AnthropicChat(Upstream(http))
    body = {"model": "claude-haiku-4-5", "max_tokens": 40, "stream": True, "messages": HI}
    at = channel("anthropic", fake_anthropic.url, fake_anthropic.key)
    events = await collect(provider.native_stream(at, "messages", body, SECONDS))
    assert events == [data for _, data in anthropic_fake._events(body, Reply([{"type": "text", "text": "Streamed."}]),
                                                                  events[0]["message"]["id"])]
    assert fake_anthropic.last().body == body


async def test_a_passed_through_stream_gets_stream_true_and_a_plain_call_never_streams(fake_anthropic, http):
    fake_anthropic.reset()
    provider = AnthropicChat(Upstream(http))
    at = channel("anthropic", fake_anthropic.url, fake_anthropic.key)
    body = {"model": "claude-haiku-4-5", "max_tokens": 40, "messages": HI}
    await collect(provider.native_stream(at, "messages", body, SECONDS))
    assert fake_anthropic.last().body == {**body, "stream": True}
    answer = await provider.native(at, "messages", {**body, "stream": True}, SECONDS)
    assert answer["type"] == "message" and fake_anthropic.last().body == body


async def test_an_error_event_in_a_passed_through_stream_is_a_gateway_error_after_what_came_before(fake_anthropic,
                                                                                                  http):
    fake_anthropic.reset()
    fake_anthropic.script(Reply([{"type": "text", "text": "Partly"}], error_after=3, error_type="overloaded_error"))
    provider = AnthropicChat(Upstream(http))
    seen = []
    at = channel("anthropic", fake_anthropic.url, fake_anthropic.key)
    with pytest.raises(GatewayError) as caught:
        async for event in provider.native_stream(at, "messages",
                                                  {"model": "claude-haiku-4-5", "max_tokens": 40, "messages": HI},
                                                  SECONDS):
            seen.append(event["type"])
    assert seen == ["message_start", "content_block_start", "ping"]
    assert caught.value.retryable


async def test_a_passed_through_stream_cut_short_is_a_gateway_error(fake_anthropic, http):
    fake_anthropic.reset()
    fake_anthropic.faults.add("/v1/messages", Fault.malformed_sse())
    provider = AnthropicChat(Upstream(http))
    with pytest.raises(GatewayError) as caught:
        await collect(provider.native_stream(channel("anthropic", fake_anthropic.url, fake_anthropic.key), "messages",
                                             {"model": "claude-haiku-4-5", "max_tokens": 40, "messages": HI}, SECONDS))
    assert caught.value.http_status == 502


async def test_anthropic_counts_a_messages_body_as_it_is_and_a_chat_body_translated(fake_anthropic, http):
    fake_anthropic.reset()
    provider = AnthropicChat(Upstream(http))
    at = channel("anthropic", fake_anthropic.url, fake_anthropic.key)
    body = {"model": "claude-haiku-4-5", "system": "Be brief.", "messages": HI}
    assert await provider.count_tokens(at, "messages", body, SECONDS) == anthropic_fake.input_tokens(body)
    assert fake_anthropic.last().body == body
    chat = {"model": "claude-haiku-4-5", "max_tokens": 50, "temperature": 0.2,
            "messages": [{"role": "system", "content": "Be brief."}, *HI]}
    counted = await provider.count_tokens(at, "chat", chat, SECONDS)
    sent = fake_anthropic.last().body
    assert sent == {"model": "claude-haiku-4-5", "system": [{"type": "text", "text": "Be brief."}],
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there, Claude"}]}]}
    assert counted == anthropic_fake.input_tokens(sent)


async def test_gemini_counts_the_whole_generate_request(gemini, http):
    gemini.reset()
    provider = GeminiChat(Upstream(http))
    chat = {"model": "gemini-2.5-flash", "messages": [{"role": "system", "content": "Be brief."}, *HI],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]}
    counted = await provider.count_tokens(channel("gemini", gemini.base_url, gemini.api_key), "chat", chat, SECONDS)
    [call] = gemini.calls("countTokens")
    request = call.body["generateContentRequest"]
    assert request["model"] == "models/gemini-2.5-flash"
    assert request["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert request["tools"][0]["functionDeclarations"][0]["name"] == "weather"
    assert counted == tokens_in({k: v for k, v in request.items() if k != "model"})
