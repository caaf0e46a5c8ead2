"""The Runway provider: its pure conversion rules, and its HTTP client against a fake
Runway server on 127.0.0.1 (tests/fakes/runway.py) that speaks Runway's API."""
from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest

from server.errors import GatewayError
from server.providers.interface import Upstream, VideoRemixer, VideoRequest
from server.providers.registry import discover
from server.providers.runway import PROVIDER, convert
from server.providers.runway.client import RunwayVideo
from server.providers.runway.errors import from_response
from server.store.channels import Channel
from tests.fakes.runway import FakeRunway, TaskPlan

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
IMAGE_URL = "https://example.com/cat.png"


def _req(model: str = "gen4_turbo", **kw) -> VideoRequest:
    return VideoRequest(model=model, prompt=kw.pop("prompt", "a cat surfing"), **kw)


def _error(exc: pytest.ExceptionInfo) -> GatewayError:
    return exc.value


# -- conversion (no I/O) ---------------------------------------------------------------------

def test_documented_example_image_to_video():
    prepared = convert.prepare(_req(image=IMAGE_URL, duration=5.0, width=1280, height=720, fps=30, seed=7))
    assert prepared.body == {"model": "gen4_turbo", "promptImage": IMAGE_URL, "promptText": "a cat surfing",
                             "ratio": "1280:720", "duration": 5, "seed": 7}
    assert convert.endpoint_for(prepared.body) == convert.IMAGE_TO_VIDEO
    # Runway takes no fps: what is reported is what Runway will make.
    assert prepared.asked == {"duration": 5, "width": 1280, "height": 720, "ratio": "1280:720", "fps": 24}


@pytest.mark.parametrize("model, seconds, expected", [
    ("gen4_turbo", 4.0, 5), ("gen4_turbo", 7.5, 10), ("gen4_turbo", 30, 10), ("gen4.5", 6.2, 6),
    ("veo3", 4, 8), ("veo3.1", 5.1, 6), ("veo3.1", 12, 8), ("gen4.5", 3.4, 3), ("gen4_turbo", None, 5),
])
def test_duration_goes_to_the_nearest_supported(model, seconds, expected):
    prepared = convert.prepare(_req(model, image=IMAGE_URL, duration=seconds))
    assert prepared.body["duration"] == expected == prepared.asked["duration"]


@pytest.mark.parametrize("model, size, ratio", [
    ("gen4_turbo", (1280, 720), "1280:720"), ("gen4_turbo", (1920, 1080), "1280:720"),
    ("gen4_turbo", (720, 1280), "720:1280"), ("gen4_turbo", (1024, 1024), "960:960"),
    ("gen4_turbo", (2560, 1080), "1584:672"), ("gen4.5", (1280, 720), "1280:720"),
    ("gen4.5", (832, 1104), "832:1104"), ("veo3", (1920, 1080), "1920:1080"),
    ("veo3", (1280, 720), "1280:720"), ("veo3.1", (1080, 1920), "1080:1920"),
])
def test_size_goes_to_the_nearest_ratio(model, size, ratio):
    prepared = convert.prepare(_req(model, image=IMAGE_URL, width=size[0], height=size[1]))
    assert prepared.body["ratio"] == ratio == prepared.asked["ratio"]
    assert (prepared.asked["width"], prepared.asked["height"]) == tuple(int(n) for n in ratio.split(":"))


def test_image_only_model_without_image_is_refused():
    with pytest.raises(GatewayError) as exc:
        convert.prepare(_req("gen4_turbo"))
    assert (_error(exc).http_status, _error(exc).param, _error(exc).code) == (400, "image", "image_required")


def test_text_to_video_model_takes_the_text_path():
    prepared = convert.prepare(_req("veo3", duration=5, width=1280, height=720))
    assert convert.endpoint_for(prepared.body) == convert.TEXT_TO_VIDEO
    assert prepared.body == {"model": "veo3", "promptText": "a cat surfing", "ratio": "1280:720", "duration": 8}
    # gen4.5 text-to-video has only two ratios, fewer than its image-to-video
    assert convert.prepare(_req("gen4.5", width=960, height=960)).body["ratio"] in ("1280:720", "720:1280")


