"""The `wan` video provider (Alibaba DashScope / Model Studio): pure request and task
mapping on plain data; then a real `st-ai serve` in front of FakeWan (tests/fakes/wan.py,
real HTTP on 127.0.0.1) through REST JSON, the openai SDK and gRPC by reflection. The
provider-neutral scenarios of tests/test_video_providers_e2e.py run here too, against Wan."""
from __future__ import annotations

import asyncio
import base64
import time

import aiohttp
import grpc
import pytest
from openai import OpenAI

from server.errors import GatewayError
from server.providers import registry
from server.providers.interface import Upstream, VideoRequest
from server.providers.video_shape import FIRST_FRAME, INPUT_LAST_FRAME, REFERENCE, TEXT, VideoCapabilities
from server.providers.wan import PROVIDER, convert, errors, models
from server.providers.wan.client import WanVideo
from server.channel_rules import NewChannel, check
from server.store.channels import Channel
from tests.fakes.sample_media import sample_png
from tests.fakes.wan import MODERATED, FakeWan, Plan
from tests.reflection_client import Reflected, auth
# The provider-neutral scenarios, run here against Wan (their fixtures come along).
from tests.test_video_providers_e2e import (  # noqa: F401
    ASK, PROMPT, assert_moves_forward, call, call_json, gw, key, slow_gw, wait_until_done,
    test_channel_with_a_wrong_key_is_a_502_and_leaves_no_task,
    test_content_before_completion_is_409,
    test_documented_client_flow_downloads_the_providers_exact_video,
    test_image_on_a_model_that_cannot_take_it_is_400_before_sending,
    test_moderation_during_generation_is_moderation_blocked_never_completed,
    test_openai_sdk_create_and_poll_then_download,
    test_provider_blocks_the_submission_for_moderation,
    test_provider_failure_midway_fails_the_task_with_its_reason,
    test_provider_rejects_bad_parameters_at_submit,
    test_provider_that_never_finishes_is_failed_with_timeout,
    test_rate_limited_polls_do_not_fail_the_task,
    test_rate_limited_submission_is_sent_again_before_the_create_answers,
    test_unknown_metadata_key_is_400_before_sending,
)

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")]

PNG = sample_png("wan first frame")
PNG_B64 = base64.b64encode(PNG).decode()
IMAGE_URL = "https://example.com/first-frame.png"  # DashScope fetches it; st-ai never does
LAST_URL = "https://example.com/last-frame.png"
T2V, I2V, KF2V, MEDIA_I2V, MEDIA_T2V = "wan2.6-t2v", "wan2.6-i2v-flash", "wan2.2-kf2v-flash", "wan2.7-i2v", "wan2.7-t2v"


def request(**fields) -> VideoRequest:
    return VideoRequest(**({"model": T2V, "prompt": PROMPT} | fields))


def refused(status: int, param: str | None, **fields) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        convert.prepare(request(**fields))
    assert info.value.http_status == status, info.value.message
    assert info.value.param == param, info.value.message
    return info.value


# -- the channel type -------------------------------------------------------------------

def test_channel_type_is_discovered_with_its_key_format_and_international_base_url():
    specs = registry.discover()
    assert specs["wan"] is PROVIDER and PROVIDER.video is WanVideo and PROVIDER.key_format == "KEY"
    added = check(NewChannel("wan", "wan", [T2V], key="sk-abc123"), specs)
    assert added.base_url == "https://dashscope-intl.aliyuncs.com"
    beijing = check(NewChannel("wan-cn", "wan", [T2V], base_url="https://dashscope.aliyuncs.com/", key="sk-x"), specs)
    assert beijing.base_url == "https://dashscope.aliyuncs.com"


