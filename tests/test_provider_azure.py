"""The `azure` provider on its own: where its calls go and how they are signed (pure),
how Azure's errors and filter annotations read (pure, on Azure's documented bodies),
and its chat, images and embeddings calls with a real aiohttp session against the fake
Azure OpenAI resource on 127.0.0.1 (tests/fakes/azure_openai.py)."""
from __future__ import annotations

import asyncio
import base64
import struct

import aiohttp
import orjson
import pytest

from server.errors import GatewayError
from server.providers.azure import PROVIDER, errors, filters, wire
from server.providers.azure.chat import AzureChat
from server.providers.azure.embeddings import AzureEmbeddings
from server.providers.azure.images import AzureImages
from server.providers.interface import Upstream
from server.providers.registry import discover
from server.store.channels import Channel
from tests.fakes.azure_openai import FILTERED_PROMPT, FakeAzureOpenAI, rate_limited
from tests.fakes.faults import Fault

pytestmark = pytest.mark.timeout(60)

CALL_SECONDS = 20
BASE = "https://contoso.openai.azure.com"


def channel(base_url: str = BASE, key: str = "azure-key-0123456789abcdef", api_version: str | None = None,
            model_map: dict[str, str] | None = None) -> Channel:
    return Channel(id=7, name="azure-east", type="azure", base_url=base_url, key=key, models=("gpt-4o",),
                   model_map=model_map or {}, api_version=api_version)


# -- the spec ------------------------------------------------------------------------------

def test_azure_is_a_channel_type_for_chat_images_and_embeddings_with_no_default_base_url():
    spec = discover()["azure"]
    assert spec is PROVIDER
    assert spec.default_base_url is None and not spec.key_optional
    assert spec.chat is AzureChat and spec.images is AzureImages and spec.embeddings is AzureEmbeddings
    assert spec.video is None


# -- where calls go ------------------------------------------------------------------------

def test_a_call_goes_to_the_deployment_with_the_current_ga_version_by_default():
    assert wire.url(channel(), "chat/completions", "gpt4o-prod") == (
        f"{BASE}/openai/deployments/gpt4o-prod/chat/completions?api-version={wire.DEFAULT_API_VERSION}")
    assert wire.DEFAULT_API_VERSION == "2024-10-21"


def test_the_channels_api_version_is_used_as_given():
    assert wire.url(channel(api_version="2025-04-01-preview"), "images/generations", "dalle3") == (
        f"{BASE}/openai/deployments/dalle3/images/generations?api-version=2025-04-01-preview")


def test_api_version_v1_calls_the_v1_api_without_a_dated_version():
    for version in ("v1", "V1"):
        assert wire.url(channel(api_version=version), "embeddings", "embed-small") == f"{BASE}/openai/v1/embeddings"


def test_a_base_url_given_with_openai_or_a_trailing_slash_is_the_same_resource():
    for base in (f"{BASE}/", f"{BASE}/openai", f"{BASE}/openai/"):
        assert wire.url(channel(base), "chat/completions", "d").startswith(f"{BASE}/openai/deployments/d/")


def test_a_deployment_name_and_version_are_escaped_in_the_url():
    url = wire.url(channel(api_version="2024-10-21&x=1"), "chat/completions", "my dep/../x")
    assert url == f"{BASE}/openai/deployments/my%20dep%2F..%2Fx/chat/completions?api-version=2024-10-21%26x%3D1"


def test_the_key_travels_in_the_api_key_header_only():
    sent = wire.headers(channel(), "text/event-stream", json_body=True)
    assert sent == {"Accept": "text/event-stream", "Content-Type": "application/json",
                    "api-key": "azure-key-0123456789abcdef"}


# -- Azure's errors ------------------------------------------------------------------------

def error(status: int, body: dict, headers: dict | None = None, endpoint: bool = True) -> GatewayError:
    return errors.from_response(status, orjson.dumps(body), channel(), endpoint, headers)


CHAT_FILTER = {"error": {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
    "type": None, "param": "prompt", "code": "content_filter", "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
        "hate": {"filtered": False, "severity": "safe"}, "self_harm": {"filtered": True, "severity": "medium"},
        "jailbreak": {"filtered": True, "detected": True}}}}}
IMAGE_FILTER = {"error": {
    "code": "content_policy_violation", "message": "Your request was rejected as a result of our safety system.",
    "inner_error": {"code": "ResponsibleAIPolicyViolation", "content_filter_results": {
        "violence": {"filtered": True, "severity": "high"}, "sexual": {"filtered": False, "severity": "safe"}}}}}
OLD_IMAGE_FILTER = {"error": {"code": "contentFilter", "message": "Your task failed as a result of our safety system."}}


@pytest.mark.parametrize("body, categories", [
    (CHAT_FILTER, "(self harm, jailbreak)"), (IMAGE_FILTER, "(violence)"), (OLD_IMAGE_FILTER, "filter.")],
    ids=["chat", "images", "images-older"])