def test_text_to_video_needs_a_prompt_and_veo_takes_no_seed():
    with pytest.raises(GatewayError) as exc:
        convert.prepare(_req("veo3.1", prompt=""))
    assert _error(exc).param == "prompt"
    with pytest.raises(GatewayError) as exc:
        convert.prepare(_req("veo3.1", seed=3))
    assert _error(exc).param == "seed"


def test_unknown_model_and_unknown_metadata_are_refused():
    for retired in ("gen2", "gen3a_turbo"):  # gen3a_turbo reached its end of life on 2026-07-30
        with pytest.raises(GatewayError) as exc:
            convert.prepare(_req(retired, image=IMAGE_URL))
        assert (_error(exc).http_status, _error(exc).param) == (400, "model")
    with pytest.raises(GatewayError) as exc:
        convert.prepare(_req(image=IMAGE_URL, metadata={"motion": 5}))
    assert (_error(exc).http_status, _error(exc).param) == (400, "metadata.motion")
    # a real Runway field, but not one this model takes
    with pytest.raises(GatewayError) as exc:
        convert.prepare(_req(image=IMAGE_URL, metadata={"audio": True}))
    assert _error(exc).param == "metadata.audio"


def test_runway_metadata_passes_through():
    prepared = convert.prepare(_req(image=IMAGE_URL, metadata={
        "contentModeration": {"publicFigureThreshold": "low"}, "ratio": "832:1104"}))
    assert prepared.body["contentModeration"] == {"publicFigureThreshold": "low"}
    assert prepared.body["ratio"] == "832:1104" and prepared.asked["width"] == 832
    frames = [{"uri": IMAGE_URL, "position": "first"}, {"uri": "https://example.com/end.png", "position": "last"}]
    prepared = convert.prepare(_req("veo3.1", metadata={"promptImage": frames, "audio": False}))
    assert prepared.body["promptImage"] == frames and prepared.body["audio"] is False
    assert convert.endpoint_for(prepared.body) == convert.IMAGE_TO_VIDEO
    with pytest.raises(GatewayError) as exc:  # gen4_turbo takes only a first frame
        convert.prepare(_req(metadata={"promptImage": frames}))
    assert _error(exc).param == "metadata.promptImage[1].position"


def test_images_become_data_uris():
    bare = base64.b64encode(PNG).decode()
    assert convert.prepare(_req(image=bare)).body["promptImage"] == f"data:image/png;base64,{bare}"
    uploaded = convert.prepare(_req(image_bytes=PNG, image_type="image/png")).body["promptImage"]
    assert uploaded == f"data:image/png;base64,{bare}"
    data_uri = f"data:image/png;base64,{bare}"
    assert convert.prepare(_req(image=data_uri)).body["promptImage"] == data_uri
    for bad in ("http://example.com/cat.png", "not an image", "data:text/plain;base64,aGk="):
        with pytest.raises(GatewayError) as exc:
            convert.prepare(_req(image=bad))
        assert (_error(exc).http_status, _error(exc).param) == (400, "image")


def test_model_with_both_paths_takes_the_image_path_when_given_an_image():
    prepared = convert.prepare(_req("veo3", image=IMAGE_URL))
    assert convert.endpoint_for(prepared.body) == convert.IMAGE_TO_VIDEO


