"""The `gemini` channel type's provider in-process, with a real aiohttp session, against
the fake Gemini API on 127.0.0.1 (tests/fakes/gemini.py): the exact upstream requests for
chat (plain and streamed) and embeddings, the API version a channel chooses, image URLs
fetched by st-ai under its address rules, and each class of Google's errors. Names
resolve only through a stub resolver; nothing leaves 127.0.0.1."""
from __future__ import annotations

import base64

import aiohttp
import pytest

from server.errors import GatewayError
from server.providers.gemini.chat import GeminiChat
from server.providers.gemini.embeddings import GeminiEmbeddings
from server.providers.interface import Upstream
from server.providers.registry import discover
from server.safe_fetch import SafeFetch
from server.store.channels import Channel
from server.url_guard import UrlGuard
from tests.fakes.gemini import FakeGemini, GoogleFault, Reply, vector
from tests.fakes.image_host import ImageHost
from tests.fakes.resolver import StubResolver
from tests.fakes.sample_media import sample_png

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-2.5-flash"
PNG = sample_png("gemini test image", 16, 16)
PNG_B64 = base64.b64encode(PNG).decode()
HI = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(scope="module")
def fake():
    server = FakeGemini().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def image_host():
    server = ImageHost(PNG).start()
    yield server
    server.stop()


@pytest.fixture
async def upstream(fake):
    fake.reset()
    resolver = StubResolver({"images.example": ["127.0.0.1"], "intranet.example": ["10.0.0.7"],
                             "metadata.example": ["169.254.169.254"]})
    async with aiohttp.ClientSession() as session:
        yield Upstream(http=session, files=SafeFetch(session, UrlGuard(resolver)))


def channel(fake: FakeGemini, base_url: str | None = None, key: str | None = None,
            api_version: str | None = None) -> Channel:
    return Channel(id=1, name="gemini-test", type="gemini", base_url=base_url or fake.base_url,
                   key=fake.api_key if key is None else key, models=(MODEL,), api_version=api_version)


def test_the_gemini_type_registers_chat_and_embeddings_at_googles_address():
    spec = discover()["gemini"]
    assert spec.default_base_url == "https://generativelanguage.googleapis.com"
    assert spec.chat is GeminiChat and spec.embeddings is GeminiEmbeddings and spec.images is None


async def test_a_plain_completion_sends_the_exact_request_with_the_key_header(fake, upstream):
    fake.replies.append(Reply.text("Hello", "!", promptTokenCount=4, candidatesTokenCount=2, totalTokenCount=6))
    answer = await GeminiChat(upstream).complete(channel(fake), {**HI, "temperature": 0.3, "max_tokens": 20}, 10)
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hello!"},
                                  "finish_reason": "stop"}]
    assert answer["usage"]["prompt_tokens"] == 4 and answer["usage"]["completion_tokens"] == 2
    (call,) = fake.received
    assert call.path == f"/v1beta/models/{MODEL}:generateContent" and call.query == ""
    assert call.headers["x-goog-api-key"] == fake.api_key and "Authorization" not in call.headers
    assert call.headers["Content-Type"] == "application/json"
    assert call.body == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
                         "generationConfig": {"temperature": 0.3, "maxOutputTokens": 20}}


@pytest.mark.parametrize("base, version, path", [
    ("", "v1", "/v1/models/gemini-2.5-flash:generateContent"),
    ("/v1beta", None, "/v1beta/models/gemini-2.5-flash:generateContent"),
    ("/v1alpha/", None, "/v1alpha/models/gemini-2.5-flash:generateContent"),
    ("/v1beta", "v1", "/v1/models/gemini-2.5-flash:generateContent"),
])
async def test_the_channels_api_version_chooses_the_path(fake, upstream, base, version, path):
    await GeminiChat(upstream).complete(channel(fake, fake.base_url + base, api_version=version), HI, 10)
    assert [r.path for r in fake.received] == [path]


