"""The `hailuo` channel type (MiniMax video generation): the pure request and state
mapping on plain data, every `base_resp.status_code` kind, the HTTP client against the
fake MiniMax (tests/fakes/hailuo.py, real HTTP on 127.0.0.1) with its file retrieval
step, and the whole path through a real `st-ai serve`: REST JSON, the openai SDK and
gRPC by reflection, with the shared end-to-end scenarios of test_video_providers_e2e
run against MiniMax's fake."""
from __future__ import annotations

import base64
import json
import time

import aiohttp
import grpc
import pytest

from server.errors import GatewayError
from server.providers.hailuo import PROVIDER, convert
from server.providers.hailuo.client import HailuoVideo
from server.providers.hailuo.errors import from_http, from_status_code
from server.providers.hailuo.models import MODELS
from server.providers.interface import Upstream, VideoCanceller, VideoModels, VideoRequest
from server.providers.registry import discover
from server.store.channels import Channel
from tests.fakes import hailuo as fake_api
from tests.fakes.hailuo import SENSITIVE_INPUT, SENSITIVE_OUTPUT, FakeHailuo, Plan
from tests.fakes.sample_media import sample_png
from tests.reflection_client import Reflected, auth
# The shared end-to-end scenarios, collected here and run against the fake MiniMax; their
# fixtures come along, and `started` below names the provider.
from tests.test_video_providers_e2e import (  # noqa: F401
    ASK, PROMPT, assert_openai_error, call, call_json, documented_flow, gw, key, provider, sdk, slow_gw, task_ids,
    wait_until_done,
    test_channel_with_a_wrong_key_is_a_502_and_leaves_no_task, test_content_before_completion_is_409,
    test_documented_client_flow_downloads_the_providers_exact_video,
    test_image_on_a_model_that_cannot_take_it_is_400_before_sending,
    test_moderation_during_generation_is_moderation_blocked_never_completed,
    test_openai_sdk_create_and_poll_then_download, test_provider_blocks_the_submission_for_moderation,
    test_provider_failure_midway_fails_the_task_with_its_reason, test_provider_rejects_bad_parameters_at_submit,
    test_provider_that_never_finishes_is_failed_with_timeout, test_rate_limited_polls_do_not_fail_the_task,
    test_rate_limited_submission_is_sent_again_before_the_create_answers,
    test_unknown_metadata_key_is_400_before_sending)

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")]

MODEL = "MiniMax-Hailuo-2.3"
PNG = sample_png("hailuo first frame", 320, 320)
PNG_B64 = base64.b64encode(PNG).decode()
IMAGE_URL = "https://images.example.com/first-frame.png"


def _req(model: str = MODEL, **kw) -> VideoRequest:
    kw.setdefault("prompt", PROMPT)
    return VideoRequest(model=model, **kw)


def _refused(request: VideoRequest) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        convert.prepare(request)
    assert caught.value.http_status == 400
    return caught.value


# -- the request, on plain data ------------------------------------------------------------

def test_documented_example_maps_to_the_nearest_duration_and_resolution():
    prepared = convert.prepare(_req(duration=5.0, width=1280, height=720, fps=30))
    assert prepared.body == {"model": MODEL, "prompt": PROMPT, "duration": 6, "resolution": "768P"}
    assert prepared.asked == {"duration": 6, "resolution": "768P", "width": 1366, "height": 768}


@pytest.mark.parametrize("model, request_fields, duration, resolution", [
    (MODEL, dict(duration=10.0, width=1920, height=1080), 10, "768P"),   # 1080P is 6 s only: 10 s keeps 768P
    (MODEL, dict(duration=4.0, width=1920, height=1080), 6, "1080P"),
    (MODEL, dict(duration=8.0), 10, "768P"),                             # a tie goes to the longer
    (MODEL, dict(duration=10.0, metadata={"resolution": "1080p"}), 6, "1080P"),  # a named resolution is kept
    ("MiniMax-Hailuo-02", dict(duration=10.0, width=640, height=360, image=IMAGE_URL), 10, "512P"),
    ("MiniMax-Hailuo-02", dict(duration=6.0, width=640, height=360), 6, "768P"),  # 512P only from an image
    ("MiniMax-Hailuo-02", dict(width=640, height=360, image=IMAGE_URL,
                               metadata={"last_frame": IMAGE_URL}), 6, "768P"),   # no 512P with a last frame
    ("T2V-01", dict(duration=10.0, width=1920, height=1080), 6, "720P"),
    ("MiniMax-Hailuo-9-preview", dict(duration=12.0, width=1280, height=720), 10, "768P"),  # general rules
])
def test_duration_and_resolution_are_fitted_together(model, request_fields, duration, resolution):
    prepared = convert.prepare(_req(model, **request_fields))
    assert (prepared.body["duration"], prepared.body["resolution"]) == (duration, resolution)
    assert (prepared.asked["duration"], prepared.asked["resolution"]) == (duration, resolution)