def test_st_ai_channel_add_type_wan(tmp_path):
    from tests.test_cli import run

    db = str(tmp_path / "cli.db")
    added = run("channel", "add", "--name", "wan", "--type", "wan", "--key", "sk-wan-0123456789abcdef",
                "--models", f"{T2V},{I2V}", db=db)
    assert added.code == 0, added.err
    beijing = run("channel", "add", "--name", "wan-cn", "--type", "wan", "--key", "sk-wan-0123456789abcdef",
                  "--base-url", "https://dashscope.aliyuncs.com", "--models", T2V, db=db)
    assert beijing.code == 0, beijing.err
    listing = run("channel", "list", db=db)
    assert "dashscope-intl.aliyuncs.com" in listing.out and "dashscope.aliyuncs.com" in listing.out
    assert "sk-wan-0123456789abcdef" not in listing.out
    endpoint = run("channel", "add", "--name", "wan-bad", "--type", "wan", "--key", "sk-x", "--models", T2V,
                   "--base-url", "https://dashscope-intl.aliyuncs.com/api/v1/tasks", db=db)
    assert endpoint.code != 0 and "Traceback" not in endpoint.err


# -- the documented example requests, each shape ---------------------------------------

def test_text_to_video_example_asks_the_exact_size_and_duration():
    prepared = convert.prepare(request(duration=5.0, width=1280, height=720, fps=30))
    assert prepared.body == {"model": T2V, "input": {"prompt": PROMPT},
                             "parameters": {"size": "1280*720", "duration": 5}}
    assert prepared.asked == {"duration": 5, "fps": 30, "width": 1280, "height": 720, "size": "1280*720"}
    assert convert.path_for(prepared.body) == convert.SYNTHESIS


def test_sizes_and_durations_are_fitted_to_the_nearest_the_model_takes():
    odd = convert.prepare(request(model="wan2.2-t2v-plus", duration=7.4, width=1000, height=560))
    assert odd.body["parameters"] == {"size": "832*480", "duration": 5}
    portrait = convert.prepare(request(duration=40.0, width=1080, height=1920))
    assert portrait.body["parameters"] == {"size": "1080*1920", "duration": 15}
    tier = convert.prepare(request(metadata={"resolution": "1080p", "aspect_ratio": "1:1"}))
    assert tier.body["parameters"]["size"] == "1440*1440"
    small = convert.prepare(request(model="wan2.5-t2v-preview", width=1088, height=832, metadata={"resolution": "480p"}))
    assert small.body["parameters"]["size"] == "624*624"  # 480P has no 4:3: its nearest ratio


def test_image_to_video_passes_the_url_on_with_the_nearest_resolution():
    prepared = convert.prepare(request(model=I2V, image=IMAGE_URL, duration=5.0, width=1280, height=720, fps=30))
    assert prepared.body == {"model": I2V, "input": {"prompt": PROMPT, "img_url": IMAGE_URL},
                             "parameters": {"resolution": "720P", "duration": 5}}
    assert prepared.asked == {"duration": 5, "fps": 30, "resolution": "720P"}


def test_image_as_bare_base64_or_upload_becomes_a_data_uri():
    from_b64 = convert.prepare(request(model=I2V, image=PNG_B64))
    assert from_b64.body["input"]["img_url"] == f"data:image/png;base64,{PNG_B64}"
    uploaded = convert.prepare(request(model=I2V, image_bytes=PNG, image_type="image/png"))
    assert uploaded.body["input"]["img_url"] == f"data:image/png;base64,{PNG_B64}"
    data_uri = f"data:image/png;base64,{PNG_B64}"
    assert convert.prepare(request(model=I2V, image=data_uri)).body["input"]["img_url"] == data_uri


def test_first_and_last_frame_models_use_their_own_path():
    prepared = convert.prepare(request(model=KF2V, image=IMAGE_URL, metadata={"last_frame": LAST_URL}))
    assert prepared.body["input"] == {"prompt": PROMPT, "first_frame_url": IMAGE_URL, "last_frame_url": LAST_URL}
    assert convert.path_for(prepared.body) == convert.KEYFRAME_SYNTHESIS


