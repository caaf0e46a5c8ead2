"""The fake Gemini API (tests/fakes/gemini.py) checked against Google's own SDK, pointed
at it: what the SDK sends is accepted, what the fake answers the SDK reads as Google's
answers (text, thoughts, function calls, usage, streams, embeddings, errors)."""
from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini import FakeGemini, GoogleFault, Reply

MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def fake():
    server = FakeGemini().start()
    yield server
    server.stop()


@pytest.fixture
def client(fake):
    fake.reset()
    return genai.Client(api_key=fake.api_key, http_options=types.HttpOptions(
        base_url=fake.base_url, api_version="v1beta", timeout=10_000,
        retry_options=types.HttpRetryOptions(attempts=1)))


def test_the_sdk_reads_a_plain_answer_and_its_usage(fake, client):
    fake.replies.append(Reply.text("Hello", " there", promptTokenCount=9, candidatesTokenCount=2,
                                   totalTokenCount=11, cachedContentTokenCount=4))
    answer = client.models.generate_content(model=MODEL, contents="Hi", config=types.GenerateContentConfig(
        system_instruction="Be brief", temperature=0.5, max_output_tokens=50, stop_sequences=["END"]))
    assert answer.text == "Hello there"
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    usage = answer.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.cached_content_token_count) == (9, 2, 4)
    (call,) = fake.calls("generateContent")
    assert call.path == f"/v1beta/models/{MODEL}:generateContent"
    assert call.headers["x-goog-api-key"] == fake.api_key
    assert call.body["systemInstruction"]["parts"] == [{"text": "Be brief"}]
    assert call.body["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 50, "stopSequences": ["END"]}


def test_the_sdk_reads_a_stream_part_by_part(fake, client):
    fake.replies.append(Reply.text("one ", "two ", "three"))
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Count"))
    assert [c.text for c in chunks] == ["one ", "two ", "three"]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count == 18
    (call,) = fake.calls("streamGenerateContent")
    assert call.query == "alt=sse"


def test_the_sdk_reads_function_calls_thoughts_and_signatures(fake, client):
    fake.replies.append(Reply([[{"text": "Let me look.", "thought": True},
                                {"functionCall": {"name": "weather", "args": {"city": "Paris"}},
                                 "thoughtSignature": "c2lnbmF0dXJl"},
                                {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}]],
                              usage={"promptTokenCount": 20, "candidatesTokenCount": 10, "thoughtsTokenCount": 30,
                                     "totalTokenCount": 60}))
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="weather", description="Weather in a city",
        parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]))])
    answer = client.models.generate_content(model=MODEL, contents="Weather?", config=types.GenerateContentConfig(
        tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode="ANY", allowed_function_names=["weather"])),
        thinking_config=types.ThinkingConfig(thinking_budget=1024, include_thoughts=True)))
    assert [(c.name, c.args) for c in answer.function_calls] == [("weather", {"city": "Paris"}),
                                                                 ("weather", {"city": "Oslo"})]
    parts = answer.candidates[0].content.parts
    assert parts[0].thought is True and parts[1].thought_signature == b"signature"
    assert answer.usage_metadata.thoughts_token_count == 30
    # the SDK's own request passes the fake's checks, and the round trip goes back with the signature
    follow = client.models.generate_content(model=MODEL, contents=[
        types.Content(role="user", parts=[types.Part(text="Weather?")]),
        answer.candidates[0].content,
        types.Content(role="user", parts=[
            types.Part.from_function_response(name="weather", response={"celsius": 21}),
            types.Part.from_function_response(name="weather", response={"celsius": 3})])])
    assert follow.text == "Hello from the fake Gemini."
    sent = fake.calls("generateContent")[-1].body["contents"][1]["parts"][1]
    assert sent["thoughtSignature"] == "c2lnbmF0dXJl"


def test_the_sdk_sees_a_blocked_prompt_and_each_finish_reason(fake, client):
    fake.replies.append(Reply(block_reason="SAFETY"))
    blocked = client.models.generate_content(model=MODEL, contents="something bad")
    assert blocked.candidates is None and blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    for reason in ("MAX_TOKENS", "SAFETY", "RECITATION"):
        fake.replies.append(Reply.text("cut", finish=reason))
        answer = client.models.generate_content(model=MODEL, contents="Hi")
        assert answer.candidates[0].finish_reason == types.FinishReason(reason)


def test_the_sdk_embeds_through_batch_embed_contents(fake, client):
    answer = client.models.embed_content(model="gemini-embedding-001", contents=["first", "second"],
                                         config=types.EmbedContentConfig(output_dimensionality=8))
    assert [len(e.values) for e in answer.embeddings] == [8, 8]
    assert answer.embeddings[0].values != answer.embeddings[1].values
    (call,) = fake.calls("batchEmbedContents")
    assert call.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert call.body["requests"][0] == {"model": "models/gemini-embedding-001", "content": {
        "parts": [{"text": "first"}], "role": "user"}, "outputDimensionality": 8}


@pytest.mark.parametrize("fault, code", [
    (GoogleFault(400, "INVALID_ARGUMENT", "Bad request."), 400),
    (GoogleFault(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", retry_delay="7s"), 429),
    (GoogleFault(500, "INTERNAL", "Internal error."), 500),
    (GoogleFault(503, "UNAVAILABLE", "The model is overloaded."), 503),
])
def test_the_sdk_reads_googles_error_bodies(fake, client, fault, code):
    fake.fail_next.append(fault)
    with pytest.raises(errors.APIError) as caught:
        client.models.generate_content(model=MODEL, contents="Hi")
    assert (caught.value.code, caught.value.status, caught.value.message) == (code, fault.code, fault.message)


def test_a_wrong_key_and_an_unknown_model_answer_as_google_does(fake):
    fake.reset()
    wrong = genai.Client(api_key="AIzaSyWRONG", http_options=types.HttpOptions(
        base_url=fake.base_url, api_version="v1beta", timeout=10_000,
        retry_options=types.HttpRetryOptions(attempts=1)))
    with pytest.raises(errors.ClientError) as caught:
        wrong.models.generate_content(model=MODEL, contents="Hi")
    assert caught.value.code == 400 and caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    right = genai.Client(api_key=fake.api_key, http_options=types.HttpOptions(
        base_url=fake.base_url, api_version="v1beta", timeout=10_000,
        retry_options=types.HttpRetryOptions(attempts=1)))
    with pytest.raises(errors.ClientError) as caught:
        right.models.generate_content(model="gemini-0-nonexistent", contents="Hi")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"


def test_the_sdk_counts_tokens(fake, client):
    counted = client.models.count_tokens(model=MODEL, contents=["How many tokens is this?", "And this"])
    (call,) = fake.calls("countTokens")
    assert call.path == f"/v1beta/models/{MODEL}:countTokens"
    assert set(call.body) == {"contents"}
    assert len(call.body["contents"]) == 1  # the SDK sends the strings as the parts of one user turn
    assert counted.total_tokens == 2 + len("How many tokens is this? And this".split())