async def test_a_stream_is_read_event_by_event_with_usage_last(fake, upstream):
    fake.replies.append(Reply.text("one ", "two", promptTokenCount=3, candidatesTokenCount=2, totalTokenCount=5))
    body = {**HI, "stream": True, "stream_options": {"include_usage": True}}
    chunks = [c async for c in GeminiChat(upstream).stream(channel(fake), body, 10)]
    assert [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]] == ["one ", "two", None]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 5
    (call,) = fake.received
    assert call.path == f"/v1beta/models/{MODEL}:streamGenerateContent" and call.query == "alt=sse"
    assert call.headers["Accept"] == "text/event-stream"
    assert call.body == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


async def test_an_error_event_mid_stream_ends_it_with_a_gateway_error(fake, upstream):
    fake.replies.append(Reply.text("one ", "two ", "three"))
    fake.stream_error_after = 1
    got = []
    with pytest.raises(GatewayError) as caught:
        async for chunk in GeminiChat(upstream).stream(channel(fake), {**HI, "stream": True}, 10):
            got.append(chunk)
    assert [c["choices"][0]["delta"].get("content") for c in got] == ["one "]
    assert caught.value.http_status == 502 and caught.value.retryable


async def test_an_image_url_is_fetched_by_st_ai_and_sent_inline_without_the_key(fake, upstream, image_host):
    image_host.received.clear()
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": f"http://images.example:{image_host.port}/cat.png"}}]}]}
    await GeminiChat(upstream).complete(channel(fake), body, 10)
    (call,) = fake.received
    assert call.body["contents"][0]["parts"] == [{"text": "What is it?"},
                                                 {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]
    (fetched,) = image_host.received
    assert "x-goog-api-key" not in fetched


async def test_an_image_served_without_its_type_is_known_by_its_bytes(fake, upstream, image_host):
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"http://images.example:{image_host.port}/photo.bin"}}]}]}
    await GeminiChat(upstream).complete(channel(fake), body, 10)
    (call,) = fake.received
    assert call.body["contents"][0]["parts"] == [{"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]


@pytest.mark.parametrize("url, words", [
    ("http://intranet.example/x.png", "st-ai's address rules"),
    ("http://images.example:{port}/missing", "did not serve an image"),
    ("http://metadata.example/latest.png", "st-ai's address rules"),
    ("http://images.example:{port}/page.html", "did not serve an image"),
])
async def test_an_image_url_st_ai_will_not_use_is_a_400_naming_the_field_and_nothing_is_sent(
        fake, upstream, image_host, url, words):
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url.format(port=image_host.port)}}]}]}
    with pytest.raises(GatewayError) as caught:
        await GeminiChat(upstream).complete(channel(fake), body, 10)
    assert (caught.value.http_status, caught.value.param) == (400, "messages[0].content[0].image_url.url")
    assert words in caught.value.message
    assert fake.received == []