def test_media_models_get_the_media_list():
    prepared = convert.prepare(request(model=MEDIA_I2V, image=IMAGE_URL, duration=5.0, width=1280, height=720,
                                       metadata={"last_frame": LAST_URL, "negative_prompt": "blur"}))
    assert prepared.body == {"model": MEDIA_I2V, "input": {
        "prompt": PROMPT, "media": [{"type": "first_frame", "url": IMAGE_URL}, {"type": "last_frame", "url": LAST_URL}],
        "negative_prompt": "blur"}, "parameters": {"resolution": "720P", "duration": 5}}
    text = convert.prepare(request(model=MEDIA_T2V, duration=5.0, width=720, height=1280))
    assert text.body["parameters"] == {"resolution": "720P", "ratio": "9:16", "duration": 5}
    assert (text.asked["width"], text.asked["height"]) == (720, 1280)
    refs = convert.prepare(request(model="wan2.7-r2v", metadata={"reference_images": [IMAGE_URL, PNG_B64]}))
    assert refs.body["input"]["media"] == [{"type": "reference_image", "url": IMAGE_URL},
                                           {"type": "reference_image", "url": f"data:image/png;base64,{PNG_B64}"}]
    own = convert.prepare(request(model=MEDIA_I2V, metadata={"media": [
        {"type": "first_clip", "url": "https://example.com/clip.mp4"}]}))
    assert own.body["input"]["media"] == [{"type": "first_clip", "url": "https://example.com/clip.mp4"}]


def test_neutral_and_own_metadata_become_dashscope_parameters():
    prepared = convert.prepare(request(seed=42, metadata={
        "negative_prompt": "text", "watermark": False, "audio": True, "prompt_extend": False,
        "shot_type": "multi", "audio_url": "https://example.com/a.mp3"}))
    assert prepared.body["input"] == {"prompt": PROMPT, "negative_prompt": "text",
                                      "audio_url": "https://example.com/a.mp3"}
    assert prepared.body["parameters"] == {"size": "1280*720", "duration": 5, "prompt_extend": False,
                                           "shot_type": "multi", "watermark": False, "audio": True, "seed": 42}


def test_dashscopes_own_size_is_taken_exactly_when_the_model_makes_it():
    assert convert.prepare(request(metadata={"size": "1088*832"})).body["parameters"]["size"] == "1088*832"
    assert convert.prepare(request(metadata={"size": "832x1088"})).body["parameters"]["size"] == "832*1088"
    refused(400, "metadata.size", metadata={"size": "1000*1000"})
    refused(400, "metadata.size", model="wan2.2-t2v-plus", metadata={"size": "1280*720"})


def test_base_url_may_carry_dashscopes_api_path():
    from server.providers.wan.client import _api_root

    for given in ("https://dashscope.aliyuncs.com", "https://dashscope.aliyuncs.com/api/v1/",
                  "https://dashscope.aliyuncs.com/compatible-mode/v1"):
        channel = Channel(id=1, name="w", type="wan", base_url=given, key="sk-x")
        assert _api_root(channel) == "https://dashscope.aliyuncs.com"


# -- only the impossible is refused, before anything is sent ---------------------------

def test_impossible_requests_are_400_naming_the_field():
    refused(400, "duration", duration=-5.0)
    refused(400, "image", image=IMAGE_URL)                       # a text-to-video model
    refused(400, "image", model=I2V)                              # an image-to-video model without one
    refused(400, "metadata.warp", metadata={"warp": 9})
    refused(400, "metadata.last_frame", model=I2V, image=IMAGE_URL, metadata={"last_frame": LAST_URL})
    refused(400, "metadata.audio", model="wan2.2-t2v-plus", metadata={"audio": True})
    refused(400, "metadata.media[0].type", model=MEDIA_I2V, metadata={"media": [{"type": "x", "url": IMAGE_URL}]})
    refused(400, "image", model=I2V, image="not an image at all")
    refused(400, "image", model=I2V, image="data:image/gif;base64,R0lGODlhAQABAAAAACw=")
    refused(400, "seed", seed=-1)
    refused(400, "metadata.aspect_ratio", model="wan2.5-t2v-preview", metadata={"resolution": "480p",
                                                                                 "aspect_ratio": "4:3"})
    refused(400, "metadata.watermark", metadata={"watermark": "yes"})


