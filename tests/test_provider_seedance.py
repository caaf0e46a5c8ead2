"""The `seedance` channel type (Volcengine Ark / BytePlus ModelArk content generation
tasks) end to end: a real `st-ai serve` in front of the fake Ark (real HTTP on
127.0.0.1, nothing mocked in-process), driven through REST JSON, the official openai SDK
and gRPC by reflection. Checked on both sides: what the client sees and what Ark received."""
from __future__ import annotations

import base64
import json
import time
import urllib.request
import uuid

import grpc
import pytest

from server.errors import GatewayError
from server.providers import video_shape as vs
from server.providers.interface import VideoRequest
from server.providers.seedance import client as seedance_client, convert, models
from server.store import channels as channel_store
from server.store.db import open_db
from tests.fakes.sample_media import sample_png
from tests.fakes.seedance import TASKS, FakeSeedance
from tests.reflection_client import Reflected, auth
from tests.test_cli import run as st_ai
from tests.test_video_providers_e2e import (MAX_ATTEMPTS, POLL, PROMPT, _gateway, assert_moves_forward,
                                            assert_openai_error,
                                            call, call_json, documented_flow, sdk,
                                            task_ids, wait_until_done)
from tests.conftest import stop_gateway

pytestmark = [pytest.mark.timeout(90),
              pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")]

MODEL = "seedance-1-0-pro-250528"
LITE_T2V = "seedance-1-0-lite-t2v-250428"
LITE_I2V = "seedance-1-0-lite-i2v-250428"
AUDIO_MODEL = "seedance-1-5-pro-251215"
ALL = [MODEL, LITE_T2V, LITE_I2V, AUDIO_MODEL]
ASK = {"prompt": PROMPT, "duration": 5.0, "width": 1280, "height": 720, "fps": 30}  # the documented example
IMAGE_URL = "https://ark-doc.tos-ap-southeast-1.bytepluses.com/see_i2v.jpeg"
PNG = sample_png("seedance first frame")
TIMEOUT = 2


# -- fixtures ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake():
    server = FakeSeedance().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean(fake):
    def reset():
        fake.received.clear()
        fake.polls_per_stage, fake.fail_with, fake.moderate, fake.never_finish = 1, None, False, False
        fake.hold, fake.block_at_submit, fake.reject_next, fake.rate_limit_next = None, False, None, 0
        fake.video_url_for = None
    reset()
    yield
    reset()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fake):
    gateway = _gateway(tmp_path_factory)
    gateway.channel("ark", "seedance", ALL, base_url=fake.base_url, key=fake.key)
    yield gateway
    stop_gateway(gateway)


@pytest.fixture(scope="module")
def key(gw) -> str:
    return gw.token("seedance-e2e")


def submissions(fake: FakeSeedance) -> list:
    return [r for r in fake.received if r.method == "POST"]


def api_calls(fake: FakeSeedance) -> list:
    return [r for r in fake.received if r.path.startswith(TASKS)]


def check_ark_calls(fake: FakeSeedance, key: str) -> None:
    """Ark's Bearer key on every API call; nothing (no key) on the signed storage URL."""
    for received in api_calls(fake):
        assert received.headers["Authorization"] == f"Bearer {fake.key}", received.path
    for received in fake.downloads():
        assert "Authorization" not in received.headers
        assert "X-Tos-Signature=" in received.query and "X-Tos-Expires=86400" in received.query
    for received in fake.received:  # the client's st-ai token never reaches Ark
        assert key not in json.dumps(received.headers) + repr(received.body) + received.query, received.path


def text_body(model: str = MODEL) -> dict:
    """What Ark receives for the documented example (5.0 s, 1280x720, 30 fps)."""
    return {"model": model, "content": [{"type": "text", "text": PROMPT}], "ratio": "16:9", "duration": 5,
            "resolution": "720p"}


# -- the channel type ------------------------------------------------------------------------