def test_images_go_as_urls_or_data_uris():
    by_url = convert.prepare(_req("I2V-01", image=IMAGE_URL)).body
    assert by_url == {"model": "I2V-01", "prompt": PROMPT, "first_frame_image": IMAGE_URL, "duration": 6,
                      "resolution": "720P"}
    bare = convert.prepare(_req(image=PNG_B64)).body["first_frame_image"]
    assert bare == f"data:image/png;base64,{PNG_B64}"
    data_uri = convert.prepare(_req(image=f"data:image/PNG;base64,{PNG_B64}")).body["first_frame_image"]
    assert data_uri == bare
    upload = convert.prepare(_req(image_bytes=PNG, image_type="image/png")).body["first_frame_image"]
    assert upload == bare
    only_image = convert.prepare(_req("MiniMax-Hailuo-2.3-Fast", prompt="", image=IMAGE_URL))
    assert "prompt" not in only_image.body and only_image.asked["width"] is None  # the image decides the shape


def test_first_last_frame_and_subject_reference():
    both = convert.prepare(_req("MiniMax-Hailuo-02", image=IMAGE_URL,
                                metadata={"last_frame": PNG_B64, "watermark": True, "prompt_optimizer": False}))
    assert both.body["last_frame_image"] == f"data:image/png;base64,{PNG_B64}"
    assert both.body["aigc_watermark"] is True and both.body["prompt_optimizer"] is False
    subject = convert.prepare(_req("S2V-01", metadata={"reference_images": [IMAGE_URL]})).body
    assert subject["subject_reference"] == [{"type": "character", "image": [IMAGE_URL]}]
    for body in (both.body, subject):
        assert fake_api.validate(body) is None  # what MiniMax takes, by the fake's own reading


@pytest.mark.parametrize("request_, param", [
    (_req("T2V-01", image=IMAGE_URL), "image"),                         # a text-only model given an image
    (_req("I2V-01"), "image"),                                          # an image model given none
    (_req("MiniMax-Hailuo-2.3-Fast"), "image"),
    (_req(duration=-5.0), "duration"),
    (_req(seed=7), "seed"),
    (_req(image=base64.b64encode(b"just some text, not a picture").decode()), "image"),
    (_req(metadata={"warp_speed": "max"}), "metadata.warp_speed"),
    (_req(metadata={"aspect_ratio": "9:16"}), "metadata.aspect_ratio"),  # MiniMax takes no ratio
    (_req(metadata={"last_frame": IMAGE_URL}), "metadata.last_frame"),   # only Hailuo 02 takes one
    (_req(metadata={"resolution": "4k"}), "metadata.resolution"),
    (_req(metadata={"watermark": "yes"}), "metadata.watermark"),
    (_req("MiniMax-Hailuo-02", metadata={"resolution": "512p"}), "metadata.resolution"),  # 512P needs an image
    (_req("MiniMax-Hailuo-02", image=IMAGE_URL, metadata={"last_frame": IMAGE_URL, "fast_pretreatment": True}),
     "metadata.fast_pretreatment"),
    (_req("S2V-01"), "metadata.reference_images"),
    (_req(prompt="x" * 2001), "prompt"),
    (_req(prompt=""), "prompt"),
])
def test_impossible_requests_are_400_naming_the_field(request_, param):
    assert _refused(request_).param == param


def test_capabilities_of_every_model():
    video = HailuoVideo(Upstream(http=None))  # type: ignore[arg-type]  # no call is made
    assert isinstance(video, VideoModels)
    assert set(MODELS) == fake_api.T2V | fake_api.I2V | fake_api.S2V  # every model MiniMax lists today
    for name in MODELS:
        listing = video.capabilities(name).listing()
        assert listing["durations"] and listing["resolutions"] and listing["inputs"], name
        assert "watermark" in listing["metadata"] and "aspect_ratio" not in listing["metadata"], name
    assert video.capabilities("MiniMax-Hailuo-2.3").listing() == {
        "inputs": ["text", "first_frame"], "durations": [6, 10], "resolutions": ["768P", "1080P"],
        "metadata": ["fast_pretreatment", "prompt_optimizer", "resolution", "watermark"]}
    assert video.capabilities("MiniMax-Hailuo-02").listing()["inputs"] == ["text", "first_frame", "last_frame"]
    assert video.capabilities("MiniMax-Hailuo-2.3-Fast").listing()["inputs"] == ["first_frame"]
    assert video.capabilities("S2V-01").listing()["inputs"] == ["text", "reference"]
    assert video.capabilities("T2V-01").listing()["durations"] == [6]
    assert video.capabilities("MiniMax-Hailuo-9-preview") is None