def test_unknown_model_names_follow_the_shape_their_name_suggests():
    assert convert.prepare(request(model="wan2.6-t2v-future")).body["parameters"]["size"] == "1280*720"
    assert "img_url" in convert.prepare(request(model="wan2.6-i2v-next", image=IMAGE_URL)).body["input"]
    assert "ratio" in convert.prepare(request(model="wan4.0-video")).body["parameters"]


# -- capabilities ----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_capabilities_of_every_model(name):
    wan = models.MODELS[name]
    caps = WanVideo(Upstream(http=None)).capabilities(name)  # type: ignore[arg-type]
    assert isinstance(caps, VideoCapabilities) and caps is wan.caps
    listing = caps.listing()
    assert listing["durations"] and listing["fps"] == [30] and TEXT in listing["inputs"]
    assert {"negative_prompt", "watermark"} <= set(listing["metadata"])
    if wan.shape == models.SIZE:
        assert listing["sizes"] and FIRST_FRAME not in caps.inputs
    else:
        assert listing["resolutions"]
    if wan.shape == models.KEYFRAMES:
        assert INPUT_LAST_FRAME in caps.inputs
    if wan.needs_image:
        assert FIRST_FRAME in caps.inputs
    # every model answers the documented example
    image = IMAGE_URL if wan.needs_image else None
    prompt_needed = REFERENCE in caps.inputs and wan.needs_image
    assert not prompt_needed
    convert.prepare(request(model=name, image=image, duration=5.0, width=1280, height=720, fps=30))


def test_unknown_model_has_no_declared_capabilities():
    assert WanVideo(Upstream(http=None)).capabilities("wan9-nothing") is None  # type: ignore[arg-type]


# -- task states and errors ------------------------------------------------------------

def _task(status: str, **extra) -> dict:
    return {"request_id": "r", "output": {"task_id": "t", "task_status": status, **extra}}


def test_every_dashscope_task_state():
    assert convert.to_state(_task("PENDING")).status == "queued"
    assert convert.to_state(_task("RUNNING")).status == "in_progress"
    done = convert.to_state(_task("SUCCEEDED", video_url="https://oss/x.mp4?Signature=s"))
    assert (done.status, done.progress, done.video_url) == ("completed", 100, "https://oss/x.mp4?Signature=s")
    failed = convert.to_state(_task("FAILED", code="InternalError.Algo", message="Algorithm process error."))
    assert (failed.status, failed.error_code) == ("failed", "internal_error")
    moderated = convert.to_state(_task("FAILED", code=MODERATED[0], message=MODERATED[1]))
    assert moderated.error_code == "moderation_blocked"
    assert convert.to_state(_task("CANCELED")).error_code == "cancelled"
    unknown = convert.to_state(_task("UNKNOWN"))
    assert (unknown.status, unknown.error_code) == ("failed", "task_not_found")
    assert convert.to_state(_task("SUCCEEDED")).error_code == "upstream_error"
    with pytest.raises(GatewayError):
        convert.to_state(_task("DANCING"))


CHANNEL = Channel(id=1, name="wan", type="wan", base_url="https://dashscope-intl.aliyuncs.com", key="sk-secret",
                  models=[T2V], model_map={}, priority=0, enabled=True)


def _err(status: int, code: str, message: str = "said") -> GatewayError:
    return errors.from_response(status, f'{{"request_id":"r","code":"{code}","message":"{message}"}}'.encode(),
                                CHANNEL)