def test_a_content_filter_refusal_is_a_clear_400_content_filter_naming_the_categories(body, categories):
    refused = error(400, body)
    assert (refused.http_status, refused.code, refused.type) == (400, "content_filter", "invalid_request_error")
    assert (refused.retryable, refused.channel_fault) == (False, None)
    assert refused.message.startswith("The request was refused by the upstream's content filter")
    assert categories in refused.message
    assert "Azure" not in refused.message


@pytest.mark.parametrize("message", ["API version not supported",
                                     "Model {modelName} is enabled only for api versions 2024-12-01-preview and later"])
def test_an_api_version_the_resource_refuses_is_the_channels_setup_not_the_request(message):
    refused = error(400, {"error": {"code": "BadRequest", "message": message}})
    assert (refused.http_status, refused.retryable, refused.channel_fault) == (502, True, "misconfigured")


def test_a_missing_deployment_is_a_misconfigured_channel():
    refused = error(404, {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this "
                                    "resource does not exist."}})
    assert (refused.http_status, refused.channel_fault) == (502, "misconfigured")


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_is_the_channels_credentials(status):
    refused = error(status, {"error": {"code": str(status), "message": "Access denied due to invalid "
                                       "subscription key or wrong API endpoint."}})
    assert (refused.http_status, refused.channel_fault, refused.retryable) == (502, "credentials", True)


def test_a_429_keeps_the_channel_out_for_its_retry_after_ms():
    limited = error(429, {"error": {"code": "429", "message": "Please retry after 7 seconds."}},
                    {"retry-after": "7", "retry-after-ms": "6500"})
    assert (limited.http_status, limited.retryable, limited.retry_after) == (429, True, 6.5)


def test_any_other_400_is_the_clients_and_keeps_azures_words():
    refused = error(400, {"error": {"code": "OperationNotSupported", "message": "The chatCompletion operation "
                                    "does not work with the specified model."}})
    assert (refused.http_status, refused.retryable, refused.channel_fault) == (400, False, None)
    assert "chatCompletion operation" in refused.message


# -- Azure's filter annotations --------------------------------------------------------------

SAFE = {"hate": {"filtered": False, "severity": "safe"}}


def test_the_prompt_filter_results_chunk_that_opens_a_stream_is_dropped():
    assert filters.chunk({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                          "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": SAFE}]}) is None


def test_an_annotation_only_chunk_of_the_asynchronous_filter_is_dropped():
    assert filters.chunk({"id": "", "object": "", "choices": [{
        "index": 0, "finish_reason": None, "content_filter_results": SAFE,
        "content_filter_offsets": {"check_offset": 0, "start_offset": 0, "end_offset": 20}}]}) is None


def test_a_content_chunk_keeps_everything_but_the_annotations():
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [
        {"index": 0, "delta": {"content": "Hi"}, "finish_reason": None, "logprobs": None,
         "content_filter_results": SAFE}]}
    assert filters.chunk(chunk) == {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o",
                                    "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None,
                                                 "logprobs": None}]}


def test_the_finish_chunk_and_the_usage_chunk_stay():
    finish = {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter",
                                      "content_filter_results": {"violence": {"filtered": True}}}]}
    usage = {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    assert filters.chunk(finish) == {"id": "c", "choices": [{"index": 0, "delta": {},
                                                             "finish_reason": "content_filter"}]}
    assert filters.chunk(usage) == usage


def test_a_whole_answer_and_an_images_answer_lose_the_annotations_only():
    answer = {"id": "c", "prompt_filter_results": [], "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop",
         "content_filter_results": SAFE}], "usage": {"prompt_tokens": 1}}
    assert filters.answer(answer) == {"id": "c", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1}}
    images = {"created": 1, "data": [{"url": "https://x/y.png", "revised_prompt": "r",
                                      "content_filter_results": SAFE, "prompt_filter_results": SAFE}]}
    assert filters.image_answer(images) == {"created": 1, "data": [{"url": "https://x/y.png", "revised_prompt": "r"}]}


# -- the calls, against the fake ----------------------------------------------------------------

@pytest.fixture(scope="module")
def fake():
    server = FakeAzureOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
async def upstream():
    async with aiohttp.ClientSession() as http:
        yield Upstream(http=http)


def at(fake: FakeAzureOpenAI, **kw) -> Channel:
    return channel(fake.endpoint, fake.api_key, **kw)


async def bounded(call):
    return await asyncio.wait_for(call, CALL_SECONDS)


async def collect(stream) -> list[dict]:
    return [chunk async for chunk in stream]


async def test_a_streams_first_chunk_is_the_role_chunk_and_no_chunk_carries_annotations(fake, upstream):
    body = {"model": "gpt4o-prod", "messages": [{"role": "user", "content": "one two"}], "stream": True,
            "stream_options": {"include_usage": True}}
    chunks = await bounded(collect(AzureChat(upstream).stream(at(fake), body, CALL_SECONDS)))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Echo: one two"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    assert not any(b"filter" in orjson.dumps(c) for c in chunks)