@pytest.mark.parametrize("fault, expected", [
    (GoogleFault(400, "INVALID_ARGUMENT", "Request contains an invalid argument."), (400, "invalid_request", False)),
    (GoogleFault(403, "PERMISSION_DENIED", "Permission denied."), (502, "upstream_error", True)),
    (GoogleFault(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
     (502, "upstream_error", True)),
    (GoogleFault(404, "NOT_FOUND", "Not found."), (404, "model_not_found", False)),
    (GoogleFault(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", retry_delay="12s"), (429, "upstream_rate_limited", True)),
    (GoogleFault(500, "INTERNAL", "Internal error."), (502, "upstream_error", True)),
    (GoogleFault(503, "UNAVAILABLE", "Overloaded."), (502, "upstream_error", True)),
    (GoogleFault(504, "DEADLINE_EXCEEDED", "Deadline exceeded."), (502, "upstream_error", True)),
])
async def test_each_class_of_googles_errors(fake, upstream, fault, expected):
    for stream in (False, True):
        fake.fail_next.append(fault)
        with pytest.raises(GatewayError) as caught:
            if stream:
                [c async for c in GeminiChat(upstream).stream(channel(fake), {**HI, "stream": True}, 10)]
            else:
                await GeminiChat(upstream).complete(channel(fake), HI, 10)
        assert (caught.value.http_status, caught.value.code, caught.value.retryable) == expected, caught.value
        if fault.code == "RESOURCE_EXHAUSTED":
            assert caught.value.retry_after == 12.0


async def test_a_wrong_key_is_the_channels_fault_and_never_leaks(fake, upstream):
    with pytest.raises(GatewayError) as caught:
        await GeminiChat(upstream).complete(channel(fake, key="AIzaSyWRONG0key"), HI, 10)
    assert (caught.value.http_status, caught.value.channel_fault) == (502, "credentials")
    assert "AIzaSyWRONG0key" not in caught.value.message and fake.base_url not in caught.value.message


async def test_a_blocked_prompt_is_a_400_content_filter(fake, upstream):
    for stream in (False, True):
        fake.replies.append(Reply(block_reason="SAFETY"))
        with pytest.raises(GatewayError) as caught:
            if stream:
                [c async for c in GeminiChat(upstream).stream(channel(fake), {**HI, "stream": True}, 10)]
            else:
                await GeminiChat(upstream).complete(channel(fake), HI, 10)
        assert (caught.value.http_status, caught.value.code) == (400, "content_filter")


async def test_embeddings_go_through_batch_embed_contents_and_carry_no_usage_gemini_never_counted(fake, upstream):
    answer = await GeminiEmbeddings(upstream).embed(
        channel(fake), {"model": "gemini-embedding-001", "input": ["first text", "second"], "dimensions": 16}, 10)
    assert [d["embedding"] for d in answer["data"]] == [vector("first text", 16), vector("second", 16)]
    assert [d["index"] for d in answer["data"]] == [0, 1] and answer["object"] == "list"
    assert "usage" not in answer  # the relay core counts the tokens and books them as an estimate
    (call,) = fake.received
    assert call.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert call.headers["x-goog-api-key"] == fake.api_key
    assert call.body == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "first text"}]},
         "outputDimensionality": 16},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "second"}]},
         "outputDimensionality": 16}]}


async def test_many_inputs_are_embedded_in_batches_of_a_hundred_in_order(fake, upstream):
    texts = [f"text {i}" for i in range(230)]
    answer = await GeminiEmbeddings(upstream).embed(
        channel(fake), {"model": "text-embedding-004", "input": texts}, 10)
    assert [len(r.body["requests"]) for r in fake.received] == [100, 100, 30]
    assert answer["data"][229]["embedding"] == vector("text 229", 768)
    assert "outputDimensionality" not in fake.received[0].body["requests"][0]


async def test_token_arrays_are_a_400_and_embedding_errors_map_like_chats(fake, upstream):
    with pytest.raises(GatewayError) as caught:
        await GeminiEmbeddings(upstream).embed(channel(fake), {"model": "text-embedding-004", "input": [[1, 2]]}, 10)
    assert (caught.value.http_status, caught.value.param) == (400, "input")
    fake.fail_next.append(GoogleFault(429, "RESOURCE_EXHAUSTED", "Quota exceeded."))
    with pytest.raises(GatewayError) as caught:
        await GeminiEmbeddings(upstream).embed(channel(fake), {"model": "text-embedding-004", "input": "x"}, 10)
    assert caught.value.code == "upstream_rate_limited"


def test_st_ai_channel_add_and_test_a_gemini_channel(tmp_path, fake):
    from tests.test_cli import run

    fake.reset()
    db = str(tmp_path / "cli.db")
    added = run("channel", "add", "--name", "gemini", "--type", "gemini", "--key", "AIzaSyOPERATOR0key0000",
                "--models", f"{MODEL},gemini-embedding-001", db=db)
    assert added.code == 0, added.err
    listing = run("channel", "list", db=db)
    assert "generativelanguage.googleapis.com" in listing.out and "AIzaSyOPERATOR0key0000" not in listing.out
    for name, key, code in (("local", fake.api_key, 0), ("local-wrong", "AIzaSyWRONG0key000000", 1)):
        assert run("channel", "add", "--name", name, "--type", "gemini", "--key", key, "--base-url", fake.base_url,
                   "--models", MODEL, db=db).code == 0
        tested = run("channel", "test", name, db=db)
        assert tested.code == code, (tested.out, tested.err)
        assert key not in tested.out + tested.err
    assert [r.headers["x-goog-api-key"] for r in fake.received] == [fake.api_key, "AIzaSyWRONG0key000000"]
    assert fake.received[0].path == f"/v1beta/models/{MODEL}:generateContent"