def test_error_bodies_map_to_the_one_error_table():
    key = _err(401, "InvalidApiKey", "Invalid API-key provided.")
    assert (key.http_status, key.code, key.retryable) == (502, "upstream_error", False)
    assert _err(403, "AccessDenied.Unpurchased").http_status == 502
    assert _err(400, "Arrearage").retryable is False and _err(400, "Arrearage").http_status == 502
    limited = _err(429, "Throttling.RateQuota")
    assert (limited.http_status, limited.retryable) == (429, True)
    assert _err(400, "DataInspectionFailed").code == "moderation_blocked"
    bad = _err(400, "InvalidParameter", "The size is invalid")
    assert (bad.http_status, bad.code) == (400, "invalid_request") and "size is invalid" in bad.message
    assert _err(500, "InternalError").retryable is True
    assert errors.from_response(404, b"", CHANNEL, endpoint=True).http_status == 502
    assert "sk-secret" not in _err(400, "InvalidParameter", "key sk-secret is odd").message


# -- end to end: the shared scenarios' Wan case ----------------------------------------

class WanCase:
    name = "wan"
    type = "wan"
    model = T2V
    rejected_model = "wan9.9-video-preview"   # unknown to st-ai and to DashScope
    image_needed_model = I2V
    models = [T2V, I2V, KF2V, MEDIA_I2V, rejected_model]
    wrong_key = "sk-" + "ee" * 16

    def start(self) -> None:
        self.fake = FakeWan().start()

    def stop(self) -> None:
        self.fake.stop()

    def reset(self) -> None:
        self.fake.reset()
        self.fake.plan = Plan(polls=1)

    @property
    def base_url(self) -> str:
        return self.fake.base_url

    @property
    def key(self) -> str:
        return self.fake.api_key

    @property
    def video(self) -> bytes:
        return self.fake.video

    def received(self) -> list:
        return list(self.fake.received)

    def submissions(self) -> list:
        return [r for r in self.fake.received if r.method == "POST" and r.path.endswith("/video-synthesis")]

    def api_calls(self) -> list:
        return self.fake.api_calls()

    def downloads(self) -> list:
        return [r for r in self.fake.received if r.path.startswith("/oss/")]

    def check_submission(self, received) -> None:
        assert received.path == "/api/v1/services/aigc/video-generation/video-synthesis"
        assert received.body == {"model": T2V, "input": {"prompt": PROMPT},
                                 "parameters": {"size": "1280*720", "duration": 5}}

    @staticmethod
    def sent_seconds(received) -> str:
        return str(received.body["parameters"]["duration"])

    def check_view(self, video: dict) -> None:
        assert video["seconds"] == "5" and video["size"] == "1280x720"
        assert video["metadata"]["size"] == "1280*720" and video["metadata"]["fps"] == 30

    def check_auth(self, received) -> None:
        assert received.headers.get("Authorization") == f"Bearer {self.fake.api_key}"
        if received.path.endswith("/video-synthesis"):
            assert received.headers.get("X-DashScope-Async") == "enable"

    def check_download(self, received) -> None:
        assert "Authorization" not in received.headers  # a signed OSS URL: the key stays home
        assert "Signature=" in received.query

    def take_a_while(self) -> None:
        self.fake.plan = Plan(polls=3)

    def fail_midway(self) -> tuple[str, str]:
        self.fake.plan = Plan(polls=1, failure=("InternalError.Algo", "Algorithm process error."))
        return "internal_error", "Algorithm process error."

    def moderate(self) -> None:
        self.fake.plan = Plan(polls=1, failure=MODERATED)

    def never_finish(self) -> None:
        self.fake.plan = Plan(polls=1, never_finish=True)

    def rate_limit_before_submit(self, polls: int) -> None:
        pass

    def rate_limit_after_submit(self, polls: int) -> None:
        self.fake.rate_limit(polls)

    def rate_limits_served(self, polls: int, task_id: str) -> bool:
        return not self.fake._injected

    def rate_limit_submit(self) -> None:
        self.fake.rate_limit(1)

    def submit_calls(self) -> int:
        return len(self.submissions())

    def reject_at_submit_for_moderation(self) -> str:
        self.fake.inject(400, "DataInspectionFailed", "Input data may contain inappropriate content.")
        return "moderation_blocked"


