"""The `gemini` chat provider in the failure matrix every provider passes
(tests/test_provider_failures.py): a rejected key, rate limits and overloads with their
Retry-After, client faults relayed once and scrubbed, unreadable answers, error bodies and
answers with any field of the wrong kind, and the channel's connect limit — each against
the fake Gemini API (tests/fakes/gemini.py) bent by the shared fault middleware."""
from __future__ import annotations

import pytest

from server.providers.gemini.chat import GeminiChat
from server.store.channels import Channel
from tests.fakes.gemini import FakeGemini
from tests.test_provider_failures import (  # noqa: F401  (fixtures and tests collected here)
    Case,
    bench,
    http,
    test_a_client_fault_is_relayed_once_with_the_upstreams_words_scrubbed,
    test_a_rate_limit_with_retry_after_as_an_http_date,
    test_a_rate_limit_with_retry_after_in_seconds,
    test_a_rate_limit_without_retry_after,
    test_a_start_answer_with_any_field_of_the_wrong_kind_never_escapes_as_an_exception,
    test_a_wrong_key_makes_the_channel_at_fault,
    test_a_503_with_retry_after_keeps_the_channel_out_that_long,
    test_an_error_body_with_any_field_of_the_wrong_kind_is_still_a_gateway_error,
    test_an_overloaded_upstream_is_a_retryable_502,
    test_an_unreadable_answer_to_a_start_is_a_retryable_502,
    test_an_upstream_401_or_403_makes_the_channel_at_fault,
    test_the_channels_connect_limit_is_honoured,
    unconnectable_url,
)

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-2.5-flash"
# a documented generateContent answer: thoughts, text, a signed call, finish reason and usage
ANSWER = {"candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [
    {"text": "Considering.", "thought": True}, {"text": "Here it is."},
    {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "U0lH"}]}}],
    "promptFeedback": {"safetyRatings": []},
    "usageMetadata": {"promptTokenCount": 10, "cachedContentTokenCount": 2, "candidatesTokenCount": 5,
                      "thoughtsTokenCount": 3, "totalTokenCount": 18},
    "modelVersion": MODEL, "responseId": "r-1"}


async def _chat(provider: GeminiChat, channel: Channel) -> object:
    return await provider.complete(channel, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, None)


CASE = Case("gemini-chat", lambda: FakeGemini().start(), lambda f: f.api_key, "AIzaSyWRONG0gemini0key",
            lambda up: GeminiChat(up), _chat, f"/v1beta/models/{MODEL}:generateContent",
            lambda words: (400, {"error": {"code": 400, "message": words, "status": "INVALID_ARGUMENT"}}),
            started=ANSWER)


@pytest.fixture(scope="module")
def running():
    fake = CASE.fake()
    yield CASE, fake
    fake.stop()