def test_channel_add_defaults_to_bytepluses_and_takes_the_beijing_host(tmp_path):
    db = str(tmp_path / "cli.db")
    added = st_ai("channel", "add", "--name", "intl", "--type", "seedance", "--key", "ark-secret-key-1",
                  "--models", MODEL, db=db)
    assert added.code == 0, added.err
    assert "ark-secret-key-1" not in added.out + added.err
    china = st_ai("channel", "add", "--name", "cn", "--type", "seedance", "--key", "ark-secret-key-2",
                  "--base-url", "https://ark.cn-beijing.volces.com", "--models", "doubao-" + MODEL, db=db)
    assert china.code == 0, china.err
    no_key = st_ai("channel", "add", "--name", "bad", "--type", "seedance", "--models", MODEL, db=db)
    assert no_key.code != 0 and "ARK_API_KEY" in no_key.err and "Traceback" not in no_key.err
    store = open_db(db)
    try:
        assert channel_store.get(store, "intl").base_url == "https://ark.ap-southeast.bytepluses.com"
        assert channel_store.get(store, "cn").base_url == "https://ark.cn-beijing.volces.com"
    finally:
        store.close()


def test_capabilities_of_every_model_in_every_spelling():
    provider = seedance_client.SeedanceVideo.__new__(seedance_client.SeedanceVideo)
    expected = {
        "seedance-1-0-pro-250528": ((2, 12), ["text", "first_frame", "last_frame"], "1080p", False),
        "doubao-seedance-1-0-pro-fast-251015": ((2, 12), ["text", "first_frame"], "1080p", False),
        "seedance-1-0-lite-t2v-250428": ((2, 12), ["text"], "720p", False),
        "doubao-seedance-1-0-lite-i2v-250428": ((2, 12), ["text", "first_frame", "last_frame", "reference"],
                                                "720p", False),
        "seedance-1-5-pro-251215": ((4, 12), ["text", "first_frame", "last_frame"], "720p", True),
        "dreamina-seedance-2-0-260128": ((4, 15), ["text", "first_frame", "last_frame", "reference"], "720p", True),
        "dreamina-seedance-2-0-fast-260128": ((4, 15), ["text", "first_frame", "last_frame", "reference"],
                                              "720p", True),
        "seedance-1-0-pro": ((2, 12), ["text", "first_frame", "last_frame"], "1080p", False),
    }
    for name, (span, inputs, resolution, audio) in expected.items():
        caps = provider.capabilities(name)
        assert caps is not None, name
        listed = caps.listing()
        assert listed["durations"] == list(range(span[0], span[1] + 1)), name
        assert listed["inputs"] == inputs, name
        assert listed["aspect_ratios"] == ["16:9", "4:3", "1:1", "3:4", "9:16", "21:9"], name
        assert listed["fps"] == [24] and caps.default_resolution == resolution, name
        assert (vs.AUDIO in caps.neutral) is audio, name
        assert vs.NEGATIVE_PROMPT not in listed["metadata"], name  # Seedance has no negative prompt
        assert (vs.LAST_FRAME in caps.neutral) is ("last_frame" in inputs), name
    assert provider.capabilities("dreamina-seedance-2-0-fast-260128").resolutions == ("480p", "720p")
    assert provider.capabilities("ep-20250601123456-abcde") is None  # an endpoint id: general rules


# -- fitting and refusing, before anything is sent (pure) --------------------------------

def test_documented_examples_fit_to_the_nearest_accepted_values():
    prepared = convert.prepare(VideoRequest(model=MODEL, **ASK))
    assert prepared.body == text_body()
    assert prepared.asked == {"duration": 5.0, "width": 1280, "height": 720, "fps": 24, "aspect_ratio": "16:9",
                              "resolution": "720p"}
    assert [models.nominal_size(r, q) for r, q in (("480p", "16:9"), ("1080p", "9:16"), ("720p", "21:9"),
                                                   ("720p", "adaptive"))] == [(854, 480), (1080, 1920),
                                                                              (1680, 720), None]
    # 1.5 s and a portrait 1080x1920 on Seedance 1.5 (4-12 s)
    odd = convert.prepare(VideoRequest(model=AUDIO_MODEL, prompt=PROMPT, duration=1.5, width=1080, height=1920,
                                       seed=7, metadata={"audio": False, "watermark": True}))
    assert odd.body["duration"] == 4 and odd.body["ratio"] == "9:16" and odd.body["resolution"] == "1080p"
    assert odd.body["generate_audio"] is False and odd.body["watermark"] is True and odd.body["seed"] == 7
    assert odd.asked["audio"] is False and odd.asked["watermark"] is True
    assert (odd.asked["width"], odd.asked["height"]) == (1080, 1920)