async def test_a_plain_answer_comes_without_annotations_from_the_v1_api(fake, upstream):
    body = {"model": "gpt4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    answer = await bounded(AzureChat(upstream).complete(at(fake, api_version="v1"), body, CALL_SECONDS))
    assert answer["choices"][0]["message"]["content"] == "Echo: Hi"
    assert b"filter" not in orjson.dumps(answer)
    sent = fake.received[-1]
    assert (sent.path, sent.query, sent.body) == ("/openai/v1/chat/completions", {}, body)
    assert sent.headers["api-key"] == fake.api_key and "Authorization" not in sent.headers


async def test_a_filtered_prompt_is_a_400_content_filter_from_the_provider(fake, upstream):
    body = {"model": "gpt4o-prod", "messages": [{"role": "user", "content": f"about {FILTERED_PROMPT}"}]}
    with pytest.raises(GatewayError) as caught:
        await bounded(AzureChat(upstream).complete(at(fake), body, CALL_SECONDS))
    assert (caught.value.http_status, caught.value.code) == (400, "content_filter")
    assert "(violence)" in caught.value.message


async def test_a_rate_limited_stream_is_retryable_with_its_retry_after_ms(fake, upstream):
    fake.faults.add(fake.deployment_path("gpt4o-prod", "chat/completions"), rate_limited(2500))
    body = {"model": "gpt4o-prod", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    with pytest.raises(GatewayError) as caught:
        await bounded(collect(AzureChat(upstream).stream(at(fake), body, CALL_SECONDS)))
    assert (caught.value.http_status, caught.value.retryable, caught.value.retry_after) == (429, True, 2.5)


async def test_an_image_comes_back_without_annotations(fake, upstream):
    answer = await bounded(AzureImages(upstream).generate(
        at(fake), {"model": "dalle3", "prompt": "a lighthouse", "response_format": "b64_json"}, CALL_SECONDS))
    assert set(answer["data"][0]) == {"b64_json", "revised_prompt"}
    assert fake.received[-1].path == "/openai/deployments/dalle3/images/generations"


async def test_embeddings_as_floats_with_dimensions(fake, upstream):
    body = {"model": "embed-small", "input": ["first text", "second"], "dimensions": 16}
    answer = await bounded(AzureEmbeddings(upstream).embed(at(fake), body, CALL_SECONDS))
    assert [(d["index"], len(d["embedding"])) for d in answer["data"]] == [(0, 16), (1, 16)]
    assert answer["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    sent = fake.received[-1]
    assert (sent.path, sent.query, sent.body) == ("/openai/deployments/embed-small/embeddings",
                                                  {"api-version": "2024-10-21"}, body)


async def test_embeddings_as_base64_and_of_token_arrays(fake, upstream):
    embed = AzureEmbeddings(upstream).embed
    floats = await bounded(embed(at(fake), {"model": "embed-small", "input": [[1, 2, 3]], "dimensions": 4},
                                 CALL_SECONDS))
    packed = await bounded(embed(at(fake), {"model": "embed-small", "input": [[1, 2, 3]], "dimensions": 4,
                                            "encoding_format": "base64"}, CALL_SECONDS))
    assert struct.unpack("<4f", base64.b64decode(packed["data"][0]["embedding"])) == pytest.approx(
        floats["data"][0]["embedding"])


async def test_embeddings_refused_by_the_model_are_the_clients_400(fake, upstream):
    with pytest.raises(GatewayError) as caught:
        await bounded(AzureEmbeddings(upstream).embed(
            at(fake), {"model": "embed-ada", "input": "x", "dimensions": 8}, CALL_SECONDS))
    assert (caught.value.http_status, caught.value.retryable) == (400, False)
    assert "dimensions" in caught.value.message


async def test_embeddings_from_a_missing_deployment_or_with_a_wrong_key(fake, upstream):
    embed = AzureEmbeddings(upstream).embed
    with pytest.raises(GatewayError) as missing:
        await bounded(embed(at(fake), {"model": "no-such-deployment", "input": "x"}, CALL_SECONDS))
    assert missing.value.channel_fault == "misconfigured"
    with pytest.raises(GatewayError) as rejected:
        await bounded(embed(channel(fake.endpoint, "wrong-key"), {"model": "embed-small", "input": "x"},
                            CALL_SECONDS))
    assert rejected.value.channel_fault == "credentials"


@pytest.mark.parametrize("answer", [
    {"object": "list", "data": "nope"}, {"object": "list"}, {"data": [{"embedding": [1, "x"]}]},
    {"data": [{"embedding": None}]}, {"data": [None]}])
async def test_an_embeddings_answer_without_embeddings_is_a_retryable_502(fake, upstream, answer):
    fake.faults.add(fake.deployment_path("embed-small", "embeddings"), Fault("status", 200, orjson.dumps(answer)))
    with pytest.raises(GatewayError) as caught:
        await bounded(AzureEmbeddings(upstream).embed(at(fake), {"model": "embed-small", "input": "x"},
                                                      CALL_SECONDS))
    assert (caught.value.http_status, caught.value.retryable) == (502, True)