def test_provider_spec():
    spec = discover()["hailuo"]
    assert spec is PROVIDER
    assert spec.default_base_url == "https://api.minimax.io" and spec.key_format == "KEY" and spec.upstream
    assert not isinstance(HailuoVideo(Upstream(http=None)), VideoCanceller)  # type: ignore[arg-type]


def test_channel_add_takes_the_type_with_its_default_and_regional_base_url(tmp_path):
    from server.store import channels as channel_store
    from server.store.db import open_db
    from tests.test_cli import run

    db = str(tmp_path / "cli.db")
    added = run("channel", "add", "--name", "minimax", "--type", "hailuo", "--key", "sk-minimax-secret",
                "--models", "MiniMax-Hailuo-2.3,MiniMax-Hailuo-02", db=db)
    assert added.code == 0, added.err
    china = run("channel", "add", "--name", "minimax-cn", "--type", "hailuo", "--key", "sk-minimax-secret",
                "--base-url", "https://api.minimaxi.com", "--models", "MiniMax-Hailuo-2.3", db=db)
    assert china.code == 0, china.err
    keyless = run("channel", "add", "--name", "no-key", "--type", "hailuo", "--models", MODEL, db=db)
    assert keyless.code != 0 and "--key KEY" in keyless.err and "Traceback" not in keyless.err
    store = open_db(db)
    try:
        assert channel_store.get(store, "minimax").base_url == "https://api.minimax.io"
        assert channel_store.get(store, "minimax-cn").base_url == "https://api.minimaxi.com"
    finally:
        store.close()
    listed = run("channel", "list", db=db)
    assert "MiniMax Hailuo" in listed.out and "sk-minimax-secret" not in listed.out


# -- task states and errors, on plain data -------------------------------------------------

def _ok(**fields) -> dict:
    return {**fields, "base_resp": {"status_code": 0, "status_msg": "success"}}


def test_task_states():
    assert convert.to_state(_ok(task_id="1", status="Preparing")).status == "queued"
    assert convert.to_state(_ok(task_id="1", status="Queueing")).status == "queued"
    running = convert.to_state(_ok(task_id="1", status="Processing"))
    assert running.status == "in_progress" and 0 < running.progress < 100
    done = convert.to_state(_ok(task_id="1", status="Success", file_id="3617"))
    assert (done.status, done.progress) == ("completed", 100)
    assert convert.file_id(_ok(status="Success", file_id=3617)) == "3617"
    no_file = convert.to_state(_ok(task_id="1", status="Success", file_id=""))
    assert (no_file.status, no_file.error_code) == ("failed", "upstream_error")
    failed = convert.to_state(_ok(task_id="1", status="Fail"))
    assert (failed.status, failed.error_code) == ("failed", "generation_failed")
    for code, words in (SENSITIVE_OUTPUT, SENSITIVE_INPUT):
        blocked = convert.to_state({"task_id": "1", "status": "Fail",
                                    "base_resp": {"status_code": code, "status_msg": words}})
        assert (blocked.status, blocked.error_code) == ("failed", "moderation_blocked")
        assert words in blocked.error_message
    with pytest.raises(GatewayError):
        convert.to_state(_ok(task_id="1", status="Exploded"))


CHANNEL = Channel(id=1, name="minimax", type="hailuo", base_url="https://api.minimax.io",
                  key="sk-channel-secret-0123456789", models=(MODEL,))