def test_images_go_to_ark_as_urls_or_data_uris_never_fetched():
    by_url = convert.prepare(VideoRequest(model=MODEL, prompt=PROMPT, image=IMAGE_URL, duration=5.0))
    assert by_url.body["content"][1] == {"type": "image_url", "image_url": {"url": IMAGE_URL}, "role": "first_frame"}
    assert by_url.body["ratio"] == "adaptive"  # no size asked: the video takes the image's shape
    bare = base64.b64encode(PNG).decode()
    for image in (bare, f"data:image/png;base64,{bare}"):
        prepared = convert.prepare(VideoRequest(model=MODEL, prompt=PROMPT, image=image, **{
            k: v for k, v in ASK.items() if k != "prompt"}))
        assert prepared.body["content"][1]["image_url"]["url"] == f"data:image/png;base64,{bare}"
        assert prepared.body["ratio"] == "16:9"  # a size asked: its nearest ratio
    uploaded = convert.prepare(VideoRequest(model=MODEL, prompt="", image_bytes=PNG, image_type="image/png"))
    assert uploaded.body["content"] == [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{bare}"},
                                         "role": "first_frame"}]
    frames = convert.prepare(VideoRequest(model=MODEL, prompt=PROMPT, image=IMAGE_URL,
                                          metadata={"last_frame": bare}))
    assert [item.get("role") for item in frames.body["content"]] == [None, "first_frame", "last_frame"]
    refs = convert.prepare(VideoRequest(model=LITE_I2V, prompt=PROMPT,
                                        metadata={"reference_images": [IMAGE_URL, bare]}))
    assert [item.get("role") for item in refs.body["content"]] == [None, "reference_image", "reference_image"]


@pytest.mark.parametrize("request_, param", [
    (VideoRequest(model=LITE_T2V, prompt=PROMPT, image=IMAGE_URL), "image"),
    (VideoRequest(model=LITE_I2V, prompt=PROMPT), "image"),
    (VideoRequest(model=MODEL, prompt=PROMPT, duration=-5.0), "duration"),
    (VideoRequest(model=MODEL, prompt=PROMPT, width=-1280, height=720), "width"),
    (VideoRequest(model=MODEL, prompt=PROMPT, seed=2**33), "seed"),
    (VideoRequest(model=MODEL, prompt=""), "prompt"),
    (VideoRequest(model=MODEL, prompt=PROMPT, metadata={"negative_prompt": "blur"}), "metadata.negative_prompt"),
    (VideoRequest(model=MODEL, prompt=PROMPT, metadata={"audio": True}), "metadata.audio"),
    (VideoRequest(model=MODEL, prompt=PROMPT, metadata={"warp": 9}), "metadata.warp"),
    (VideoRequest(model=MODEL, prompt=PROMPT, metadata={"last_frame": IMAGE_URL}), "metadata.last_frame"),
    (VideoRequest(model=LITE_I2V, prompt=PROMPT, image=IMAGE_URL, metadata={"reference_images": [IMAGE_URL]}),
     "metadata.reference_images"),
    (VideoRequest(model=LITE_I2V, prompt=PROMPT, metadata={"reference_images": [IMAGE_URL] * 5}),
     "metadata.reference_images"),
    (VideoRequest(model=MODEL, prompt=PROMPT, image="not an image at all!"), "image"),
    (VideoRequest(model=MODEL, prompt=PROMPT, image=base64.b64encode(b"plain text").decode()), "image"),
    (VideoRequest(model=MODEL, prompt=PROMPT, metadata={"aspect_ratio": "5:2"}), "metadata.aspect_ratio"),
    (VideoRequest(model=MODEL, prompt=PROMPT, metadata={"service_tier": "gold"}), "metadata.service_tier"),
    (VideoRequest(model=MODEL, prompt=PROMPT, metadata={"watermark": "yes"}), "metadata.watermark"),
])
def test_impossible_requests_are_400_naming_the_field(request_, param):
    with pytest.raises(GatewayError) as caught:
        convert.prepare(request_)
    assert caught.value.http_status == 400 and caught.value.param == param, caught.value.message