@pytest.fixture(scope="module")
def started(gw):
    case = WanCase()
    case.start()
    gw.channel("e2e-wan", "wan", case.models, base_url=case.base_url, key=case.key)
    yield case
    case.stop()


@pytest.fixture
def provider(started):
    started.reset()
    yield started
    started.reset()


@pytest.fixture
def fake(provider) -> FakeWan:
    return provider.fake


def _completed(gw, key, body: dict) -> tuple[dict, bytes]:
    status, created = call_json(gw, key, "POST", "/v1/videos", body)
    assert status == 200, created
    seen, video = wait_until_done(gw, key, created["id"])
    assert video["status"] == "completed", video
    assert_moves_forward(seen)
    status, content = call(gw, key, "GET", f"/v1/videos/{created['id']}/content")
    assert status == 200
    return video, content


def test_image_to_video_by_url_completes_and_the_url_is_passed_on(gw, key, fake):
    video, content = _completed(gw, key, {"model": I2V, **ASK, "image": IMAGE_URL})
    assert content == fake.video
    (submission,) = [r for r in fake.received if r.method == "POST"]
    assert submission.body == {"model": I2V, "input": {"prompt": PROMPT, "img_url": IMAGE_URL},
                               "parameters": {"resolution": "720P", "duration": 5}}
    assert video["metadata"]["resolution"] == "720P"


def test_image_to_video_by_base64_sends_a_data_uri(gw, key, fake):
    _, content = _completed(gw, key, {"model": I2V, **ASK, "image": PNG_B64})
    assert content == fake.video
    (submission,) = [r for r in fake.received if r.method == "POST"]
    assert submission.body["input"]["img_url"] == f"data:image/png;base64,{PNG_B64}"


def test_media_list_model_with_first_and_last_frame_completes(gw, key, fake):
    _, content = _completed(gw, key, {"model": MEDIA_I2V, **ASK, "image": IMAGE_URL,
                                      "metadata": {"last_frame": LAST_URL}})
    assert content == fake.video
    (submission,) = [r for r in fake.received if r.method == "POST"]
    assert submission.body["input"]["media"] == [{"type": "first_frame", "url": IMAGE_URL},
                                                 {"type": "last_frame", "url": LAST_URL}]


def test_keyframe_model_is_sent_to_its_own_path(gw, key, fake):
    _, content = _completed(gw, key, {"model": KF2V, **ASK, "image": IMAGE_URL, "metadata": {"last_frame": LAST_URL}})
    assert content == fake.video
    (submission,) = [r for r in fake.received if r.method == "POST"]
    assert submission.path == "/api/v1/services/aigc/image2video/video-synthesis"


def _submitted(gw, key, fake, body: dict) -> tuple[str, str]:
    """Create a video and wait until st-ai has submitted it: (st-ai's id, DashScope's)."""
    before = set(fake.tasks)
    status, created = call_json(gw, key, "POST", "/v1/videos", body)
    assert status == 200, created
    end = time.monotonic() + 5
    while not fake.tasks.keys() - before:
        assert time.monotonic() < end, "never submitted"
        time.sleep(0.02)
    (upstream_id,) = fake.tasks.keys() - before
    return created["id"], upstream_id


def test_task_cancelled_at_dashscope_fails_as_cancelled(gw, key, fake):
    fake.plan = Plan(polls=1, never_finish=True)
    video_id, upstream_id = _submitted(gw, key, fake, {"model": T2V, **ASK})
    fake.tasks[upstream_id].status = "CANCELED"
    _, video = wait_until_done(gw, key, video_id)
    assert video["status"] == "failed" and video["error"]["code"] == "cancelled", video


def test_task_dashscope_no_longer_knows_fails_as_unknown(gw, key, fake):
    fake.plan = Plan(polls=1, never_finish=True)
    video_id, upstream_id = _submitted(gw, key, fake, {"model": T2V, **ASK})
    del fake.tasks[upstream_id]  # as after DashScope's 24 hours
    _, video = wait_until_done(gw, key, video_id)
    assert video["status"] == "failed" and video["error"]["code"] == "task_not_found", video


