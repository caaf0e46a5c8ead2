"""Every provider's failures read the same to the attempt loop. Each provider is called
directly (it is the unit here) with real HTTP to its fake on 127.0.0.1, whose answers
tests/fakes/faults.py bends: a rejected key is the channel's fault, a rate limit or an
overloaded upstream is retryable and carries the upstream's Retry-After, a client fault
is relayed once with the upstream's words scrubbed, an answer st-ai cannot read is a
retryable 502 (never another exception), and the channel's connect limit is honoured."""
from __future__ import annotations

import asyncio
import email.utils
import itertools
import socket
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiohttp
import orjson
import pytest

from server.errors import GatewayError
from server.providers.azure.chat import AzureChat
from server.providers.azure.embeddings import AzureEmbeddings
from server.providers.azure.images import AzureImages
from server.providers.anthropic.chat import AnthropicChat
from server.providers.hailuo.client import HailuoVideo
from server.providers.interface import TaskState, Upstream, VideoRequest
from server.providers.kling.client import KlingVideo
from server.providers.openai.chat import OpenAIChat
from server.providers.openai.errors import from_stream_event
from server.providers.openai.images import OpenAIImages
from server.providers.openai.videos import OpenAIVideos
from server.providers.runway.client import RunwayVideo
from server.providers.seedance.client import SeedanceVideo
from server.providers.veo.client import VeoVideo
from server.providers.wan.client import WanVideo
from server.store.channels import Channel, Timeouts
from tests.fakes.azure_openai import FakeAzureOpenAI
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.faults import Fault
from tests.fakes.hailuo import FakeHailuo
from tests.fakes.kling import FakeKling
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.runway import FakeRunway
from tests.fakes.seedance import FakeSeedance
from tests.fakes.veo import FakeVeo
from tests.fakes.wan import FakeWan

pytestmark = pytest.mark.timeout(60)

CALL_SECONDS = 20  # every provider call here is bounded, whatever it does
IMAGE_URL = "https://example.com/cat.png"


@dataclass(frozen=True)
class Case:
    """One provider: its fake, how st-ai calls it, and where those calls land."""
    name: str
    fake: Callable[[], Any]
    key: Callable[[Any], str]
    wrong_key: str
    provider: Callable[[Upstream], Any]
    # the call that starts work (a video submission, a chat completion) and its path
    start: Callable[[Any, Channel], Awaitable[object]]
    start_path: str
    # a client fault as this provider words it: (status, body) around the given words
    refusal: Callable[[str], tuple[int, dict]]
    # a documented answer to the start (None: its shape is the relay's to read, not the provider's)
    started: dict | None = None
    base_path: str = ""
    # a poll of a task st-ai keeps (video providers), its path, and a documented answer
    poll_id: str | None = None
    poll_path: str | None = None
    answer: dict | None = None

    def channel(self, fake: Any, key: str | None = None, base_url: str | None = None,
                timeouts: Timeouts = Timeouts()) -> Channel:
        return Channel(id=1, name=f"{self.name}-channel", type=self.name.split("-")[0],
                       base_url=base_url or fake.base_url + self.base_path, key=key or self.key(fake),
                       models=("m",), timeouts=timeouts)


def _video(model: str, **kw) -> Callable[[Any, Channel], Awaitable[object]]:
    async def start(provider, channel: Channel) -> object:
        return await provider.submit(channel, provider.prepare(channel, VideoRequest(model=model, prompt="a cat surfing",
                                                                                     **kw)))
    return start


async def _chat(provider: OpenAIChat, channel: Channel) -> object:
    return await provider.complete(channel, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                                   None)


async def _claude(provider: AnthropicChat, channel: Channel) -> object:
    return await provider.complete(channel, {"model": "claude-haiku-4-5",
                                             "messages": [{"role": "user", "content": "hi"}]}, None)


async def _claude_native(provider: AnthropicChat, channel: Channel) -> object:
    """A Messages body passed through (the Messages API's route to an anthropic channel)."""
    return await provider.native(channel, "messages", {"model": "claude-haiku-4-5", "max_tokens": 50,
                                                       "messages": [{"role": "user", "content": "hi"}]}, None)


async def _claude_count(provider: AnthropicChat, channel: Channel) -> object:
    return await provider.count_tokens(channel, "messages", {"model": "claude-haiku-4-5",
                                                             "messages": [{"role": "user", "content": "hi"}]}, None)