@pytest.mark.parametrize("code, status, error_code, retryable", [
    (1002, 429, "upstream_rate_limited", True),    # rate limit
    (1039, 429, "upstream_rate_limited", True),    # token limit
    (1004, 502, "upstream_error", False),          # the channel's key refused: never the client's 401
    (2049, 502, "upstream_error", False),          # not a valid key
    (1008, 502, "upstream_error", False),          # the account's balance is used up
    (2056, 502, "upstream_error", False),          # the Token Plan's limit
    (1026, 400, "moderation_blocked", False),      # sensitive input
    (1027, 400, "moderation_blocked", False),      # sensitive output
    (2013, 400, "invalid_request", False),         # a bad parameter
    (1001, 504, "upstream_timeout", True),
    (1000, 502, "upstream_error", True),           # MiniMax's own failure passes
    (1013, 502, "upstream_error", True),
    (4242, 502, "upstream_error", False),          # unknown: not retried blindly
])
def test_every_status_code_kind_is_mapped(code, status, error_code, retryable):
    error = from_status_code(code, f"something about sk-channel-secret-0123456789 ({code})", CHANNEL)
    assert (error.http_status, error.code, error.retryable) == (status, error_code, retryable)
    assert "sk-channel-secret" not in error.message
    assert error.http_status != 401


def test_http_errors_and_base_resp_in_them():
    assert from_http(429, b"", CHANNEL).code == "upstream_rate_limited"
    assert from_http(401, b"{}", CHANNEL).http_status == 502
    assert from_http(404, b"not here", CHANNEL, endpoint=True).http_status == 502
    assert from_http(500, b'{"base_resp": {"status_code": 1002, "status_msg": "rpm"}}', CHANNEL).http_status == 429
    assert from_http(503, b"", CHANNEL).retryable


# -- the client against the fake MiniMax ---------------------------------------------------

def _channel(fake: FakeHailuo, key: str | None = None, suffix: str = "") -> Channel:
    return Channel(id=1, name="hailuo", type="hailuo", base_url=fake.base_url + suffix,
                   key=key or fake.api_key, models=(MODEL,))


@pytest.fixture(scope="module")
def fake() -> FakeHailuo:
    server = FakeHailuo().start()
    yield server
    server.stop()


@pytest.fixture
async def client(fake: FakeHailuo):
    fake.reset()
    async with aiohttp.ClientSession() as session:
        yield HailuoVideo(Upstream(http=session))


async def _run(client: HailuoVideo, channel: Channel, request: VideoRequest, max_polls: int = 10):
    task_id = await client.submit(channel, client.prepare(channel, request))
    states = []
    for _ in range(max_polls):
        states.append(await client.poll(channel, task_id))
        if states[-1].status in ("completed", "failed"):
            break
    return task_id, states


async def test_file_retrieval_step_by_file_id(fake: FakeHailuo, client: HailuoVideo):
    channel = _channel(fake, suffix="/v1")  # a base URL written with MiniMax's /v1 works too
    task_id, states = await _run(client, channel, _req(duration=5.0, width=1280, height=720, fps=30))
    assert [s.status for s in states] == ["queued", "queued", "in_progress", "completed"]
    data = b"".join([c async for c in client.download(channel, task_id, states[-1], "video")])
    assert data == fake.video

    submit, *polls, query, retrieve, cdn = fake.received
    assert (submit.method, submit.path) == ("POST", "/v1/video_generation")
    assert submit.body == {"model": MODEL, "prompt": PROMPT, "duration": 6, "resolution": "768P"}
    assert all(p.path == "/v1/query/video_generation" and p.query == {"task_id": task_id} for p in polls + [query])
    file_id = fake.tasks[task_id].file_id
    assert (retrieve.method, retrieve.path, retrieve.query) == ("GET", "/v1/files/retrieve", {"file_id": str(file_id)})
    for api_call in (submit, *polls, query, retrieve):
        assert api_call.headers["Authorization"] == f"Bearer {fake.api_key}"
    assert cdn.path == f"/cdn/video/{file_id}.mp4" and "Authorization" not in cdn.headers  # the key stays home
    with pytest.raises(GatewayError) as caught:
        [c async for c in client.download(channel, task_id, states[-1], "thumbnail")]
    assert caught.value.code == "thumbnail_unavailable"


async def test_poll_rate_limit_is_retryable_and_a_wrong_key_is_not_the_clients(fake: FakeHailuo,
                                                                               client: HailuoVideo):
    channel = _channel(fake)
    task_id = await client.submit(channel, client.prepare(channel, _req()))
    fake.rate_limited_queries = 1
    with pytest.raises(GatewayError) as caught:
        await client.poll(channel, task_id)
    assert caught.value.http_status == 429 and caught.value.retryable
    assert (await client.poll(channel, task_id)).status == "queued"

    wrong = _channel(fake, key="not-the-minimax-key")
    for attempt in (client.poll(wrong, task_id), client.probe(wrong)):
        with pytest.raises(GatewayError) as caught:
            await attempt
        assert caught.value.http_status == 502 and not caught.value.retryable
    await client.probe(channel)  # the right key: the probe passes