def test_ark_task_states_map_to_st_ais_four():
    now = 1_750_000_000
    assert convert.to_state({"status": "queued"}, now).status == "queued"
    running = convert.to_state({"status": "running", "created_at": now - 60}, now)
    assert running.status == "in_progress" and 0 < running.progress < 95
    done = convert.to_state({"status": "succeeded", "content": {"video_url": "https://x/v.mp4?sig=1"},
                             "usage": {"completion_tokens": 103818, "total_tokens": 103818}, "updated_at": now}, now)
    assert (done.status, done.video_url, done.usage) == ("completed", "https://x/v.mp4?sig=1",
                                                         {"completion_tokens": 103818, "total_tokens": 103818})
    for status, code in (("cancelled", "cancelled"), ("expired", "timeout")):
        assert convert.to_state({"status": status}, now).error_code == code
    moderated = convert.to_state({"status": "failed", "error": {"code": "OutputVideoSensitiveContentDetected",
                                                                "message": "may contain sensitive information"}}, now)
    assert moderated.error_code == "moderation_blocked"
    with pytest.raises(GatewayError):
        convert.to_state({"status": "thinking"}, now)


# -- REST JSON, the documented flow -------------------------------------------------------

def test_text_to_video_over_rest_downloads_arks_exact_video(gw, key, fake, tmp_path):
    fake.polls_per_stage = 2
    out = tmp_path / "t2v.mp4"
    created, seen, video = documented_flow(gw, key, {"model": MODEL, **ASK}, out)
    assert video["status"] == "completed", video
    assert [s for s, _ in seen][0] == "queued" and "in_progress" in [s for s, _ in seen]
    assert_moves_forward(seen)
    assert out.read_bytes() == fake.video
    (submission,) = submissions(fake)
    assert submission.path == TASKS and submission.body == text_body()
    assert submission.headers["Content-Type"] == "application/json"
    check_ark_calls(fake, key)
    # what was asked, nearest to what the client asked, and the tokens Ark counted
    meta = video["metadata"]
    assert (meta["duration"], meta["fps"], meta["aspect_ratio"], meta["resolution"]) == (5, 24, "16:9", "720p")
    assert video["seconds"] == "5" and video["size"] == "1280x720"
    task = next(iter(t for t in fake.tasks.values() if t.body == submission.body))
    assert meta["usage"] == {"completion_tokens": fake.tokens(task), "total_tokens": fake.tokens(task)}