async def _image(provider: OpenAIImages, channel: Channel) -> object:
    return await provider.generate(channel, {"model": "gpt-image-1", "prompt": "a cat"}, None)


async def _azure_chat(provider: AzureChat, channel: Channel) -> object:
    return await provider.complete(channel, {"model": "gpt4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                                   None)


async def _azure_image(provider: AzureImages, channel: Channel) -> object:
    return await provider.generate(channel, {"model": "dalle3", "prompt": "a cat"}, None)


async def _azure_embed(provider: AzureEmbeddings, channel: Channel) -> object:
    return await provider.embed(channel, {"model": "embed-small", "input": "a cat"}, None)


def _azure_refusal(words: str) -> tuple[int, dict]:
    return 400, {"error": {"code": "BadRequest", "message": words, "param": None, "type": None}}


def _openai_refusal(words: str) -> tuple[int, dict]:
    return 400, {"error": {"message": words, "type": "invalid_request_error", "param": None, "code": None}}


OPENAI_VIDEO = {"id": "video_1", "object": "video", "status": "completed", "progress": 100, "model": "sora-2",
                "created_at": 1764000000, "completed_at": 1764000100, "seconds": "4", "size": "720x1280",
                "error": None}
KLING_TASK = {"code": 0, "message": "SUCCEED", "request_id": "r-1", "data": {
    "task_id": "t1", "task_status": "succeed", "task_status_msg": "", "created_at": 1764000000000,
    "updated_at": 1764000100000, "task_result": {"videos": [{"id": "v1", "url": "https://cdn.example/v.mp4",
                                                            "duration": "5.042"}]}}}
RUNWAY_TASK = {"id": "t1", "createdAt": "2026-11-29T12:00:00.000Z", "status": "SUCCEEDED",
               "output": ["https://cdn.example/v.mp4"]}
VEO_OPERATION = {"name": "models/veo-3.1-generate-preview/operations/op1", "done": True, "response": {
    "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
    "generateVideoResponse": {"generatedSamples": [{"video": {"uri": "https://cdn.example/v"}}]}}}
SEEDANCE_TASK = {"id": "cgt-1", "model": "seedance-1-0-pro-250528", "status": "succeeded", "created_at": 1764000000,
                 "updated_at": 1764000100, "duration": 5, "content": {"video_url": "https://cdn.example/v.mp4"},
                 "usage": {"completion_tokens": 108900, "total_tokens": 108900}}
WAN_TASK = {"request_id": "r-1", "output": {"task_id": "t1", "task_status": "SUCCEEDED",
                                            "submit_time": "2026-11-29 20:00:00.000",
                                            "video_url": "https://cdn.example/v.mp4",
                                            "end_time": "2026-11-29 20:01:00.000"},
            "usage": {"video_duration": 5, "video_count": 1}}
CLAUDE_MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                  "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "toolu_1", "name": "f",
                                                             "input": {"a": 1}}],
                  "stop_reason": "tool_use", "stop_sequence": None,
                  "usage": {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 1,
                            "cache_creation_input_tokens": 1}}
HAILUO_TASK = {"task_id": "t1", "status": "Success", "file_id": "123", "video_width": 1280, "video_height": 720,
               "base_resp": {"status_code": 0, "status_msg": "success"}}

