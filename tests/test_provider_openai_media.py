"""OpenAI images and videos providers: the pure request/answer mapping, then the real
HTTP exchange against FakeOpenAI (an HTTP server on 127.0.0.1 speaking the public API),
and the fake itself checked with the official SDK so it stays faithful."""
from __future__ import annotations

import base64
import os
import socket
import uuid

import aiohttp
import openai
import pytest

from server.errors import GatewayError
from server.providers.interface import TaskState, Upstream, VideoRemixer, VideoRequest
from server.providers.openai import PROVIDER
from server.providers.openai.images import OpenAIImages
from server.providers.openai.video_convert import fitting_for, to_prepared, to_task_state
from server.providers.video_shape import nearest_duration, nearest_size
from server.providers.openai.videos import CHUNK, OpenAIVideos
from server.store.channels import Channel
from tests.fakes.openai_upstream import THUMBNAIL_WEBP, FakeOpenAI, VideoPlan, sample_png_bytes

pytestmark = [pytest.mark.timeout(30),
              # the SDK marks the Videos API deprecated (shutdown announced for 2026-09-24)
              pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")]

PNG = sample_png_bytes(16, 16)


def request(**kwargs) -> VideoRequest:
    return VideoRequest(**({"model": "sora-2", "prompt": "a cat surfing"} | kwargs))


def raises(status: int, call, *args) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        call(*args)
    assert info.value.http_status == status
    return info.value


# -- pure conversion ---------------------------------------------------------------------

@pytest.mark.parametrize("duration,seconds", [
    (5.0, 4), (0.5, 4), (4, 4), (6, 4), (6.01, 8), (8, 8), (10, 8), (10.5, 12), (12, 12), (90, 12)])
def test_duration_rounds_to_nearest_seconds_ties_to_shorter(duration, seconds):
    assert to_prepared(request(duration=duration)).body["seconds"] == str(seconds)


@pytest.mark.parametrize("duration", [0, -3, float("nan"), float("inf")])
def test_impossible_duration_is_400(duration):
    assert raises(400, nearest_duration, fitting_for("sora-2"), duration).param == "duration"
    assert raises(400, to_prepared, request(duration=duration)).param == "duration"


@pytest.mark.parametrize("model,width,height,size", [
    ("sora-2", 1280, 720, (1280, 720)),
    ("sora-2", 720, 1280, (720, 1280)),
    ("sora-2", 1920, 1080, (1280, 720)),
    ("sora-2", 1792, 1024, (1280, 720)),      # plain sora-2 has 720p only
    ("sora-2-pro", 1792, 1024, (1792, 1024)),
    ("sora-2-pro", 1920, 1080, (1792, 1024)),
    ("sora-2-pro", 1080, 1920, (1024, 1792)),
    ("sora-2-pro", 1280, 720, (1280, 720)),
    ("sora-2", 640, 360, (1280, 720)),
    ("sora-2", 360, 640, (720, 1280)),
    ("sora-2", 1024, 1024, (1280, 720)),      # a tie goes to the earlier size
    ("sora-2-pro", 1792, None, (1792, 1024)),  # only one dimension counts
    ("sora-2", None, None, (720, 1280)),      # OpenAI's default, sent explicitly
])
def test_size_maps_to_nearest_supported(model, width, height, size):
    assert nearest_size(fitting_for(model), width, height) == size
    assert to_prepared(request(model=model, width=width, height=height)).body["size"] == "%dx%d" % size


def test_asked_reports_what_is_sent_and_ignores_seed_and_fps():
    prepared = to_prepared(request(duration=5.0, width=1280, height=720, fps=24, seed=7))
    assert prepared.body == {"model": "sora-2", "prompt": "a cat surfing", "seconds": "4", "size": "1280x720"}
    assert prepared.asked == {"duration": 4.0, "width": 1280, "height": 720, "seconds": "4", "size": "1280x720"}


def test_defaults_are_explicit():
    prepared = to_prepared(request())
    assert (prepared.body["seconds"], prepared.body["size"]) == ("4", "720x1280")
    assert prepared.asked["duration"] == 4.0 and (prepared.asked["width"], prepared.asked["height"]) == (720, 1280)


def test_unknown_metadata_is_400_and_known_passes():
    error = raises(400, to_prepared, request(metadata={"style": "noir"}))
    assert error.param == "metadata.style"
    assert to_prepared(request(metadata={"character_ids": ["char_1"]})).body["character_ids"] == ["char_1"]
    assert raises(400, to_prepared, request(metadata={"character_ids": "char_1"})).param == "metadata.character_ids"


def test_empty_prompt_is_400():
    assert raises(400, to_prepared, request(prompt="  ")).param == "prompt"


@pytest.mark.parametrize("image", [
    "data:image/png;base64," + base64.b64encode(PNG).decode(),
    "DATA:image/png;name=x.png;base64," + base64.b64encode(PNG).decode(),
    base64.b64encode(PNG).decode(),
])
def test_data_uri_and_base64_become_an_upload(image):
    upload = to_prepared(request(image=image)).body["input_reference"]["upload"]
    assert base64.b64decode(upload["data_base64"]) == PNG
    assert upload["content_type"] == "image/png" and upload["filename"].endswith(".png")


def test_uploaded_bytes_become_an_upload_typed_by_content():
    jpeg = b"\xff\xd8\xff\xe0" + bytes(100)
    upload = to_prepared(request(image_bytes=jpeg, image_type="image/png")).body["input_reference"]["upload"]
    assert upload["content_type"] == "image/jpeg" and base64.b64decode(upload["data_base64"]) == jpeg


def test_url_becomes_a_json_image_reference():
    body = to_prepared(request(image="https://example.com/cat.png")).body
    assert body["input_reference"] == {"image_url": "https://example.com/cat.png"}


@pytest.mark.parametrize("image", ["data:image/png,notbase64", "not base64 at all!",
                                   base64.b64encode(b"GIF89a" + bytes(20)).decode()])
def test_unusable_image_is_400(image):
    assert raises(400, to_prepared, request(image=image)).param == "image"


def test_task_state_from_video_objects():
    assert to_task_state({"status": "queued", "progress": 0, "created_at": 1712697600}) == \
        TaskState("queued", 0, updated_at=1712697600)
    assert to_task_state({"status": "in_progress", "progress": 42.7, "created_at": 1}).progress == 42
    done = to_task_state({"status": "completed", "progress": 100, "created_at": 1, "completed_at": 1712697700})
    assert (done.status, done.progress, done.updated_at) == ("completed", 100, 1712697700)
    failed = to_task_state({"status": "failed", "progress": 30, "created_at": 1712697600123,
                            "error": {"code": "moderation_blocked", "message": "blocked"}})
    assert (failed.status, failed.error_code, failed.error_message, failed.updated_at) == \
        ("failed", "moderation_blocked", "blocked", 1712697600)
    assert to_task_state({"status": "failed", "error": None}).error_code == "video_generation_failed"
    odd = to_task_state({"status": "cancelled"})
    assert (odd.status, odd.error_code) == ("failed", "upstream_status_cancelled")


def test_registered_in_the_openai_spec():
    assert PROVIDER.images is OpenAIImages and PROVIDER.video is OpenAIVideos
    assert issubclass(OpenAIVideos, VideoRemixer)


# -- against the fake upstream -----------------------------------------------------------

@pytest.fixture
def fake():
    server = FakeOpenAI(f"sk-upstream-{uuid.uuid4().hex}").start()
    yield server
    server.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def channel_for(fake: FakeOpenAI, key: str | None = None, base_url: str | None = None) -> Channel:
    return Channel(id=1, name="openai-media", type="openai", base_url=base_url or fake.base_url,
                   key=fake.api_key if key is None else key, models=("sora-2",))


async def gather(stream) -> list[bytes]:
    return [chunk async for chunk in stream]


async def test_image_url_on_the_channels_own_host_comes_back_inline_and_body_passes_through(fake, http):
    # the fake hands out URLs on its own host, the channel's base URL: no client may see it
    answer = await OpenAIImages(Upstream(http)).generate(
        channel_for(fake), {"model": "dall-e-3", "prompt": "a red fox", "x_extra": {"a": [1]}}, 10)
    assert fake.received[-1].body == {"model": "dall-e-3", "prompt": "a red fox", "x_extra": {"a": [1]}}
    assert fake.received[-1].headers["Authorization"] == f"Bearer {fake.api_key}"
    assert answer["data"][0]["revised_prompt"]
    assert "url" not in answer["data"][0]
    assert base64.b64decode(answer["data"][0]["b64_json"]).startswith(b"\x89PNG")


async def test_image_b64_json(fake, http):
    answer = await OpenAIImages(Upstream(http)).generate(
        channel_for(fake), {"model": "dall-e-2", "prompt": "a fox", "n": 2, "response_format": "b64_json"}, 10)
    assert len(answer["data"]) == 2
    assert base64.b64decode(answer["data"][0]["b64_json"]).startswith(b"\x89PNG")


async def test_image_errors_are_relayed(fake, http):
    images = OpenAIImages(Upstream(http))
    with pytest.raises(GatewayError) as info:
        await images.generate(channel_for(fake), {"prompt": "x", "n": 11}, 10)
    assert (info.value.http_status, info.value.param) == (400, "n")
    fake.block_images = True
    with pytest.raises(GatewayError) as info:
        await images.generate(channel_for(fake), {"prompt": "x"}, 10)
    assert (info.value.http_status, info.value.code, info.value.type) == \
        (400, "moderation_blocked", "image_generation_user_error")
    assert not info.value.retryable
    with pytest.raises(GatewayError) as info:
        await images.generate(channel_for(fake), {"prompt": "x", "stream": True}, 10)
    assert (info.value.http_status, info.value.param) == (400, "stream")


async def test_image_wrong_key_and_network_failure_are_retryable_502(fake, http):
    images = OpenAIImages(Upstream(http))
    with pytest.raises(GatewayError) as info:
        await images.generate(channel_for(fake, key="sk-wrong"), {"prompt": "x"}, 10)
    assert (info.value.http_status, info.value.retryable) == (502, True)
    assert "sk-wrong" not in info.value.message
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with pytest.raises(GatewayError) as info:
        await images.generate(channel_for(fake, base_url=closed), {"prompt": "x"}, 5)
    assert (info.value.http_status, info.value.retryable) == (502, True)
    assert closed not in info.value.message


async def test_video_submit_poll_download(fake, http):
    fake.video_content = os.urandom(3 * CHUNK + 1234)  # several chunks
    videos, channel = OpenAIVideos(Upstream(http)), channel_for(fake)
    prepared = videos.prepare(channel, request(duration=5.0, width=1280, height=720))
    task_id = await videos.submit(channel, prepared)
    sent = fake.received[-1]
    assert sent.headers["Content-Type"].startswith("application/json")
    assert sent.body == {"model": "sora-2", "prompt": "a cat surfing", "seconds": "4", "size": "1280x720"}
    states = [await videos.poll(channel, task_id) for _ in range(3)]
    assert [s.status for s in states] == ["queued", "in_progress", "completed"]
    assert 0 < states[1].progress < 100 and states[2].progress == 100 and states[2].updated_at
    chunks = await gather(videos.download(channel, task_id, states[2], "video"))
    assert b"".join(chunks) == fake.video_content
    assert len(chunks) > 1 and max(map(len, chunks)) <= CHUNK
    thumbnail = b"".join(await gather(videos.download(channel, task_id, states[2], "thumbnail")))
    assert thumbnail == THUMBNAIL_WEBP
    assert fake.received[-1].headers["Authorization"] == f"Bearer {fake.api_key}"


async def test_video_with_data_uri_is_sent_as_multipart_upload(fake, http):
    videos, channel = OpenAIVideos(Upstream(http)), channel_for(fake)
    image = "data:image/png;base64," + base64.b64encode(PNG).decode()
    prepared = videos.prepare(channel, request(image=image, duration=8, metadata={"character_ids": ["c1", "c2"]}))
    await videos.submit(channel, prepared)
    sent = fake.received[-1]
    assert sent.headers["Content-Type"].startswith("multipart/form-data")
    assert sent.body["input_reference"] == {"filename": "input_reference.png", "content_type": "image/png",
                                            "data": PNG}
    assert (sent.body["seconds"], sent.body["size"], sent.body["character_ids"]) == ("8", "720x1280", ["c1", "c2"])


async def test_video_with_url_is_sent_as_image_reference(fake, http):
    videos, channel = OpenAIVideos(Upstream(http)), channel_for(fake)
    await videos.submit(channel, videos.prepare(channel, request(image="https://example.com/cat.png")))
    assert fake.received[-1].body["input_reference"] == {"image_url": "https://example.com/cat.png"}


async def test_video_download_before_completion_and_unknown_id(fake, http):
    videos, channel = OpenAIVideos(Upstream(http)), channel_for(fake)
    task_id = await videos.submit(channel, videos.prepare(channel, request()))
    with pytest.raises(GatewayError) as info:
        await gather(videos.download(channel, task_id, TaskState("queued"), "video"))
    assert info.value.http_status == 409
    for call in (videos.poll(channel, "video_missing"), gather(videos.download(channel, "video_missing",
                                                                               TaskState("completed"), "video"))):
        with pytest.raises(GatewayError) as info:
            await call
        assert (info.value.http_status, info.value.retryable) == (404, False)
    with pytest.raises(GatewayError) as info:
        await videos.poll(channel, "..")
    assert info.value.http_status == 404


async def test_video_remix(fake, http):
    fake.video_plan = VideoPlan(polls_to_finish=1)
    videos, channel = OpenAIVideos(Upstream(http)), channel_for(fake)
    task_id = await videos.submit(channel, videos.prepare(channel, request()))
    assert (await videos.poll(channel, task_id)).status == "completed"
    remix_id = await videos.remix(channel, task_id, "now at night")
    assert remix_id != task_id
    assert fake.received[-1].body == {"prompt": "now at night"}
    assert fake.videos[remix_id].object["remixed_from_video_id"] == task_id
    assert (await videos.poll(channel, remix_id)).status == "completed"


async def test_video_failure_mid_way_and_moderation(fake, http):
    videos, channel = OpenAIVideos(Upstream(http)), channel_for(fake)
    fake.video_plan = VideoPlan(polls_to_finish=5, fail_at_poll=3, failure=("internal_error", "GPU on fire"))
    task_id = await videos.submit(channel, videos.prepare(channel, request()))
    states = [await videos.poll(channel, task_id) for _ in range(4)]
    assert [s.status for s in states] == ["queued", "in_progress", "failed", "failed"]
    assert (states[2].error_code, states[2].error_message) == ("internal_error", "GPU on fire")
    fake.video_plan = VideoPlan.moderated(at_poll=1)
    task_id = await videos.submit(channel, videos.prepare(channel, request()))
    state = await videos.poll(channel, task_id)
    assert (state.status, state.error_code) == ("failed", "moderation_blocked")


async def test_video_never_finishing_and_by_time(fake, http):
    videos, channel = OpenAIVideos(Upstream(http)), channel_for(fake)
    fake.video_plan = VideoPlan(polls_to_finish=2, never_finish=True)
    task_id = await videos.submit(channel, videos.prepare(channel, request()))
    assert {(await videos.poll(channel, task_id)).status for _ in range(5)} == {"in_progress"}
    fake.video_plan = VideoPlan(seconds_to_finish=0.0001)
    task_id = await videos.submit(channel, videos.prepare(channel, request()))
    assert (await videos.poll(channel, task_id)).status == "completed"


async def test_video_rate_limited_poll_is_retryable(fake, http):
    fake.video_plan = VideoPlan(polls_to_finish=1, rate_limited_polls=2)
    videos, channel = OpenAIVideos(Upstream(http)), channel_for(fake)
    task_id = await videos.submit(channel, videos.prepare(channel, request()))
    for _ in range(2):
        with pytest.raises(GatewayError) as info:
            await videos.poll(channel, task_id)
        assert (info.value.http_status, info.value.retryable) == (429, True)
    assert (await videos.poll(channel, task_id)).status == "completed"


async def test_video_wrong_key_and_upstream_failure(fake, http):
    videos = OpenAIVideos(Upstream(http))
    wrong = channel_for(fake, key="sk-wrong")
    for call in (videos.submit(wrong, videos.prepare(wrong, request())), videos.poll(wrong, "video_x")):
        with pytest.raises(GatewayError) as info:
            await call
        # a task stays on its channel: resending with the same wrong key would not help
        assert (info.value.http_status, info.value.retryable) == (502, False)
    fake.fail_with = (503, {"error": {"message": f"overloaded {fake.base_url}", "type": "server_error"}})
    with pytest.raises(GatewayError) as info:
        await videos.poll(channel_for(fake), "video_x")
    assert (info.value.http_status, info.value.retryable) == (502, True)
    assert fake.base_url not in info.value.message


# -- the fake, as the official SDK sees it ---------------------------------------------------

def test_fake_speaks_the_sdk_videos_and_images_api(fake):
    client = openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
    fake.video_plan = VideoPlan(polls_to_finish=2)
    video = client.videos.create(prompt="a cat", seconds="8", size="1280x720",
                                 input_reference=("cat.png", PNG, "image/png"))
    assert (video.status, video.seconds, video.size) == ("queued", "8", "1280x720")
    assert fake.received[-1].body["input_reference"]["data"] == PNG
    # (SDK 3.57 cannot send the {"image_url"} reference: it insists on a file; JSON is tested above.)
    plain = client.videos.create(prompt="a dog")  # still multipart, as the SDK always sends
    assert fake.received[-1].headers["Content-Type"].startswith("multipart/form-data")
    assert fake.received[-1].body == {"prompt": "a dog"}
    assert client.videos.retrieve(video.id).status == "in_progress"
    with pytest.raises(openai.ConflictError):
        client.videos.download_content(video.id)
    assert client.videos.retrieve(video.id).status == "completed"
    assert client.videos.download_content(video.id).read()[4:8] == b"ftyp"
    assert client.videos.download_content(video.id, variant="thumbnail").read() == THUMBNAIL_WEBP
    remix = client.videos.remix(video.id, prompt="at night")
    assert remix.remixed_from_video_id == video.id
    assert {v.id for v in client.videos.list()} == {video.id, plain.id, remix.id}
    assert client.videos.delete(remix.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(remix.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.videos.create(prompt="x", seconds="5")  # type: ignore[arg-type]
    assert info.value.body["param"] == "seconds"
    image = client.images.generate(prompt="a fox", model="gpt-image-1")
    assert base64.b64decode(image.data[0].b64_json).startswith(b"\x89PNG") and image.usage.total_tokens
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0).videos.list()
