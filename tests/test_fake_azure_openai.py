"""The fake Azure OpenAI resource (tests/fakes/azure_openai.py) checked against the
official `openai` SDK's AzureOpenAI client, pointed at it as at a real resource: the SDK
must accept every answer the fake gives (plain, streamed with its filter-results first
chunk, tool calls, images, embeddings in both encodings) and read its errors as Azure's,
and the fake must refuse what Azure refuses (no api-version, an unknown one, a wrong
key, a missing deployment)."""
from __future__ import annotations

import base64
import json
import struct

import openai
import pytest
from openai import AzureOpenAI, OpenAI

from tests.fakes.azure_openai import FILTERED_PROMPT, FakeAzureOpenAI

pytestmark = pytest.mark.timeout(60)

VERSION = "2024-10-21"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a place.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}


@pytest.fixture(scope="module")
def fake():
    server = FakeAzureOpenAI().start()
    yield server
    server.stop()


def azure(fake: FakeAzureOpenAI, key: str | None = None, version: str = VERSION) -> AzureOpenAI:
    return AzureOpenAI(azure_endpoint=fake.endpoint, api_key=key or fake.api_key, api_version=version,
                       timeout=10, max_retries=0)


def test_the_sdk_reads_a_plain_answer_and_sends_what_azure_documents(fake):
    completion = azure(fake).chat.completions.create(model="gpt4o-prod",
                                                     messages=[{"role": "user", "content": "Hello there"}])
    assert completion.choices[0].message.content == "Echo: Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-2024-11-20"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    sent = fake.received[-1]
    assert (sent.path, sent.query) == ("/openai/deployments/gpt4o-prod/chat/completions", {"api-version": VERSION})
    assert sent.headers["api-key"] == fake.api_key


def test_the_sdk_reads_a_stream_that_opens_with_the_prompt_filter_results(fake):
    chunks = list(azure(fake).chat.completions.create(
        model="gpt4o-prod", messages=[{"role": "user", "content": "Say something"}], stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices == [] and chunks[0].id == "" and "prompt_filter_results" in chunks[0].model_extra
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: Say something"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3


def test_the_sdk_reads_parallel_tool_calls_plain_and_streamed(fake):
    time_tool = {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    asked = dict(model="gpt4o-prod", messages=[{"role": "user", "content": "Weather and time?"}],
                 tools=[WEATHER, time_tool])
    completion = azure(fake).chat.completions.create(**asked)
    calls = completion.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"location": "example"}
    assert completion.choices[0].finish_reason == "tool_calls"
    chunks = list(azure(fake).chat.completions.create(**asked, stream=True))
    streamed = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            streamed.setdefault(delta.index, "")
            streamed[delta.index] += delta.function.arguments or ""
    assert [json.loads(a) for a in streamed.values()] == [{"location": "example"}, {"city": "example"}]


def test_the_sdk_reads_a_prompt_filter_refusal_as_azures_400(fake):
    with pytest.raises(openai.BadRequestError) as caught:
        azure(fake).chat.completions.create(model="gpt4o-prod",
                                            messages=[{"role": "user", "content": f"Tell me about {FILTERED_PROMPT}"}])
    assert caught.value.code == "content_filter"
    assert caught.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"


def test_the_sdk_reads_images_as_urls_and_base64(fake):
    by_url = azure(fake).images.generate(model="dalle3", prompt="a lighthouse")
    assert by_url.data[0].url.startswith(fake.endpoint) and by_url.data[0].revised_prompt
    inline = azure(fake).images.generate(model="dalle3", prompt="a lighthouse", response_format="b64_json")
    assert base64.b64decode(inline.data[0].b64_json).startswith(b"\x89PNG")


def test_the_sdk_reads_embeddings_in_both_encodings(fake):
    floats = azure(fake).embeddings.create(model="embed-small", input=["one", "two words"], dimensions=8,
                                           encoding_format="float")
    assert [len(d.embedding) for d in floats.data] == [8, 8]
    assert floats.usage.prompt_tokens == 3
    # The SDK asks for base64 by default and decodes it itself.
    decoded = azure(fake).embeddings.create(model="embed-small", input=["one", "two words"], dimensions=8)
    assert [d.embedding for d in decoded.data] == [d.embedding for d in floats.data]  # float32 both ways
    assert fake.received[-1].body["encoding_format"] == "base64"
    assert fake.received[-1].path == "/openai/deployments/embed-small/embeddings"
    raw = azure(fake).embeddings.with_raw_response.create(model="embed-small", input="one", dimensions=8,
                                                          encoding_format="base64").http_response.json()
    assert struct.unpack("<8f", base64.b64decode(raw["data"][0]["embedding"])) == pytest.approx(
        floats.data[0].embedding)


def test_the_v1_api_takes_the_key_as_a_bearer_token_and_no_api_version(fake):
    client = OpenAI(base_url=f"{fake.endpoint}/openai/v1", api_key=fake.api_key, timeout=10, max_retries=0)
    completion = client.chat.completions.create(model="gpt4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == "Echo: Hi"
    assert (fake.received[-1].path, fake.received[-1].query) == ("/openai/v1/chat/completions", {})


def test_what_azure_refuses_the_fake_refuses(fake):
    ask = dict(model="gpt4o-prod", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.AuthenticationError):
        azure(fake, key="wrong-key").chat.completions.create(**ask)
    with pytest.raises(openai.NotFoundError) as missing:
        azure(fake).chat.completions.create(**(ask | {"model": "no-such-deployment"}))
    assert missing.value.code == "DeploymentNotFound"
    with pytest.raises(openai.BadRequestError) as unknown_version:
        azure(fake, version="2019-01-01").chat.completions.create(**ask)
    assert unknown_version.value.message.endswith("API version not supported")
    with pytest.raises(openai.BadRequestError) as wrong_operation:
        azure(fake).chat.completions.create(**(ask | {"model": "embed-small"}))
    assert wrong_operation.value.code == "OperationNotSupported"
    with pytest.raises(openai.NotFoundError):  # no api-version at all: Azure's plain 404
        OpenAI(base_url=f"{fake.endpoint}/openai/deployments/gpt4o-prod", api_key=fake.api_key, timeout=10,
               max_retries=0).chat.completions.create(**ask)