def test_task_states():
    created = "2024-06-27T19:49:32.334Z"
    assert convert.parse_time(created) == 1719517772
    assert convert.to_state({"status": "PENDING", "createdAt": created}).status == "queued"
    assert convert.to_state({"status": "THROTTLED", "createdAt": created}).status == "queued"
    running = convert.to_state({"status": "RUNNING", "progress": 0.42, "createdAt": created})
    assert (running.status, running.progress, running.updated_at) == ("in_progress", 42, 1719517772)
    done = convert.to_state({"status": "SUCCEEDED", "output": ["https://cdn/x.mp4?_jwt=a"], "createdAt": created})
    assert (done.status, done.progress, done.video_url) == ("completed", 100, "https://cdn/x.mp4?_jwt=a")
    blocked = convert.to_state({"status": "FAILED", "failure": "Prompt rejected", "failureCode": "SAFETY.INPUT.TEXT"})
    assert (blocked.status, blocked.error_code) == ("failed", "moderation_blocked")
    assert "Prompt rejected" in blocked.error_message and "SAFETY.INPUT.TEXT" in blocked.error_message
    assert convert.failure_code("INPUT_PREPROCESSING.SAFETY.TEXT") == "moderation_blocked"
    assert convert.failure_code("INTERNAL.BAD_OUTPUT.CODE01") == "internal_error"
    cancelled = convert.to_state({"status": "CANCELLED"})
    assert (cancelled.status, cancelled.error_code) == ("failed", "cancelled")
    assert convert.parse_time("yesterday") is None


def test_error_bodies_map_without_leaking():
    channel = _channel("http://secret-host.example", "key_sekrit")
    bad = from_response(400, b'{"error":"Validation of body failed","issues":[{"code":"invalid_value",'
                             b'"path":["ratio"],"message":"Invalid option"}],"docUrl":"x"}', channel)
    assert (bad.http_status, bad.code, bad.param) == (400, "invalid_request", "size")
    assert "Invalid option" in bad.message
    leaked = from_response(400, b'{"error":"key key_sekrit at http://secret-host.example"}', channel)
    assert "key_sekrit" not in leaked.message and "secret-host" not in leaked.message
    auth = from_response(401, b'{"error":"Invalid API key"}', channel)
    assert (auth.http_status, auth.retryable) == (502, False) and "credentials" in auth.message
    assert from_response(404, b'{"error":"Task not found."}', channel).http_status == 404
    limited = from_response(429, b"{}", channel)
    assert (limited.http_status, limited.retryable) == (429, True)
    assert from_response(503, b"oops", channel).http_status == 502 and from_response(503, b"", channel).retryable
    assert from_response(504, b"", channel).http_status == 502 and from_response(504, b"", channel).retryable


def test_provider_spec_and_no_remix():
    assert discover()["runway"] is PROVIDER
    assert (PROVIDER.default_base_url, PROVIDER.key_format) == ("https://api.dev.runwayml.com", "KEY")
    assert not hasattr(RunwayVideo, "remix")
    assert not issubclass(RunwayVideo, VideoRemixer)


# -- HTTP against the fake ----------------------------------------------------------------

def _channel(base_url: str, key: str) -> Channel:
    return Channel(id=1, name="runway", type="runway", base_url=base_url, key=key, models=("gen4_turbo",))


@pytest.fixture(scope="module")
def fake() -> FakeRunway:
    server = FakeRunway().start()
    yield server
    server.stop()


@pytest.fixture
async def provider(fake: FakeRunway):
    fake.reset()
    async with aiohttp.ClientSession() as session:
        yield RunwayVideo(Upstream(http=session))


async def _run(provider: RunwayVideo, channel: Channel, request: VideoRequest, max_polls: int = 10):
    task_id = await provider.submit(channel, provider.prepare(channel, request))
    states = []
    for _ in range(max_polls):
        state = await provider.poll(channel, task_id)
        states.append(state)
        if state.status in ("completed", "failed"):
            break
    return task_id, states


async def _download(provider: RunwayVideo, channel: Channel, task_id: str, state) -> bytes:
    return b"".join([chunk async for chunk in provider.download(channel, task_id, state, "video")])