def test_deleting_a_pending_video_cancels_it_at_dashscope(gw, key, fake):
    fake.plan = Plan(polls=10_000)  # stays PENDING
    video_id, upstream_id = _submitted(gw, key, fake, {"model": T2V, **ASK})
    status, answer = call_json(gw, key, "DELETE", f"/v1/videos/{video_id}")
    assert status == 200 and answer["deleted"] is True, answer
    end = time.monotonic() + 5
    while fake.tasks[upstream_id].status != "CANCELED":
        assert time.monotonic() < end, "never cancelled upstream"
        time.sleep(0.05)
    (cancel,) = [r for r in fake.received if r.path.endswith("/cancel")]
    assert cancel.path == f"/api/v1/tasks/{upstream_id}/cancel" and cancel.method == "POST"
    assert cancel.headers["Authorization"] == f"Bearer {fake.api_key}"


def test_openai_sdk_image_to_video_with_an_upload(gw, key, fake, tmp_path):
    client = OpenAI(base_url=gw.base_url, api_key=key, timeout=15, max_retries=0)
    video = client.videos.create_and_poll(model=I2V, prompt=PROMPT, seconds="4", size="1280x720",
                                          input_reference=("frame.png", PNG, "image/png"), poll_interval_ms=200)
    assert video.status == "completed", video
    client.videos.download_content(video.id).write_to_file(tmp_path / "v.mp4")
    assert (tmp_path / "v.mp4").read_bytes() == fake.video
    (submission,) = [r for r in fake.received if r.method == "POST"]
    assert submission.body["input"]["img_url"] == f"data:image/png;base64,{PNG_B64}"
    assert submission.body["parameters"] == {"resolution": "720P", "duration": 4}


# -- gRPC, by reflection -----------------------------------------------------------------

VIDEOS = "st_ai.v1.Videos"


@pytest.fixture(scope="module")
def reflected(gw):
    with grpc.insecure_channel(gw.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield Reflected(channel)


@pytest.mark.parametrize("body", [{"model": T2V}, {"model": I2V, "image": IMAGE_URL}], ids=["text", "image"])
def test_grpc_by_reflection_to_completion(reflected, key, fake, body):
    create, Create = reflected.callable(VIDEOS, "CreateVideo")
    created = create(Create(prompt=PROMPT, duration=5.0, width=1280, height=720, fps=30, **body),
                     metadata=auth(key), timeout=10)
    get, Get = reflected.callable(VIDEOS, "GetVideo")
    end = time.monotonic() + 15
    while True:
        video = get(Get(video_id=created.id), metadata=auth(key), timeout=10)
        if video.status in ("completed", "failed"):
            break
        assert time.monotonic() < end
        time.sleep(0.2)
    assert video.status == "completed", video
    content, Content = reflected.callable(VIDEOS, "GetVideoContent")
    data = b"".join(c.data for c in content(Content(video_id=created.id), metadata=auth(key), timeout=10))
    assert data == fake.video
    (submission,) = [r for r in fake.received if r.method == "POST"]
    assert submission.body["model"] == body["model"]


# -- the free probe ----------------------------------------------------------------------

def test_probe_accepts_the_right_key_and_refuses_a_wrong_one(started):
    async def probe(key: str) -> None:
        async with aiohttp.ClientSession() as http:
            channel = Channel(id=1, name="wan", type="wan", base_url=started.base_url, key=key, models=[T2V],
                              model_map={}, priority=0, enabled=True)
            await asyncio.wait_for(WanVideo(Upstream(http=http)).probe(channel), 10)

    asyncio.run(probe(started.key))
    with pytest.raises(GatewayError) as info:
        asyncio.run(probe(started.wrong_key))
    assert info.value.http_status == 502 and info.value.code == "upstream_error"
