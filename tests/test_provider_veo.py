"""The `veo` channel type (Google's Gemini API): the pure mapping of requests and
operations, the error table, the provider against a real fake Gemini API on 127.0.0.1
(tests/fakes/veo.py), and st-ai end to end in front of it through REST JSON, the openai
SDK and gRPC by reflection. Names resolve only through a stub resolver; nothing leaves
127.0.0.1."""
from __future__ import annotations

import base64
import json
import time

import aiohttp
import grpc
import pytest

from server.errors import GatewayError
from server.providers.interface import Upstream, VideoRequest
from server.providers.registry import discover
from server.providers.veo import convert, errors, models
from server.providers.veo.client import VeoVideo
from server.safe_fetch import SafeFetch
from server.store.channels import Channel
from server.url_guard import UrlGuard
from tests.fakes.image_host import ImageHost
from tests.fakes.resolver import StubResolver
from tests.fakes.sample_media import sample_png
from tests.fakes.veo import SAFETY_REASON, FakeVeo
from tests.reflection_client import Reflected, auth
# The provider-neutral scenarios every video type passes, run here against the fake Veo.
from tests.test_video_providers_e2e import (  # noqa: F401  (fixtures and tests collected here)
    ASK,
    POLL,
    PROMPT,
    call,
    call_json,
    gw,
    key,
    slow_gw,
    wait_until_done,
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

MODEL = "veo-3.1-generate-preview"
BASE = "https://generativelanguage.googleapis.com"
PNG = sample_png("veo first frame")
PNG_B64 = base64.b64encode(PNG).decode()


def req(model: str = MODEL, **kw) -> VideoRequest:
    kw.setdefault("prompt", PROMPT)
    return VideoRequest(model=model, **kw)


def refused(fn, *args) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        fn(*args)
    assert caught.value.http_status == 400, caught.value
    return caught.value


# -- the request, mapped without I/O ----------------------------------------------------

def test_documented_example_maps_to_the_nearest_veo_values():
    prepared = convert.to_veo(req(duration=5.0, width=1280, height=720, fps=30), BASE)
    assert convert.wire_body(prepared.body) == {
        "instances": [{"prompt": PROMPT}],
        "parameters": {"aspectRatio": "16:9", "durationSeconds": 4, "resolution": "720p"}}
    assert prepared.body["model"] == MODEL
    # 5 s sits between 4 and 6: Google bills by the second, so the shorter is asked
    assert prepared.asked == {"duration": 4.0, "width": 1280, "height": 720, "aspect_ratio": "16:9",
                              "resolution": "720p", "fps": 24}


@pytest.mark.parametrize("size, ratio, resolution, asked", [
    ((720, 1280), "9:16", "720p", (720, 1280)),
    ((1920, 1080), "16:9", "1080p", (1920, 1080)),
    ((3840, 2160), "16:9", "4k", (3840, 2160)),
    ((1000, 1000), "16:9", "1080p", (1920, 1080)),
])
def test_sizes_go_to_the_nearest_ratio_and_resolution(size, ratio, resolution, asked):
    prepared = convert.to_veo(req(duration=6, width=size[0], height=size[1]), BASE)
    parameters = prepared.body["parameters"]
    assert (parameters["aspectRatio"], parameters["resolution"]) == (ratio, resolution)
    assert (prepared.asked["width"], prepared.asked["height"]) == asked
    # Veo renders above 720p only as 8 s videos: the duration follows, and is reported
    expected = 8 if resolution != "720p" else 6
    assert parameters["durationSeconds"] == expected and prepared.asked["duration"] == expected


def test_image_as_base64_data_uri_or_upload_goes_inline_with_its_type():
    for image in (PNG_B64, f"data:image/png;base64,{PNG_B64}"):
        body = convert.to_veo(req(image=image), BASE).body
        assert body["instances"][0]["image"] == {"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}
    body = convert.to_veo(req(image_bytes=PNG, image_type="image/png"), BASE).body
    assert body["instances"][0]["image"] == {"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}


def test_neutral_metadata_maps_to_veo_fields():
    prepared = convert.to_veo(req(image=PNG_B64, metadata={
        "negative_prompt": "blurry", "last_frame": PNG_B64, "aspect_ratio": "9:16", "resolution": "1080p",
        "personGeneration": "allow_adult"}), BASE)
    instance, parameters = prepared.body["instances"][0], prepared.body["parameters"]
    assert instance["lastFrame"] == {"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}
    assert parameters == {"aspectRatio": "9:16", "durationSeconds": 8, "resolution": "1080p",
                          "negativePrompt": "blurry", "personGeneration": "allow_adult"}
    assert (prepared.asked["width"], prepared.asked["height"]) == (1080, 1920)


def test_reference_images_are_assets_and_make_an_8_second_landscape_video():
    prepared = convert.to_veo(req(duration=4, width=720, height=1280,
                                  metadata={"reference_images": [PNG_B64, PNG_B64]}), BASE)
    assert prepared.body["instances"][0]["referenceImages"] == [
        {"image": {"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}, "referenceType": "asset"}] * 2
    assert prepared.body["parameters"]["durationSeconds"] == 8
    assert prepared.body["parameters"]["aspectRatio"] == "16:9"
    assert prepared.asked["duration"] == 8.0


def test_image_url_is_marked_for_fetching_not_sent_as_a_url():
    body = convert.to_veo(req(image="https://images.example/cat.png"), BASE).body
    assert body["instances"][0]["image"]["stAiFetchUrl"] == "https://images.example/cat.png"


@pytest.mark.parametrize("request_, param", [
    (req(duration=-1), "duration"),
    (req(width=-5, height=720), "width"),
    (req(seed=7), "seed"),
    (req(metadata={"warp_speed": "max"}), "metadata.warp_speed"),
    (req(metadata={"watermark": True}), "metadata.watermark"),            # the Gemini API has none
    (req(metadata={"audio": True}), "metadata.audio"),                    # nor an audio switch
    (req(metadata={"last_frame": PNG_B64}), "metadata.last_frame"),       # a last frame needs a first
    (req(image=PNG_B64, metadata={"reference_images": [PNG_B64]}), "metadata.reference_images"),
    (req(metadata={"reference_images": [PNG_B64] * 4}), "metadata.reference_images"),
    (req(metadata={"reference_images": [PNG_B64], "aspect_ratio": "9:16"}), "metadata.aspect_ratio"),
    (req(metadata={"aspect_ratio": "4:3"}), "metadata.aspect_ratio"),
    (req(metadata={"resolution": "8k"}), "metadata.resolution"),
    (req(metadata={"personGeneration": "everyone"}), "metadata.personGeneration"),
    (req(metadata={"enhancePrompt": True}), "metadata.enhancePrompt"),   # Veo 2's only
    (req("veo-3.0-generate-001", metadata={"reference_images": [PNG_B64]}), "metadata.reference_images"),
    (req("veo-3.0-generate-001", image=PNG_B64, metadata={"last_frame": PNG_B64}), "metadata.last_frame"),
    (req(image=base64.b64encode(b"plain words, no picture").decode()), "image"),
    (req(image="not base64 at all!"), "image"),
    (req(image="http://169.254.169.254/latest/meta-data/x.png"), "image"),
    (req(image="http://10.0.0.7/x.png"), "image"),
    (req(image="http://[::ffff:127.0.0.1]:80/x.png"), "image"),
    (req(metadata={"last_frame": "http://127.0.0.1/x.png"}, image=PNG_B64), "metadata.last_frame"),
])
def test_impossible_requests_are_400_naming_the_field(request_, param):
    error = refused(convert.to_veo, request_, BASE)
    assert error.param == param, error


def test_a_private_image_url_is_refused_with_a_clear_message():
    error = refused(convert.to_veo, req(image="http://10.0.0.7/x.png"), BASE)
    assert error.code == "invalid_image_url" and "private" in error.message


def test_veo_2_takes_no_resolution_and_its_own_durations():
    prepared = convert.to_veo(req("veo-2.0-generate-001", duration=5.0, width=1280, height=720,
                                  metadata={"enhancePrompt": True}), BASE)
    assert prepared.body["parameters"] == {"aspectRatio": "16:9", "durationSeconds": 5, "enhancePrompt": True}
    assert prepared.asked["duration"] == 5.0 and prepared.asked["fps"] == 24


def test_an_unknown_model_name_is_fitted_to_the_general_rules():
    prepared = convert.to_veo(req("veo-9-experimental", duration=5.0, width=1280, height=720), BASE)
    assert prepared.body["parameters"]["durationSeconds"] == 4
    assert VeoVideo(Upstream(http=None)).capabilities("veo-9-experimental") is None  # type: ignore[arg-type]


def test_capabilities_of_every_model():
    provider = VeoVideo(Upstream(http=None))  # type: ignore[arg-type]
    assert set(models.MODELS) >= {"veo-3.1-generate-preview", "veo-3.1-fast-generate-preview",
                                  "veo-3.0-generate-001", "veo-3.0-fast-generate-001", "veo-2.0-generate-001"}
    for name in models.MODELS:
        caps = provider.capabilities(name)
        listing = caps.listing()
        assert "text" in listing["inputs"] and "first_frame" in listing["inputs"], name
        assert listing["aspect_ratios"] == ["16:9", "9:16"] and listing["fps"] == [24], name
        assert "negative_prompt" in listing["metadata"] and "personGeneration" in listing["metadata"], name
    assert provider.capabilities("veo-3.1-generate-preview").listing() == {
        "inputs": ["text", "first_frame", "last_frame", "reference"], "durations": [4, 6, 8],
        "aspect_ratios": ["16:9", "9:16"], "resolutions": ["720p", "1080p", "4k"], "fps": [24],
        "metadata": ["aspect_ratio", "last_frame", "negative_prompt", "personGeneration", "reference_images",
                     "resolution"]}
    assert provider.capabilities("veo-3.0-generate-001").listing()["inputs"] == ["text", "first_frame"]
    veo2 = provider.capabilities("veo-2.0-generate-001").listing()
    assert veo2["durations"] == [5, 6, 7, 8] and "resolutions" not in veo2
    # and every declared model is one the fake (Google) takes, with every value declared
    from tests.fakes.veo import MODELS as GOOGLE
    for name, caps in models.MODELS.items():
        assert {int(d) for d in caps.durations} == GOOGLE[name]["durations"], name
        assert set(caps.resolutions) == GOOGLE[name]["resolutions"], name


# -- the operation, read without I/O ----------------------------------------------------

def test_operation_states():
    running = convert.to_state({"name": "models/m/operations/a"}, 1000.0, 1090.0)
    assert running.status == "in_progress" and 0 < running.progress < 95
    assert convert.to_state({"name": "x", "done": False}, None, 5.0).progress == 0
    uri = f"{BASE}/v1beta/files/abc:download?alt=media"
    done = convert.to_state({"done": True, "response": {"generateVideoResponse": {
        "generatedSamples": [{"video": {"uri": uri}}]}}}, 0, 1)
    assert (done.status, done.progress, done.video_url) == ("completed", 100, uri)
    failed = convert.to_state({"done": True, "error": {"code": 13, "message": "Internal error."}}, 0, 1)
    assert (failed.status, failed.error_code) == ("failed", "generation_failed")
    assert "Internal error." in failed.error_message


def test_no_samples_and_a_safety_count_is_a_failed_task_with_the_reason():
    state = convert.to_state({"done": True, "response": {"generateVideoResponse": {
        "raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [SAFETY_REASON]}}}, 0, 1)
    assert (state.status, state.error_code) == ("failed", "moderation_blocked")
    assert SAFETY_REASON in state.error_message
    empty = convert.to_state({"done": True, "response": {"generateVideoResponse": {}}}, 0, 1)
    assert (empty.status, empty.error_code) == ("failed", "upstream_error")


# -- Google's error bodies ---------------------------------------------------------------

def make_channel(base_url: str, key: str) -> Channel:
    return Channel(1, "veo-test", "veo", base_url, key, (MODEL,))


def _body(status: int, code: str, message: str, reason: str | None = None) -> bytes:
    error: dict = {"code": status, "message": message, "status": code}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return json.dumps({"error": error}).encode()


def test_error_bodies_map_to_the_one_error_table(caplog):
    channel = make_channel(BASE, "AIzaSyCHANNEL0KEY0000000000000000000000")
    bad_key = errors.from_response(400, _body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid "
                                              "API key.", "API_KEY_INVALID"), channel, endpoint=True)
    assert (bad_key.http_status, bad_key.code, bad_key.retryable) == (502, "upstream_error", False)
    assert "misconfigured" in caplog.text and channel.key not in caplog.text
    for status, code in ((403, "PERMISSION_DENIED"), (400, "FAILED_PRECONDITION")):
        error = errors.from_response(status, _body(status, code, "no"), channel)
        assert (error.http_status, error.retryable) == (502, False)
    limited = errors.from_response(429, _body(429, "RESOURCE_EXHAUSTED", "quota"), channel)
    assert (limited.http_status, limited.retryable) == (429, True)
    bad = errors.from_response(400, _body(400, "INVALID_ARGUMENT", "durationSeconds is out of bounds"), channel, True)
    assert (bad.http_status, bad.code, bad.retryable) == (400, "invalid_request", False)
    assert "durationSeconds" in bad.message
    unsafe = errors.from_response(400, _body(400, "INVALID_ARGUMENT", "The input image violates our safety "
                                             "policy."), channel, True)
    assert unsafe.code == "content_policy_violation"
    missing_model = errors.from_response(404, _body(404, "NOT_FOUND", "models/veo-9 is not found"), channel, True)
    assert (missing_model.http_status, missing_model.code) == (404, "model_not_found")
    gone = errors.from_response(404, _body(404, "NOT_FOUND", "Operation not found."), channel)
    assert gone.code == "not_found"
    for status in (500, 503, 504):
        assert errors.from_response(status, b"<html>", channel).retryable
    leaky = errors.from_response(400, _body(400, "INVALID_ARGUMENT", f"bad key={channel.key} at {BASE}"), channel)
    assert channel.key not in leaky.message


# -- the provider against the fake Gemini API ---------------------------------------------

@pytest.fixture(scope="module")
def fake() -> FakeVeo:
    server = FakeVeo().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def image_host() -> ImageHost:
    server = ImageHost(PNG).start()
    yield server
    server.stop()


@pytest.fixture
async def veo(fake: FakeVeo):
    fake.reset()
    resolver = StubResolver({"images.example": ["127.0.0.1"], "intranet.example": ["10.0.0.7"],
                             "metadata.example": ["169.254.169.254"]})
    async with aiohttp.ClientSession() as session:
        yield VeoVideo(Upstream(http=session, files=SafeFetch(session, UrlGuard(resolver))))


async def run_to_the_end(provider: VeoVideo, channel: Channel, request: VideoRequest, max_polls: int = 10):
    task_id = await provider.submit(channel, provider.prepare(channel, request))
    states = []
    for _ in range(max_polls):
        states.append(await provider.poll(channel, task_id))
        if states[-1].status in ("completed", "failed"):
            break
    return task_id, states


async def download(provider: VeoVideo, channel: Channel, task_id: str, state) -> bytes:
    return b"".join([chunk async for chunk in provider.download(channel, task_id, state, "video")])


async def test_text_to_video_is_polled_and_downloaded_with_the_key(fake: FakeVeo, veo: VeoVideo):
    channel = make_channel(fake.base_url, fake.api_key)
    task_id, states = await run_to_the_end(veo, channel, req(duration=5.0, width=1280, height=720, fps=30))
    assert [s.status for s in states] == ["in_progress", "completed"]
    assert task_id.startswith(f"models/{MODEL}/operations/")
    assert await download(veo, channel, task_id, states[-1]) == fake.video

    (submission,) = fake.submissions()
    assert submission.path == f"/v1beta/models/{MODEL}:predictLongRunning"
    assert submission.headers["x-goog-api-key"] == fake.api_key and "key=" not in submission.query
    assert submission.body == {"instances": [{"prompt": PROMPT}],
                               "parameters": {"aspectRatio": "16:9", "durationSeconds": 4, "resolution": "720p"}}
    # the file URI is not public: the key goes there, and not on to Google's storage
    (file_request,) = fake.file_requests()
    assert file_request.headers["x-goog-api-key"] == fake.api_key and file_request.query == "alt=media"
    (storage,) = fake.storage_requests()
    assert "x-goog-api-key" not in storage.headers and "sig=" in storage.query


async def test_a_base_url_written_with_the_api_version_works(fake: FakeVeo, veo: VeoVideo):
    channel = make_channel(fake.base_url + "/v1beta", fake.api_key)
    task_id, states = await run_to_the_end(veo, channel, req())
    assert await download(veo, channel, task_id, states[-1]) == fake.video


async def test_an_image_url_is_fetched_by_st_ai_and_sent_inline(fake: FakeVeo, veo: VeoVideo, image_host: ImageHost):
    channel = make_channel(fake.base_url, fake.api_key)
    image_host.received.clear()
    url = f"http://images.example:{image_host.port}/cat.png"
    task_id, states = await run_to_the_end(veo, channel, req(image=url, metadata={"last_frame": PNG_B64}))
    assert states[-1].status == "completed"
    (submission,) = fake.submissions()
    assert submission.body["instances"][0] == {
        "prompt": PROMPT, "image": {"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"},
        "lastFrame": {"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}}
    (fetched,) = image_host.received
    assert "x-goog-api-key" not in fetched  # the channel's key never goes to a client's host


@pytest.mark.parametrize("url, words", [
    ("http://intranet.example/x.png", "st-ai fetches images only from public"),
    ("http://metadata.example/latest.png", "st-ai fetches images only from public"),
    ("http://images.example:{port}/page.html", "did not serve an image"),
    ("http://images.example:{port}/missing", "did not serve an image"),
])
async def test_an_image_url_st_ai_will_not_use_is_400_and_nothing_is_sent(
        fake: FakeVeo, veo: VeoVideo, image_host: ImageHost, url, words):
    channel = make_channel(fake.base_url, fake.api_key)
    prepared = veo.prepare(channel, req(image=url.format(port=image_host.port)))
    with pytest.raises(GatewayError) as caught:
        await veo.submit(channel, prepared)
    assert (caught.value.http_status, caught.value.param) == (400, "image"), caught.value
    assert words in caught.value.message
    assert fake.submissions() == []


@pytest.mark.parametrize("url, words", [
    ("http://intranet.example/x.png", "st-ai fetches images only from public"),
    ("http://metadata.example/latest.png", "st-ai fetches images only from public"),
])
async def test_an_image_url_whose_name_resolves_to_a_refused_address_is_400_while_the_create_is_answered(
        fake: FakeVeo, veo: VeoVideo, image_host: ImageHost, url, words):
    channel = make_channel(fake.base_url, fake.api_key)
    with pytest.raises(GatewayError) as caught:
        await veo.check_inputs(channel, veo.prepare(channel, req(image=url)))
    assert (caught.value.http_status, caught.value.param, caught.value.code) == (400, "image", "invalid_image_url")
    assert words in caught.value.message
    # a usable one passes, and nothing is fetched or sent by the check
    image_host.received.clear()
    await veo.check_inputs(channel, veo.prepare(channel, req(image=f"http://images.example:{image_host.port}/cat.png")))
    assert image_host.received == [] and fake.submissions() == []


async def test_a_wrong_key_is_the_channels_problem_not_a_401(fake: FakeVeo, veo: VeoVideo):
    channel = make_channel(fake.base_url, "AIzaSyNOT0the0right0key00000000000000001")
    with pytest.raises(GatewayError) as caught:
        await veo.submit(channel, veo.prepare(channel, req()))
    assert (caught.value.http_status, caught.value.code, caught.value.retryable) == (502, "upstream_error", False)
    assert channel.key not in caught.value.message
    with pytest.raises(GatewayError) as probed:
        await veo.probe(channel)
    assert probed.value.http_status == 502
    await veo.probe(make_channel(fake.base_url, fake.api_key))  # the right key passes the free call


async def test_a_rate_limited_poll_is_retryable_and_the_task_goes_on(fake: FakeVeo, veo: VeoVideo):
    channel = make_channel(fake.base_url, fake.api_key)
    task_id = await veo.submit(channel, veo.prepare(channel, req()))
    fake.rate_limit_next = 1
    with pytest.raises(GatewayError) as caught:
        await veo.poll(channel, task_id)
    assert (caught.value.http_status, caught.value.retryable) == (429, True)
    states = [await veo.poll(channel, task_id) for _ in range(2)]
    assert states[-1].status == "completed"


async def test_a_filtered_result_fails_with_googles_reason(fake: FakeVeo, veo: VeoVideo):
    fake.filtered = True
    _, states = await run_to_the_end(veo, make_channel(fake.base_url, fake.api_key), req())
    assert (states[-1].status, states[-1].error_code) == ("failed", "moderation_blocked")
    assert SAFETY_REASON in states[-1].error_message


async def test_the_key_goes_to_no_other_host_and_a_gone_file_is_expired(fake: FakeVeo, veo: VeoVideo,
                                                                           image_host: ImageHost):
    channel = make_channel(fake.base_url, fake.api_key)
    image_host.received.clear()
    elsewhere = convert.to_state({"done": True, "response": {"generateVideoResponse": {"generatedSamples": [
        {"video": {"uri": f"http://images.example:{image_host.port}/v.mp4"}}]}}}, 0, 1)
    assert (await download(veo, channel, "x", elsewhere))[4:8] == b"ftyp"
    assert "x-goog-api-key" not in image_host.received[0]
    gone = convert.to_state({"done": True, "response": {"generateVideoResponse": {"generatedSamples": [
        {"video": {"uri": f"{fake.base_url}/v1beta/files/nosuchfile:download?alt=media"}}]}}}, 0, 1)
    with pytest.raises(GatewayError) as caught:
        await download(veo, channel, "x", gone)
    assert caught.value.code == "video_expired"


@pytest.mark.parametrize("model", sorted(models.MODELS))
async def test_every_prepared_body_is_accepted_by_google(fake: FakeVeo, veo: VeoVideo, model: str):
    channel = make_channel(fake.base_url, fake.api_key)
    caps = models.MODELS[model]
    asks = [req(model, duration=5.0, width=1280, height=720, fps=30),
            req(model, image=PNG_B64, duration=7.5, width=1920, height=1080, metadata={"negative_prompt": "fog"})]
    if "last_frame" in caps.neutral:
        asks.append(req(model, image=PNG_B64, metadata={"last_frame": PNG_B64, "resolution": "720p"}))
    if "reference_images" in caps.neutral:
        asks.append(req(model, duration=4, width=720, height=1280, metadata={"reference_images": [PNG_B64]}))
    for ask in asks:
        await veo.submit(channel, veo.prepare(channel, ask))
    assert len(fake.submissions()) == len(asks)


def test_the_type_is_registered_with_its_key_format_and_public_endpoint():
    spec = discover()["veo"]
    assert spec.default_base_url == "https://generativelanguage.googleapis.com"
    assert spec.key_format == "API_KEY" and spec.video is VeoVideo


# -- st-ai end to end in front of the fake (REST JSON, the openai SDK, gRPC) -----------------

class VeoCase:
    """What tests/test_video_providers_e2e.py's scenarios need to know of Veo."""
    name = "veo"
    type = "veo"
    model = MODEL
    # veo-9-unknown is not one st-ai knows: fitted to the general rules, and refused by Google
    models = [MODEL, "veo-3.0-generate-001", "veo-9-unknown"]
    rejected_model = "veo-9-unknown"
    image_needed_model = None        # every Veo model takes text, or text and an image
    wrong_key = "AIzaSyNOT0the0right0key00000000000000001"

    def start(self) -> None:
        self.fake = FakeVeo().start()

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
        return [r for r in self.fake.received if not r.path.startswith("/storage/")]

    def downloads(self) -> list:
        return self.fake.file_requests() + self.fake.storage_requests()

    def check_submission(self, received) -> None:
        assert received.path == f"/v1beta/models/{MODEL}:predictLongRunning"
        assert received.body == {"instances": [{"prompt": PROMPT}],
                                 "parameters": {"aspectRatio": "16:9", "durationSeconds": 4, "resolution": "720p"}}

    @staticmethod
    def sent_seconds(received) -> str:
        return str(received.body["parameters"]["durationSeconds"])

    def check_view(self, video: dict) -> None:
        assert video["seconds"] == "4" and video["size"] == "1280x720"
        meta = video["metadata"]
        assert meta["duration"] == 4 and meta["aspect_ratio"] == "16:9" and meta["resolution"] == "720p"
        assert meta["fps"] == 24 and (meta["width"], meta["height"]) == (1280, 720)

    def check_auth(self, received) -> None:
        assert received.headers.get("x-goog-api-key") == self.fake.api_key

    def check_download(self, received) -> None:
        if received.path.startswith("/storage/"):
            assert "x-goog-api-key" not in received.headers  # Google's signed storage link
        else:
            self.check_auth(received)  # the file URI needs the key

    def take_a_while(self) -> None:
        self.fake.polls_to_finish = 4

    def fail_midway(self) -> tuple[str, str]:
        self.fake.fail_with = "Video generation failed due to an internal error."
        return "generation_failed", "internal error"

    def moderate(self) -> None:
        self.fake.filtered = True

    def never_finish(self) -> None:
        self.fake.never_finish = True

    def rate_limit_before_submit(self, polls: int) -> None:
        pass

    def rate_limit_after_submit(self, polls: int) -> None:
        self.fake.rate_limit_next = polls

    def rate_limits_served(self, polls: int, task_id: str) -> bool:
        return self.fake.rate_limit_next == 0

    def rate_limit_submit(self) -> None:
        self.fake.rate_limit_next = 1

    def submit_calls(self) -> int:
        return len(self.submissions())

    def reject_at_submit_for_moderation(self) -> str:
        self.fake.inject_next.append((400, "INVALID_ARGUMENT", "The prompt could not be submitted: it violates "
                                      "Google's safety policy.", None))
        return "content_policy_violation"


@pytest.fixture(scope="module")
def started(gw):
    case = VeoCase()
    case.start()
    gw.channel("e2e-veo", case.type, case.models, base_url=case.base_url, key=case.key)
    yield case
    case.stop()


@pytest.fixture
def provider(started):
    started.reset()
    yield started
    started.reset()


def test_image_to_video_over_rest_by_url_and_by_base64(gw, key, provider, image_host):
    """A client's image URL is fetched by st-ai (Veo takes bytes only); base64 goes as it is."""
    image_host.received.clear()
    for image in (f"http://127.0.0.1:{image_host.port}/first.png", PNG_B64):
        status, created = call_json(gw, key, "POST", "/v1/videos", {"model": MODEL, **ASK, "image": image,
                                                                    "metadata": {"negative_prompt": "fog"}})
        assert status == 200, created
        _, video = wait_until_done(gw, key, created["id"])
        assert video["status"] == "completed", video
        status, content = call(gw, key, "GET", f"/v1/videos/{created['id']}/content")
        assert status == 200 and content == provider.video
    first, second = provider.submissions()
    for submission in (first, second):
        assert submission.body["instances"][0] == {
            "prompt": PROMPT, "image": {"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}}
        assert submission.body["parameters"]["negativePrompt"] == "fog"
    assert len(image_host.received) == 1 and "x-goog-api-key" not in image_host.received[0]


def test_a_metadata_address_image_url_is_400_before_sending(gw, key, provider):
    status, answer = call_json(gw, key, "POST", "/v1/videos", {
        "model": MODEL, **ASK, "image": "http://169.254.169.254/latest/meta-data/iam.png"})
    assert status == 400 and answer["error"]["param"] == "image", answer
    assert answer["error"]["code"] == "invalid_image_url" and "cloud metadata" in answer["error"]["message"]
    time.sleep(2 * POLL)
    assert provider.submissions() == []


def test_openai_sdk_image_to_video_with_an_upload(gw, key, provider, tmp_path):
    from openai import OpenAI

    client = OpenAI(base_url=gw.base_url, api_key=key, timeout=15, max_retries=0)
    video = client.videos.create_and_poll(model=MODEL, prompt=PROMPT, seconds="8", size="720x1280",
                                          input_reference=("first.png", PNG, "image/png"), poll_interval_ms=200)
    assert video.status == "completed" and video.seconds == "8" and video.size == "720x1280", video
    out = tmp_path / "veo.mp4"
    client.videos.download_content(video.id).write_to_file(out)
    assert out.read_bytes() == provider.video
    (submission,) = provider.submissions()
    assert submission.body == {
        "instances": [{"prompt": PROMPT, "image": {"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}}],
        "parameters": {"aspectRatio": "9:16", "durationSeconds": 8, "resolution": "720p"}}


VIDEOS = "st_ai.v1.Videos"


@pytest.fixture(scope="module")
def reflected(gw):
    with grpc.insecure_channel(gw.grpc_target, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield Reflected(ch)


@pytest.mark.parametrize("image", [None, PNG_B64])
def test_grpc_by_reflection_text_and_image_to_video_to_completion(gw, key, provider, reflected, image):
    create, CreateRequest = reflected.callable(VIDEOS, "CreateVideo")
    get, GetRequest = reflected.callable(VIDEOS, "GetVideo")
    content, ContentRequest = reflected.callable(VIDEOS, "GetVideoContent")
    fields = {"model": MODEL, "prompt": PROMPT, "duration": 5.0, "width": 1280, "height": 720, "fps": 30}
    if image:
        fields["image"] = image
    video = create(CreateRequest(**fields), metadata=auth(key), timeout=10)
    assert video.status == "queued"
    deadline = time.monotonic() + 15
    while video.status not in ("completed", "failed"):
        assert time.monotonic() < deadline, video
        time.sleep(POLL)
        video = get(GetRequest(video_id=video.id), metadata=auth(key), timeout=10)
    assert video.status == "completed" and video.seconds == "4" and video.size == "1280x720", video
    data = b"".join(chunk.data for chunk in content(ContentRequest(video_id=video.id), metadata=auth(key), timeout=10))
    assert data == provider.video
    (submission,) = provider.submissions()
    assert ("image" in submission.body["instances"][0]) == bool(image)


# -- the operator's command ---------------------------------------------------------------

OPERATOR_KEY = "AIzaSyOPERATOR0KEY00000000000000000001"


def test_channel_add_type_veo_defaults_to_the_public_endpoint_and_takes_a_regional_one(tmp_path):
    from tests.test_cli import run

    db = str(tmp_path / "cli.db")
    added = run("channel", "add", "--name", "veo-main", "--type", "veo", "--key", OPERATOR_KEY,
                "--models", "veo-3.1-generate-preview,veo-3.0-generate-001", db=db)
    assert added.code == 0, added.err
    proxied = run("channel", "add", "--name", "veo-eu", "--type", "veo", "--key", OPERATOR_KEY,
                  "--models", "veo-3.1-generate-preview", "--base-url", "https://veo-proxy.eu.example", db=db)
    assert proxied.code == 0, proxied.err
    listed = run("channel", "list", db=db)
    assert "generativelanguage.googleapis.com" in listed.out and "veo-proxy.eu.example" in listed.out
    assert OPERATOR_KEY not in listed.out  # keys are masked
    missing = run("channel", "add", "--name", "veo-nokey", "--type", "veo", "--models", MODEL, db=db)
    assert missing.code != 0 and "--key API_KEY" in missing.err and "Traceback" not in missing.err