async def test_submit_poll_download(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    task_id, states = await _run(provider, channel, _req(image=IMAGE_URL, duration=5.0, width=1280, height=720))
    assert [s.status for s in states] == ["queued", "in_progress", "completed"]
    assert states[1].progress == 50 and states[-1].progress == 100
    assert states[-1].updated_at is not None and "_jwt=" in states[-1].video_url
    assert await _download(provider, channel, task_id, states[-1]) == fake.video

    create = fake.received[0]
    assert (create.method, create.path) == ("POST", "/v1/image_to_video")
    assert create.headers["Authorization"] == f"Bearer {fake.api_key}"
    assert create.headers["X-Runway-Version"] == "2024-11-06"
    assert create.body == {"model": "gen4_turbo", "promptImage": IMAGE_URL, "promptText": "a cat surfing",
                           "ratio": "1280:720", "duration": 5}
    cdn = fake.received[-1]
    assert cdn.path.startswith("/cdn/") and "Authorization" not in cdn.headers  # the key stays off the CDN


async def test_text_to_video_and_uploaded_image_are_accepted(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url + "/v1", fake.api_key)  # a base URL written with /v1 works too
    _, states = await _run(provider, channel, _req("veo3.1", duration=6, width=720, height=1280,
                                                   metadata={"audio": True}))
    assert states[-1].status == "completed" and fake.received[0].path == "/v1/text_to_video"
    fake.reset()
    _, states = await _run(provider, channel, _req(image_bytes=PNG, image_type="image/png"))
    assert states[-1].status == "completed"
    assert fake.received[0].body["promptImage"].startswith("data:image/png;base64,")


async def test_large_video_is_streamed_in_256_kib_chunks(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    original = fake.video
    fake.video = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes
    try:
        task_id, states = await _run(provider, channel, _req(image=IMAGE_URL))
        chunks = [c async for c in provider.download(channel, task_id, states[-1], "video")]
    finally:
        video, fake.video = fake.video, original
    assert b"".join(chunks) == video
    assert [len(c) for c in chunks] == [256 * 1024] * 4 + [4]


async def test_expired_output_url_is_refreshed(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    task_id, states = await _run(provider, channel, _req(image=IMAGE_URL))
    fake.expire_outputs()
    assert await _download(provider, channel, task_id, states[-1]) == fake.video


async def test_thumbnail_is_unavailable(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    task_id, states = await _run(provider, channel, _req(image=IMAGE_URL))
    with pytest.raises(GatewayError) as exc:
        [c async for c in provider.download(channel, task_id, states[-1], "thumbnail")]
    assert (_error(exc).http_status, _error(exc).code) == (404, "thumbnail_unavailable")


async def test_bad_key_is_the_channels_problem(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, "key_" + "0" * 128)
    with pytest.raises(GatewayError) as exc:
        await provider.submit(channel, provider.prepare(channel, _req(image=IMAGE_URL)))
    error = _error(exc)
    assert (error.http_status, error.retryable) == (502, False) and "credentials" in error.message
    assert "key_" not in error.message and "127.0.0.1" not in error.message


async def test_rate_limit_while_polling_is_retryable(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    task_id = await provider.submit(channel, provider.prepare(channel, _req(image=IMAGE_URL)))
    fake.rate_limit(2)
    for _ in range(2):
        with pytest.raises(GatewayError) as exc:
            await provider.poll(channel, task_id)
        assert (_error(exc).http_status, _error(exc).retryable) == (429, True)
    assert (await provider.poll(channel, task_id)).status == "queued"


async def test_failure_midway(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    fake.plan = TaskPlan(polls=3, failure="An unexpected error occurred.", failure_code="INTERNAL.BAD_OUTPUT.CODE01")
    _, states = await _run(provider, channel, _req(image=IMAGE_URL))
    assert [s.status for s in states] == ["queued", "in_progress", "failed"]
    assert states[-1].error_code == "internal_error" and "INTERNAL.BAD_OUTPUT.CODE01" in states[-1].error_message


async def test_moderation_block(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    fake.plan = TaskPlan.moderated()
    _, states = await _run(provider, channel, _req(image=IMAGE_URL))
    assert (states[-1].status, states[-1].error_code) == ("failed", "moderation_blocked")


async def test_never_finishing_task_and_cancel(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    fake.plan = TaskPlan(never_finish=True, throttled=True)
    task_id, states = await _run(provider, channel, _req(image=IMAGE_URL), max_polls=6)
    assert states[0].status == "queued" and {s.status for s in states[1:]} == {"in_progress"}
    await provider.cancel(channel, task_id)
    assert fake.received[-1].method == "DELETE"
    with pytest.raises(GatewayError) as exc:  # a cancelled task cannot be fetched again
        await provider.poll(channel, task_id)
    assert _error(exc).http_status == 404


async def test_runway_validation_error_is_relayed(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    # A body prepared by hand past convert's checks: the fake answers as Runway would.
    bad = convert.prepare(_req(image=IMAGE_URL))
    bad.body["ratio"] = "1280:768"
    with pytest.raises(GatewayError) as exc:
        await provider.submit(channel, bad)
    error = _error(exc)
    assert (error.http_status, error.param) == (400, "size") and "Invalid option" in error.message


async def test_server_errors_are_retryable(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    fake.inject(503, {"error": "Service unavailable"})
    with pytest.raises(GatewayError) as exc:
        await provider.submit(channel, provider.prepare(channel, _req(image=IMAGE_URL)))
    assert (_error(exc).http_status, _error(exc).retryable) == (502, True)


async def test_fake_requires_the_version_header(fake: FakeRunway):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.base_url}/v1/tasks/x",
                               headers={"Authorization": f"Bearer {fake.api_key}"}) as response:
            assert response.status == 400 and "X-Runway-Version" in (await response.json())["error"]


async def test_unreachable_runway_is_retryable(provider: RunwayVideo):
    channel = _channel("http://127.0.0.1:9", "key_x")  # the discard port: nothing listens
    with pytest.raises(GatewayError) as exc:
        await provider.poll(channel, "17f20503-6c24-4c16-946b-35dbbce2af2f")
    assert (_error(exc).http_status, _error(exc).retryable) == (502, True)
    assert "127.0.0.1" not in _error(exc).message


@pytest.mark.parametrize("model", sorted(convert.MODELS))
async def test_every_prepared_body_is_accepted_by_runway(fake: FakeRunway, provider: RunwayVideo, model: str):
    """convert's table against the fake's own statement of Runway's rules: every
    model, path, size and duration convert can produce is one Runway takes."""
    channel = _channel(fake.base_url, fake.api_key)
    spec = convert.MODELS[model]
    sizes = [(1280, 720), (720, 1280), (1000, 1000), (3000, 1000), (1080, 1920)]
    for image, mode in ((IMAGE_URL, spec.image), (None, spec.text)):
        if mode is None:
            continue
        for (width, height), seconds in zip(sizes, (1, 4.4, 6, 9.9, 30)):
            seed = 1 if mode.seed else None
            await provider.submit(channel, provider.prepare(channel, _req(
                model, image=image, width=width, height=height, duration=seconds, seed=seed)))


async def test_task_finishing_by_time(fake: FakeRunway, provider: RunwayVideo):
    channel = _channel(fake.base_url, fake.api_key)
    fake.plan = TaskPlan(seconds=1.0)
    task_id = await provider.submit(channel, provider.prepare(channel, _req(image=IMAGE_URL)))
    # queued for the first tenth of the time; a slow machine may already see it running
    assert (await provider.poll(channel, task_id)).status in ("queued", "in_progress")
    await asyncio.sleep(0.4)
    assert (await provider.poll(channel, task_id)).status == "in_progress"
    await asyncio.sleep(0.7)
    assert (await provider.poll(channel, task_id)).status == "completed"