# -- through st-ai, the shared scenarios ---------------------------------------------------

class HailuoCase:
    name = "hailuo"
    type = "hailuo"
    model = MODEL
    # MiniMax-Hailuo-9-preview is unknown to st-ai (fitted by the general rules, left for
    # MiniMax to judge) and refused by MiniMax; the Fast model makes videos from images only
    models = [MODEL, "MiniMax-Hailuo-02", "MiniMax-Hailuo-2.3-Fast", "MiniMax-Hailuo-9-preview"]
    rejected_model = "MiniMax-Hailuo-9-preview"
    image_needed_model = "MiniMax-Hailuo-2.3-Fast"
    wrong_key = "eyJhbGciOiJSUzI1NiJ9.not-this-channels-key.c2ln"

    def start(self) -> None:
        self.fake = FakeHailuo().start()

    def stop(self) -> None:
        self.fake.stop()

    def reset(self) -> None:
        self.fake.reset()

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
        return self.fake.submissions()

    def api_calls(self) -> list:
        return [r for r in self.fake.received if r.path.startswith("/v1/")]

    def downloads(self) -> list:
        return [r for r in self.fake.received if r.path.startswith("/cdn/")]

    def check_submission(self, received) -> None:
        assert (received.method, received.path) == ("POST", "/v1/video_generation")
        assert received.body == {"model": MODEL, "prompt": PROMPT, "duration": 6, "resolution": "768P"}

    @staticmethod
    def sent_seconds(received) -> str:
        return str(received.body["duration"])

    def check_view(self, video: dict) -> None:
        assert video["seconds"] == "6" and video["size"] == "1366x768"
        assert video["metadata"] == {"duration": 6, "resolution": "768P", "width": 1366, "height": 768}

    def check_auth(self, received) -> None:
        assert received.headers.get("Authorization") == f"Bearer {self.fake.api_key}"

    def check_download(self, received) -> None:
        assert "Authorization" not in received.headers and "Signature" in received.query

    def take_a_while(self) -> None:
        self.fake.plan = Plan(polls_per_stage=2)

    def fail_midway(self) -> tuple[str, str]:
        self.fake.plan = Plan(fail_with=(1000, "unknown error in video generation"))
        return "generation_failed", "unknown error in video generation"

    def moderate(self) -> None:
        self.fake.plan = Plan(fail_with=SENSITIVE_OUTPUT)

    def never_finish(self) -> None:
        self.fake.plan = Plan(never_finish=True)

    def rate_limit_before_submit(self, polls: int) -> None:
        pass

    def rate_limit_after_submit(self, polls: int) -> None:
        self.fake.rate_limited_queries = polls

    def rate_limits_served(self, polls: int, task_id: str) -> bool:
        return self.fake.rate_limited_queries == 0

    def rate_limit_submit(self) -> None:
        self.fake.submit_answers.append((1002, "rate limit exceeded(RPM)"))

    def submit_calls(self) -> int:
        return len(self.submissions())

    def reject_at_submit_for_moderation(self) -> str:
        self.fake.submit_answers.append(SENSITIVE_INPUT)
        return "moderation_blocked"


@pytest.fixture(scope="module")
def started(gw):
    case = HailuoCase()
    case.start()
    gw.channel(f"e2e-{case.name}", case.type, case.models, base_url=case.base_url, key=case.key)
    yield case
    case.stop()


# -- through st-ai, what is MiniMax's own --------------------------------------------------

@pytest.mark.parametrize("image", [IMAGE_URL, PNG_B64], ids=["url", "base64"])
def test_image_to_video_over_rest_downloads_the_exact_video(gw, key, provider, tmp_path, image):
    body = {"model": MODEL, **ASK, "fps": 30, "image": image}
    _, seen, video = documented_flow(gw, key, body, tmp_path / "i2v.mp4")
    assert video["status"] == "completed", video
    assert (tmp_path / "i2v.mp4").read_bytes() == provider.video
    (submission,) = provider.submissions()
    expected = IMAGE_URL if image == IMAGE_URL else f"data:image/png;base64,{PNG_B64}"
    assert submission.body == {"model": MODEL, "prompt": PROMPT, "first_frame_image": expected, "duration": 6,
                               "resolution": "768P"}
    # st-ai passed the URL on without fetching it: MiniMax fetches it itself
    assert video["metadata"] == {"duration": 6, "resolution": "768P", "width": None, "height": None}
    task = list(provider.fake.tasks.values())[-1]
    retrievals = [r for r in provider.received() if r.path == "/v1/files/retrieve"]
    assert retrievals and all(r.query == {"file_id": str(task.file_id)} for r in retrievals)


