"""The `veo` channel type (Google's Gemini API): the pure mapping of requests and
operations, the error table, the provider against a real fake Gemini API on 127.0.0.1
(tests/fakes/veo.py), and st-ai end to end in front of it through REST JSON, the openai
SDK and gRPC by reflection. Names resolve only through a stub resolver; nothing leaves
127.0.0.1."""
from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import grpc
import pytest
from aiohttp import web

from server.errors import GatewayError
from server.providers.interface import Upstream, VideoRequest
from server.providers.registry import discover
from server.providers.veo import convert, errors, models
from server.providers.veo.client import VeoVideo
from server.safe_fetch import SafeFetch
from server.store.channels import Channel
from server.url_guard import UrlGuard
from tests.fakes.resolver import StubResolver
from tests.fakes.sample_media import sample_png
from tests.fakes.threaded_server import ThreadedServer
from tests.fakes.veo import SAFETY_REASON, FakeVeo
from tests.reflection_client import Reflected, auth
# The provider-neutral scenarios every video type passes, run here against the fake Veo.
from tests.test_video_providers_e2e import (  # noqa: F401  (fixtures and tests collected here)
    ASK, POLL, PROMPT, call, call_json, gw, key, slow_gw, test_channel_with_a_wrong_key_fails_the_submission_at_once,
    test_content_before_completion_is_409, test_documented_client_flow_downloads_the_providers_exact_video,
    test_image_on_a_model_that_cannot_take_it_is_400_before_sending, test_moderation_during_generation_is_moderation_blocked_never_completed,
    test_openai_sdk_create_and_poll_then_download, test_provider_blocks_the_submission_for_moderation,
    test_provider_failure_midway_fails_the_task_with_its_reason, test_provider_rejects_bad_parameters_at_submit,
    test_provider_that_never_finishes_is_failed_with_timeout, test_rate_limited_polls_do_not_fail_the_task,
    test_rate_limited_submission_is_kept_and_sent_again, test_unknown_metadata_key_is_400_before_sending,
    wait_until_done, task_ids)

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")]

MODEL = "veo-3.1-generate-preview"
BASE = "https://generativelanguage.googleapis.com"
PNG = sample_png("veo first frame")
PNG_B64 = base64.b64encode(PNG).decode()


def req(model: str = MODEL, **kw) -> VideoRequest:
    kw.setdefault("prompt", PROMPT)
    return VideoRequest(model=model, **kw)


def refused(call, *args) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        call(*args)
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