def test_image_to_video_over_rest_sends_the_base64_image_as_a_data_uri(gw, key, fake, tmp_path):
    bare = base64.b64encode(PNG).decode()
    out = tmp_path / "i2v.mp4"
    _, _, video = documented_flow(gw, key, {"model": MODEL, **ASK, "image": bare,
                                            "metadata": {"last_frame": IMAGE_URL, "watermark": False}}, out)
    assert video["status"] == "completed", video
    assert out.read_bytes() == fake.video
    (submission,) = submissions(fake)
    assert submission.body == {**text_body(), "watermark": False, "content": [
        {"type": "text", "text": PROMPT},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{bare}"}, "role": "first_frame"},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}, "role": "last_frame"}]}
    check_ark_calls(fake, key)
    assert not [r for r in fake.received if "see_i2v" in r.path]  # the URL went on; st-ai fetched nothing


def test_refusals_are_400_before_anything_reaches_ark(gw, key, fake):
    before = task_ids(gw, key)
    for body, param in (({"model": LITE_T2V, **ASK, "image": IMAGE_URL}, "image"),
                        ({"model": MODEL, **ASK, "duration": -5}, "duration"),
                        ({"model": MODEL, **ASK, "metadata": {"negative_prompt": "blur"}}, "metadata.negative_prompt")):
        status, answer = call_json(gw, key, "POST", "/v1/videos", body)
        assert assert_openai_error(status, answer, 400).get("param") == param, answer
    time.sleep(2 * POLL)
    assert submissions(fake) == [] and task_ids(gw, key).keys() == before.keys()


# -- the openai SDK -------------------------------------------------------------------------

def test_openai_sdk_text_and_image_to_video(gw, key, fake, tmp_path):
    client = sdk(gw, key)
    video = client.videos.create_and_poll(model=MODEL, prompt=PROMPT, seconds="4", size="1280x720",
                                          poll_interval_ms=200)
    assert video.status == "completed", video
    client.videos.download_content(video.id).write_to_file(tmp_path / "sdk.mp4")
    assert (tmp_path / "sdk.mp4").read_bytes() == fake.video
    assert submissions(fake)[0].body == {**text_body(), "duration": 4}
    assert video.seconds == "4"

    fake.received.clear()
    video = client.videos.create_and_poll(model=MODEL, prompt=PROMPT, seconds="8", size="720x1280",
                                          input_reference=("frame.png", PNG, "image/png"), poll_interval_ms=200)
    assert video.status == "completed", video
    client.videos.download_content(video.id).write_to_file(tmp_path / "sdk-i2v.mp4")
    assert (tmp_path / "sdk-i2v.mp4").read_bytes() == fake.video
    (submission,) = submissions(fake)
    assert submission.body["ratio"] == "9:16" and submission.body["duration"] == 8
    assert submission.body["content"][1] == {"type": "image_url", "role": "first_frame", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}
    check_ark_calls(fake, key)


# -- gRPC by reflection ------------------------------------------------------------------------

def test_grpc_by_reflection_text_and_image_to_video(gw, key, fake):
    with grpc.insecure_channel(gw.grpc_target) as channel:
        reflection = Reflected(channel)
        create, Request = reflection.callable("st_ai.v1.Videos", "CreateVideo")
        get, GetRequest = reflection.callable("st_ai.v1.Videos", "GetVideo")
        content, ContentRequest = reflection.callable("st_ai.v1.Videos", "GetVideoContent")
        for image in (None, base64.b64encode(PNG).decode()):
            fake.received.clear()
            fields = {"model": MODEL, **ASK, **({"image": image} if image else {})}
            video = create(Request(**fields), metadata=auth(key), timeout=10)
            assert video.status == "queued"
            end = time.monotonic() + 15
            while video.status not in ("completed", "failed"):
                assert time.monotonic() < end, video
                time.sleep(POLL)
                video = get(GetRequest(video_id=video.id), metadata=auth(key), timeout=10)
            assert video.status == "completed", video
            chunks = content(ContentRequest(video_id=video.id), metadata=auth(key), timeout=10)
            assert b"".join(c.data for c in chunks) == fake.video
            (submission,) = submissions(fake)
            expected = text_body()
            if image:
                expected["content"] = expected["content"] + [{"type": "image_url", "role": "first_frame",
                                                              "image_url": {"url": f"data:image/png;base64,{image}"}}]
            assert submission.body == expected
        check_ark_calls(fake, key)


# -- failures ----------------------------------------------------------------------------------

def _refused_at_submit(gw, key, fake, body: dict, status: int, calls: range = range(1, 2)) -> dict:
    """st-ai submits a task before its create answers: Ark's refusal is the create's own
    answer (after `calls` submissions: one for the request's fault, up to --max-attempts for
    the channel's), and no task is left to be submitted again."""
    before = task_ids(gw, key)
    answered, answer = call_json(gw, key, "POST", "/v1/videos", body)
    error = assert_openai_error(answered, answer, status)
    assert len(submissions(fake)) in calls
    time.sleep(3 * POLL)  # a task wrongly kept would be submitted again by now
    assert len(submissions(fake)) in calls and task_ids(gw, key).keys() == before.keys()
    return error


def test_ark_refusing_a_parameter_at_submit_is_the_creates_400_with_its_reason(gw, key, fake):
    refusal = "The parameter `resolution` specified in the request is not valid."
    fake.reject_next = (400, {"error": {"code": "InvalidParameter", "param": "resolution", "type": "BadRequest",
                                        "message": refusal}})
    error = _refused_at_submit(gw, key, fake, {"model": MODEL, **ASK}, 400)
    assert error["code"] == "invalid_request" and "resolution" in error["message"], error


def test_ark_blocking_the_prompt_at_submit_is_a_content_policy_refusal(gw, key, fake):
    fake.block_at_submit = True
    error = _refused_at_submit(gw, key, fake, {"model": MODEL, **ASK}, 400)
    assert error["code"] == "content_policy_violation", error
    assert "sensitive" in error["message"]


def test_a_model_ark_does_not_have_is_refused_at_submit_as_the_channels_problem(gw, key, fake):
    gw.channel("ark-unknown-model", "seedance", ["seedance-9-preview"], base_url=fake.base_url, key=fake.key)
    error = _refused_at_submit(gw, key, fake, {"model": "seedance-9-preview", **ASK}, 502, range(1, MAX_ATTEMPTS + 1))
    assert error["code"] == "upstream_error", error


def test_a_rejected_channel_key_is_the_operators_problem_never_a_401(gw, key, fake):
    wrong = "ark-wrong-key-0000"
    gw.channel("ark-wrong-key", "seedance", ["seedance-wrong"], base_url=fake.base_url, key=wrong,
               model_map={"seedance-wrong": MODEL})
    error = _refused_at_submit(gw, key, fake, {"model": "seedance-wrong", **ASK}, 502, range(1, MAX_ATTEMPTS + 1))
    assert error["code"] == "upstream_error", error
    assert wrong not in json.dumps(error) and fake.base_url not in json.dumps(error)


def test_failure_midway_fails_the_task_with_arks_reason(gw, key, fake, tmp_path):
    fake.fail_with = "Internal error while rendering frames"
    _, seen, video = documented_flow(gw, key, {"model": MODEL, **ASK}, tmp_path / "x.mp4")
    assert video["status"] == "failed" and video["error"]["code"] == "generation_failed", video
    assert "rendering frames" in video["error"]["message"]
    assert "in_progress" in [s for s, _ in seen] and not (tmp_path / "x.mp4").exists()
    assert fake.downloads() == []


def test_moderation_of_the_output_is_moderation_blocked(gw, key, fake, tmp_path):
    fake.moderate = True
    _, _, video = documented_flow(gw, key, {"model": MODEL, **ASK}, tmp_path / "x.mp4")
    assert video["status"] == "failed" and video["error"]["code"] == "moderation_blocked", video
    status, answer = call_json(gw, key, "GET", f"/v1/videos/{video['id']}/content")
    assert_openai_error(status, answer, 409)


def test_a_video_url_at_a_metadata_address_is_never_fetched(gw, key, fake, tmp_path):
    # an address literal: the guard refuses it before any lookup or connection
    fake.video_url_for = lambda url: url.replace(f"127.0.0.1:{fake.port}", "169.254.169.254")
    _, _, video = documented_flow(gw, key, {"model": MODEL, **ASK}, tmp_path / "x.mp4")
    assert video["status"] == "failed" and video["error"]["code"] == "unsafe_url", video
    assert "metadata" in video["error"]["message"] and fake.downloads() == []


def test_rate_limited_polls_are_retried_until_the_task_completes(gw, key, fake):
    status, created = call_json(gw, key, "POST", "/v1/videos", {"model": MODEL, **ASK})
    assert status == 200, created
    end = time.monotonic() + 5
    while not submissions(fake):
        assert time.monotonic() < end, "never submitted"
        time.sleep(0.02)
    fake.rate_limit_next = 3
    seen, video = wait_until_done(gw, key, created["id"])
    assert video["status"] == "completed" and "failed" not in [s for s, _ in seen], seen
    assert fake.rate_limited == 3 and fake.rate_limit_next == 0
    assert len(submissions(fake)) == 1
    status, content = call(gw, key, "GET", f"/v1/videos/{created['id']}/content")
    assert status == 200 and content == fake.video


def test_a_task_that_never_finishes_times_out(tmp_path_factory, fake, tmp_path):
    slow = _gateway(tmp_path_factory, "--video-timeout", str(TIMEOUT))
    try:
        slow.channel("ark", "seedance", [MODEL], base_url=fake.base_url, key=fake.key)
        key = slow.token("seedance-timeout")
        fake.never_finish = True
        _, seen, video = documented_flow(slow, key, {"model": MODEL, **ASK}, tmp_path / "x.mp4",
                                         deadline=TIMEOUT + 8)
        assert video["status"] == "failed" and video["error"]["code"] == "timeout", video
        assert "in_progress" in [s for s, _ in seen]
        polls = len(api_calls(fake))
        time.sleep(3 * POLL)
        assert len(api_calls(fake)) <= polls + 1  # a failed task is not polled any more
    finally:
        stop_gateway(slow)


# -- cancel on delete ------------------------------------------------------------------------------

def _created_and_seen(gw, key, fake, status: str) -> tuple[str, str]:
    """A task Ark holds in `status`, once st-ai has seen it there: (st-ai id, Ark id)."""
    code, created = call_json(gw, key, "POST", "/v1/videos", {"model": MODEL, **ASK})
    assert code == 200, created
    end = time.monotonic() + 10
    while True:
        ark = [t for t in fake.tasks.values() if t.status == status and t.polls >= 2]
        _, video = call_json(gw, key, "GET", f"/v1/videos/{created['id']}")
        if ark and video["status"] == ("queued" if status == "queued" else "in_progress"):
            return created["id"], ark[-1].id
        assert time.monotonic() < end, (video, [(t.id, t.status) for t in fake.tasks.values()])
        time.sleep(POLL)


def test_deleting_a_queued_task_cancels_it_at_ark(gw, key, fake):
    fake.hold = "queued"
    video_id, ark_id = _created_and_seen(gw, key, fake, "queued")
    status, answer = call_json(gw, key, "DELETE", f"/v1/videos/{video_id}")
    assert status == 200 and answer["deleted"] is True, answer
    deletes = [r for r in fake.received if r.method == "DELETE"]
    assert [r.path for r in deletes] == [f"{TASKS}/{ark_id}"]
    assert deletes[0].headers["Authorization"] == f"Bearer {fake.key}"
    assert fake.tasks[ark_id].status == "cancelled"
    status, answer = call_json(gw, key, "GET", f"/v1/videos/{video_id}")
    assert_openai_error(status, answer, 404)


def test_deleting_a_running_task_lets_it_finish_and_discards_its_output(gw, key, fake):
    fake.hold = "running"
    video_id, ark_id = _created_and_seen(gw, key, fake, "running")
    status, answer = call_json(gw, key, "DELETE", f"/v1/videos/{video_id}")
    assert status == 200 and answer["deleted"] is True, answer  # Ark's refusal is not the client's problem
    assert [r.path for r in fake.received if r.method == "DELETE"] == [f"{TASKS}/{ark_id}"]
    assert fake.tasks[ark_id].status == "running"
    polled = len([r for r in api_calls(fake) if r.method == "GET"])
    # Ark runs it to its end (a GET with Ark's key stands for Ark's own clock)...
    fake.release()
    for _ in range(2):
        request = urllib.request.Request(f"{fake.base_url}{TASKS}/{ark_id}",
                                         headers={"Authorization": f"Bearer {fake.key}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            finished = json.load(response)
    assert finished["status"] == "succeeded"
    # ...and st-ai neither polls the deleted task again nor fetches its video
    time.sleep(4 * POLL)
    assert len([r for r in api_calls(fake) if r.method == "GET"]) == polled + 2
    assert fake.downloads() == []
    status, answer = call_json(gw, key, "GET", f"/v1/videos/{video_id}/content")
    assert_openai_error(status, answer, 404)


# -- the channel probe -------------------------------------------------------------------------------

async def test_probe_lists_one_task_with_the_key_and_reports_a_wrong_key(fake):
    import aiohttp

    from server.providers.interface import Upstream
    from server.store.channels import Channel

    async with aiohttp.ClientSession() as http:
        provider = seedance_client.SeedanceVideo(Upstream(http))
        good = Channel(id=1, name="ark", type="seedance", base_url=fake.base_url, key=fake.key, models=(MODEL,))
        await provider.probe(good)
        (probe,) = fake.received
        assert probe.method == "GET" and probe.path == TASKS and probe.query == "page_num=1&page_size=1"
        with pytest.raises(GatewayError) as caught:
            await provider.probe(Channel(id=2, name="bad", type="seedance", base_url=fake.base_url, key="nope",
                                         models=(MODEL,)))
        assert caught.value.http_status == 502 and not caught.value.retryable


# -- billed by the tokens Ark counts, where the operator prices the model so --------------------

def test_a_model_priced_by_output_tokens_is_billed_the_tokens_ark_reports(gw, fake):
    from server.billing.prices import PriceChanges
    from server.store import prices as price_store
    from server.store import tokens as token_store

    model = f"seedance-tokens-{uuid.uuid4().hex[:6]}"
    store = open_db(gw.db_path)
    try:
        price_store.set_price(store, model, PriceChanges(output=2_000_000))  # 2.00 per 1M tokens
        token, secret = token_store.create(store, f"tokens-{model}", quota=10_000_000)
    finally:
        store.close()
    gw.channel(f"ark-{model}", "seedance", [model], base_url=fake.base_url, key=fake.key, model_map={model: MODEL})
    fake.hold = "running"
    status, created = call_json(gw, secret, "POST", "/v1/videos", {"model": model, **ASK})
    assert status == 200, created
    end = time.monotonic() + 10
    while not any(t.status == "running" for t in fake.tasks.values() if t.body["model"] == MODEL):
        assert time.monotonic() < end
        time.sleep(POLL)
    store = open_db(gw.db_path)
    try:  # while it runs, the most it can count is held: 1280x720 x 24 fps x 5 s / 1024 tokens
        (reserved,) = store.execute("SELECT amount FROM reservations WHERE video_id = ?", [created["id"]]).fetchone()
    finally:
        store.close()
    assert reserved == 2 * (1280 * 720 * 24 * 5 // 1024)
    fake.release()
    _, video = wait_until_done(gw, secret, created["id"])
    assert video["status"] == "completed", video
    tokens = video["metadata"]["usage"]["completion_tokens"]
    assert tokens == 1248 * 704 * 24 * 5 // 1024  # what Ark counted for its 1248x704 frames
    store = open_db(gw.db_path)
    try:
        cost, counted = store.execute("SELECT cost, completion_tokens FROM ledger WHERE model = ? AND kind = 'video'",
                                      [model]).fetchone()
        used = token_store.get(store, token.name).used
    finally:
        store.close()
    assert (cost, counted, used) == (2 * tokens, tokens, 2 * tokens)


def test_the_token_reservation_is_the_most_the_asked_video_can_count():
    from server.billing.video_billing import estimated_tokens

    assert estimated_tokens({"width": 1280, "height": 720, "fps": 24, "duration": 5.0}) == 108000
    # an adaptive ratio follows the image: its widest shape (21:9) at the asked resolution
    assert estimated_tokens({"width": None, "height": None, "fps": 24, "duration": 4.0,
                             "resolution": "480p"}) == 1120 * 480 * 24 * 4 // 1024