def test_openai_sdk_image_to_video_with_an_uploaded_frame(gw, key, provider, tmp_path):
    client = sdk(gw, key)
    video = client.videos.create_and_poll(model=MODEL, prompt=PROMPT, seconds="8", size="1280x720",
                                          input_reference=("frame.png", PNG, "image/png"), poll_interval_ms=200)
    assert video.status == "completed", video
    assert video.seconds == "10"  # 8 s is nearest 10 s (a tie between 6 and 10 goes to the longer)
    client.videos.download_content(video.id).write_to_file(tmp_path / "sdk.mp4")
    assert (tmp_path / "sdk.mp4").read_bytes() == provider.video
    (submission,) = provider.submissions()
    assert submission.body["first_frame_image"] == f"data:image/png;base64,{PNG_B64}"
    assert submission.body["duration"] == 10 and submission.body["resolution"] == "768P"


@pytest.mark.parametrize("code, words", [(1008, "insufficient balance"), (2049, "invalid api key")])
def test_the_channels_account_or_key_refused_is_a_502_never_a_401_and_leaves_no_task(gw, key, provider, code,
                                                                                    words):
    provider.fake.submit_answers.append((code, words))
    before = task_ids(gw, key)
    status, answer = call_json(gw, key, "POST", "/v1/videos", {"model": MODEL, **ASK})
    error = assert_openai_error(status, answer, 502)
    assert error["code"] == "upstream_error", error
    assert len(provider.submissions()) == 1
    time.sleep(0.6)
    assert len(provider.submissions()) == 1  # not sent again
    assert task_ids(gw, key).keys() == before.keys()
    if code == 2049:  # a rejected key disables the channel; the next tests need it, as an operator would
        enable_again(gw, key)


def enable_again(gw, key) -> None:
    gw.enable_auto_disabled()
    gw.wait_for(lambda: MODEL in gw._models(key), "the channel to be routed again")


def test_bad_parameter_at_submit_is_the_creates_400_with_minimaxs_reason(gw, key, provider):
    provider.fake.submit_answers.append((2013, "invalid params, prompt contains unsupported characters"))
    status, answer = call_json(gw, key, "POST", "/v1/videos", {"model": MODEL, **ASK})
    error = assert_openai_error(status, answer, 400)
    assert error["code"] == "invalid_request" and "unsupported characters" in error["message"], error
    assert len(provider.submissions()) == 1


# -- over gRPC by reflection ---------------------------------------------------------------

VIDEOS = "st_ai.v1.Videos"


@pytest.fixture(scope="module")
def reflection(gw):
    with grpc.insecure_channel(gw.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield Reflected(channel)


def _grpc_to_completion(reflection: Reflected, key: str, **fields) -> tuple:
    create, CreateRequest = reflection.callable(VIDEOS, "CreateVideo")
    get, GetRequest = reflection.callable(VIDEOS, "GetVideo")
    content, ContentRequest = reflection.callable(VIDEOS, "GetVideoContent")
    video = create(CreateRequest(model=MODEL, prompt=PROMPT, **fields), metadata=auth(key), timeout=10)
    deadline = time.monotonic() + 15
    while video.status not in ("completed", "failed"):
        assert time.monotonic() < deadline, video
        time.sleep(0.2)
        video = get(GetRequest(video_id=video.id), metadata=auth(key), timeout=10)
    data = b"".join(c.data for c in content(ContentRequest(video_id=video.id), metadata=auth(key), timeout=10))
    return video, data


@pytest.mark.parametrize("image", [None, PNG_B64], ids=["text", "image"])
def test_grpc_by_reflection_to_completion(gw, key, provider, reflection, image):
    fields = dict(duration=5.0, width=1280, height=720, fps=30)
    if image:
        fields["image"] = image
    video, data = _grpc_to_completion(reflection, key, **fields)
    assert video.status == "completed" and video.seconds == "6", video
    assert data == provider.video
    (submission,) = provider.submissions()
    assert submission.body["duration"] == 6 and submission.body["resolution"] == "768P"
    assert ("first_frame_image" in submission.body) == bool(image)
    assert any(r.path == "/v1/files/retrieve" for r in provider.received())
    assert key not in json.dumps([r.headers for r in provider.received()])