CASES = [
    Case("openai-chat", lambda: FakeOpenAI("sk-upstream-failures").start(), lambda f: f.api_key, "sk-wrong",
         lambda up: OpenAIChat(up), _chat, "/v1/chat/completions", _openai_refusal),
    Case("openai-images", lambda: FakeOpenAI("sk-upstream-failures").start(), lambda f: f.api_key, "sk-wrong",
         lambda up: OpenAIImages(up), _image, "/v1/images/generations", _openai_refusal,
         started={"created": 1764000000, "data": [{"url": "https://cdn.example/i.png", "revised_prompt": "a cat"}]}),
    Case("openai-videos", lambda: FakeOpenAI("sk-upstream-failures").start(), lambda f: f.api_key, "sk-wrong",
         lambda up: OpenAIVideos(up), _video("sora-2"), "/v1/videos", _openai_refusal,
         started=OPENAI_VIDEO | {"status": "queued", "progress": 0},
         poll_id="video_1", poll_path="/v1/videos/video_1", answer=OPENAI_VIDEO),
    Case("azure-chat", lambda: FakeAzureOpenAI().start(), lambda f: f.api_key, "azure-wrong-key",
         lambda up: AzureChat(up), _azure_chat, "/openai/deployments/gpt4o-mini/chat/completions", _azure_refusal,
         started={"id": "chatcmpl-1", "object": "chat.completion", "created": 1764000000, "model": "gpt-4o",
                  "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop",
                               "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}]}),
    Case("azure-images", lambda: FakeAzureOpenAI().start(), lambda f: f.api_key, "azure-wrong-key",
         lambda up: AzureImages(up), _azure_image, "/openai/deployments/dalle3/images/generations", _azure_refusal,
         started={"created": 1764000000, "data": [{"url": "https://dalle.blob.core.windows.net/i.png",
                                                   "revised_prompt": "a cat", "content_filter_results": {}}]}),
    Case("azure-embeddings", lambda: FakeAzureOpenAI().start(), lambda f: f.api_key, "azure-wrong-key",
         lambda up: AzureEmbeddings(up), _azure_embed, "/openai/deployments/embed-small/embeddings", _azure_refusal,
         started={"object": "list", "model": "text-embedding-3-small",
                  "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                  "usage": {"prompt_tokens": 2, "total_tokens": 2}}),
    Case("anthropic", lambda: FakeAnthropic().start(), lambda f: f.key, "sk-ant-wrong",
         lambda up: AnthropicChat(up), _claude, "/v1/messages",
         lambda words: (400, {"type": "error", "error": {"type": "invalid_request_error", "message": words}}),
         started=CLAUDE_MESSAGE),
    Case("anthropic-native", lambda: FakeAnthropic().start(), lambda f: f.key, "sk-ant-wrong",
         lambda up: AnthropicChat(up), _claude_native, "/v1/messages",
         lambda words: (400, {"type": "error", "error": {"type": "invalid_request_error", "message": words}}),
         started=CLAUDE_MESSAGE),
    Case("anthropic-count", lambda: FakeAnthropic().start(), lambda f: f.key, "sk-ant-wrong",
         lambda up: AnthropicChat(up), _claude_count, "/v1/messages/count_tokens",
         lambda words: (400, {"type": "error", "error": {"type": "invalid_request_error", "message": words}}),
         started={"input_tokens": 12}),
    Case("kling", lambda: FakeKling().start(), lambda f: f.key, "AKwrong:SKwrong",
         lambda up: KlingVideo(up), _video("kling-v1"), "/v1/videos/text2video",
         lambda words: (400, {"code": 1201, "message": words, "request_id": "r"}),
         started={"code": 0, "message": "SUCCEED", "request_id": "r-1", "data": {
             "task_id": "t1", "task_status": "submitted", "created_at": 1764000000000, "updated_at": 1764000000000}},
         poll_id="text2video:t1", poll_path="/v1/videos/text2video/t1", answer=KLING_TASK),
    Case("runway", lambda: FakeRunway().start(), lambda f: f.api_key, "key_wrong",
         lambda up: RunwayVideo(up), _video("gen4_turbo", image=IMAGE_URL), "/v1/image_to_video",
         lambda words: (400, {"error": words}), started={"id": "t1"},
         poll_id="t1", poll_path="/v1/tasks/t1", answer=RUNWAY_TASK),
    Case("veo", lambda: FakeVeo().start(), lambda f: f.api_key, "AIzaWRONG",
         lambda up: VeoVideo(up), _video("veo-3.1-generate-preview"),
         "/v1beta/models/veo-3.1-generate-preview:predictLongRunning",
         lambda words: (400, {"error": {"code": 400, "message": words, "status": "INVALID_ARGUMENT"}}),
         started={"name": "models/veo-3.1-generate-preview/operations/op1"},
         poll_id="models/veo-3.1-generate-preview/operations/op1@1764000000000",
         poll_path="/v1beta/models/veo-3.1-generate-preview/operations/op1", answer=VEO_OPERATION),
    Case("seedance", lambda: FakeSeedance().start(), lambda f: f.key, "ark-wrong",
         lambda up: SeedanceVideo(up), _video("seedance-1-0-pro-250528"), "/api/v3/contents/generations/tasks",
         lambda words: (400, {"error": {"code": "InvalidParameter", "message": words, "type": "BadRequest"}}),
         started={"id": "cgt-1"},
         poll_id="cgt-1", poll_path="/api/v3/contents/generations/tasks/cgt-1", answer=SEEDANCE_TASK),
    Case("wan", lambda: FakeWan().start(), lambda f: f.api_key, "sk-wrong",
         lambda up: WanVideo(up), _video("wan2.6-t2v"), "/api/v1/services/aigc/video-generation/video-synthesis",
         lambda words: (400, {"request_id": "r", "code": "InvalidParameter", "message": words}),
         started={"request_id": "r-1", "output": {"task_id": "t1", "task_status": "PENDING"}},
         poll_id="t1", poll_path="/api/v1/tasks/t1", answer=WAN_TASK),
    Case("hailuo", lambda: FakeHailuo().start(), lambda f: f.api_key, "wrong-key",
         lambda up: HailuoVideo(up), _video("MiniMax-Hailuo-2.3"), "/v1/video_generation",
         lambda words: (400, {"base_resp": {"status_code": 2013, "status_msg": words}}),
         started={"task_id": "t1", "base_resp": {"status_code": 0, "status_msg": "success"}},
         poll_id="t1", poll_path="/v1/query/video_generation", answer=HAILUO_TASK),
]
VIDEO_CASES = [case for case in CASES if case.poll_id is not None]


def _ids(cases: list[Case]) -> list[str]:
    return [case.name for case in cases]


@pytest.fixture(scope="module", params=CASES, ids=_ids(CASES))
def running(request):
    case: Case = request.param
    fake = case.fake()
    yield case, fake
    fake.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class Bench:
    """A provider against its fake, with the fake's faults cleared before each test."""
    case: Case
    fake: Any
    provider: Any

    @property
    def channel(self) -> Channel:
        return self.case.channel(self.fake)

    async def start_fails(self, channel: Channel | None = None) -> GatewayError:
        return await _fails(self.case.start(self.provider, channel or self.channel))

    async def poll_fails(self, channel: Channel | None = None) -> GatewayError:
        return await _fails(self.provider.poll(channel or self.channel, self.case.poll_id))

    def on_start(self, *faults: Fault) -> None:
        self.fake.faults.add(self.case.start_path, *faults)

    def on_poll(self, *faults: Fault) -> None:
        self.fake.faults.add(self.case.poll_path, *faults)


@pytest.fixture
async def bench(running, http) -> Bench:
    case, fake = running
    fake.faults.clear()
    yield Bench(case, fake, case.provider(Upstream(http=http)))
    fake.faults.clear()


@pytest.fixture
async def video(bench: Bench) -> Bench:
    if bench.case.poll_id is None:
        pytest.skip(f"{bench.case.name} has no tasks to poll")
    return bench


async def _fails(call: Awaitable[object]) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await asyncio.wait_for(call, CALL_SECONDS)
    return caught.value


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> Fault:
    """An upstream answer the fault middleware gives instead of the fake's own."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Fault("status", status, raw, headers or {})


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


# -- a rejected key is the channel's fault --------------------------------------------------

async def test_a_wrong_key_makes_the_channel_at_fault(bench: Bench):
    error = await bench.start_fails(bench.case.channel(bench.fake, key=bench.case.wrong_key))
    assert (error.http_status, error.channel_fault) == (502, "credentials")
    assert bench.case.wrong_key not in error.message


@pytest.mark.parametrize("status", [401, 403])
async def test_an_upstream_401_or_403_makes_the_channel_at_fault(bench: Bench, status: int):
    bench.on_start(Fault.error(status))
    error = await bench.start_fails()
    assert (error.http_status, error.channel_fault) == (502, "credentials")


@pytest.mark.parametrize("status", [401, 403])
async def test_a_rejected_key_while_polling_is_final_for_the_task(video: Bench, status: int):
    # The poller would otherwise ask again forever with a key that never mends.
    video.on_poll(Fault.error(status))
    error = await video.poll_fails()
    assert (error.channel_fault, error.retryable) == ("credentials", False)


# -- rate limits and overloads are retryable, with the upstream's Retry-After -------------------

async def test_a_rate_limit_with_retry_after_in_seconds(bench: Bench):
    bench.on_start(Fault.error(429, retry_after="7"))
    error = await bench.start_fails()
    assert (error.http_status, error.retryable, error.retry_after) == (429, True, 7.0)


async def test_a_rate_limit_with_retry_after_as_an_http_date(bench: Bench):
    bench.on_start(Fault.error(429, retry_after=http_date(30)))
    error = await bench.start_fails()
    assert error.retryable and 20.0 <= error.retry_after <= 31.0


async def test_a_rate_limit_without_retry_after(bench: Bench):
    bench.on_start(Fault.error(429))
    error = await bench.start_fails()
    assert (error.http_status, error.retryable, error.retry_after) == (429, True, None)


async def test_a_rate_limited_poll_is_retryable_with_its_retry_after(video: Bench):
    video.on_poll(Fault.error(429, retry_after="11"))
    error = await video.poll_fails()
    assert (error.http_status, error.retryable, error.retry_after) == (429, True, 11.0)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
async def test_an_overloaded_upstream_is_a_retryable_502(bench: Bench, status: int):
    bench.on_start(Fault.error(status))
    error = await bench.start_fails()
    assert (error.http_status, error.retryable, error.channel_fault) == (502, True, None)


async def test_a_503_with_retry_after_keeps_the_channel_out_that_long(bench: Bench):
    bench.on_start(Fault.error(503, retry_after="4"))
    error = await bench.start_fails()
    assert (error.http_status, error.retryable, error.retry_after) == (502, True, 4.0)


@pytest.mark.parametrize("status", [500, 503, 529])
async def test_an_overloaded_upstream_while_polling_is_retryable(video: Bench, status: int):
    video.on_poll(Fault.error(status))
    error = await video.poll_fails()
    assert (error.http_status, error.retryable) == (502, True)


async def test_anthropics_overloaded_error_behind_an_openai_compatible_proxy(bench: Bench):
    if not bench.case.name.startswith("openai"):
        pytest.skip("an OpenAI-compatible answer")
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    for status in (529, 400):
        bench.on_start(answer(status, overloaded))
        error = await bench.start_fails()
        assert (error.http_status, error.retryable) == (502, True)


# -- a client fault is the client's, once, in the upstream's scrubbed words ---------------------

@pytest.mark.parametrize("status", [400, 413, 422])
async def test_a_client_fault_is_relayed_once_with_the_upstreams_words_scrubbed(bench: Bench, status: int):
    channel = bench.channel
    words = f"durationSeconds is out of bounds; key {channel.key} at {channel.base_url}"
    _, body = bench.case.refusal(words)
    bench.on_start(answer(status, body))
    error = await bench.start_fails()
    assert 400 <= error.http_status < 500 and (error.retryable, error.channel_fault) == (False, None)
    assert "durationSeconds is out of bounds" in error.message
    assert channel.key not in error.message and channel.base_url.split("//")[1] not in error.message
    assert bench.fake.faults.hits(bench.case.start_path) == 1


# -- answers st-ai cannot read --------------------------------------------------------------

UNREADABLE = {
    "not JSON": b"<html><body>502 Bad Gateway</body></html>",
    "truncated JSON": b'{"id": "task-cut", "status": "succ',
    "a JSON list": b'[{"id": "task-1"}]',
    "a JSON string": b'"ok"',
    "an empty body": b"",
}


@pytest.mark.parametrize("body", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_an_unreadable_answer_to_a_start_is_a_retryable_502(bench: Bench, body: bytes):
    bench.on_start(answer(200, body))
    error = await bench.start_fails()
    assert (error.http_status, error.retryable) == (502, True)


@pytest.mark.parametrize("body", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_an_unreadable_answer_to_a_poll_is_a_retryable_502(video: Bench, body: bytes):
    video.on_poll(answer(200, body))
    error = await video.poll_fails()
    assert (error.http_status, error.retryable) == (502, True)


@pytest.mark.parametrize("status", [400, 401, 429, 503])
async def test_an_error_body_with_any_field_of_the_wrong_kind_is_still_a_gateway_error(bench: Bench, status: int):
    _, refusal = bench.case.refusal("the duration is out of range")
    escaped = []
    for name, body in _bent(refusal):
        bench.on_start(answer(status, body))
        try:
            await asyncio.wait_for(bench.case.start(bench.provider, bench.channel), CALL_SECONDS)
        except GatewayError:
            pass
        except Exception as exc:  # noqa: BLE001 - the point: nothing else may come out
            escaped.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            escaped.append(f"{name}: an HTTP {status} was taken for an answer")
    assert not escaped, escaped


async def test_a_documented_answer_reads_as_a_task_state(video: Bench):
    # The samples the next test bends are themselves read as finished tasks.
    video.on_poll(answer(200, video.case.answer))
    state = await asyncio.wait_for(video.provider.poll(video.channel, video.case.poll_id), CALL_SECONDS)
    assert isinstance(state, TaskState) and state.status == "completed"


WRONG_VALUES = [None, True, 7, -1.5, "x", [], {}, [None], {"x": None}]


def _bent(answer: object, path: tuple = ()) -> list[tuple[str, object]]:
    """Every copy of `answer` with one value (at any depth) replaced by a value of another kind."""
    copies = []
    children = answer.items() if isinstance(answer, dict) else enumerate(answer) if isinstance(answer, list) else ()
    for key, value in children:
        for wrong in WRONG_VALUES:
            copies.append((".".join(map(str, path + (key,))) + f"={wrong!r}", _replace(answer, key, wrong)))
        copies += [(name, _replace(answer, key, bent)) for name, bent in _bent(value, path + (key,))]
    return copies


def _replace(container: dict | list, key: Any, value: object) -> dict | list:
    copy = dict(container) if isinstance(container, dict) else list(container)
    copy[key] = value
    return copy


async def test_a_start_answer_with_any_field_of_the_wrong_kind_never_escapes_as_an_exception(bench: Bench):
    if bench.case.started is None:
        pytest.skip("the answer's shape is read by the relay")
    bench.on_start(answer(200, bench.case.started))
    assert await asyncio.wait_for(bench.case.start(bench.provider, bench.channel), CALL_SECONDS)
    escaped = []
    for name, body in _bent(bench.case.started):
        bench.on_start(answer(200, body))
        try:
            await asyncio.wait_for(bench.case.start(bench.provider, bench.channel), CALL_SECONDS)
        except GatewayError as error:
            assert error.http_status in (400, 404, 502, 504) or error.retryable, (name, error)
        except Exception as exc:  # noqa: BLE001 - the point: nothing else may come out
            escaped.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not escaped, escaped


async def test_a_poll_answer_with_any_field_of_the_wrong_kind_never_escapes_as_an_exception(video: Bench):
    """A provider reads every field it uses with care: whatever one field holds, a poll
    gives a task state or a GatewayError, never a KeyError or TypeError (a 500)."""
    escaped = []
    for name, body in _bent(video.case.answer):
        video.on_poll(answer(200, body))
        try:
            state = await asyncio.wait_for(video.provider.poll(video.channel, video.case.poll_id), CALL_SECONDS)
        except GatewayError as error:
            assert error.http_status in (400, 404, 502, 504) or error.retryable, (name, error)
        except Exception as exc:  # noqa: BLE001 - the point: nothing else may come out
            escaped.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            assert isinstance(state, TaskState), name
    assert not escaped, escaped


# -- the channel's connect limit --------------------------------------------------------------

@pytest.fixture(scope="module")
def unconnectable_url():
    """A base URL on 127.0.0.1 where connecting hangs: the server's accept queue is full
    and it never accepts, so the kernel drops every further SYN."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    for sock in itertools.chain(fillers, [server]):
        sock.close()


CONNECT_LIMIT = 0.3


async def test_the_channels_connect_limit_is_honoured(bench: Bench, unconnectable_url: str):
    if bench.case.name in ("openai-chat", "openai-images"):
        pytest.skip("the chat and images calls build their timeout in the attempt loop's part (P1)")
    channel = bench.case.channel(bench.fake, base_url=unconnectable_url + bench.case.base_path,
                                 timeouts=Timeouts(connect=CONNECT_LIMIT))
    started = time.monotonic()
    error = await bench.start_fails(channel)
    # The provider's own limits are 30 seconds and more: only the channel's connect limit ends it this soon.
    assert time.monotonic() - started < 10.0
    assert (error.http_status, error.code, error.retryable) == (504, "upstream_timeout", True)
    if bench.case.poll_id is not None:
        started = time.monotonic()
        error = await bench.poll_fails(channel)
        assert time.monotonic() - started < 10.0 and error.retryable


# -- an error event inside an OpenAI-compatible stream ------------------------------------------

def test_an_overloaded_error_event_in_a_stream_is_retryable_and_any_other_is_not():
    channel = Channel(id=1, name="openai", type="openai", base_url="http://127.0.0.1:9/v1", key="sk-x")
    overloaded = from_stream_event({"type": "overloaded_error", "message": "Overloaded"}, channel)
    failed = from_stream_event({"type": "server_error", "message": "boom"}, channel)
    shapeless = from_stream_event(["overloaded_error"], channel)
    assert (overloaded.http_status, overloaded.retryable) == (502, True)
    assert (failed.retryable, shapeless.retryable) == (False, False)
