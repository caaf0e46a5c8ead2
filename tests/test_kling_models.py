"""Kling's current models, on plain data: what each declares it takes, the exact body
the documented example request becomes for each, how values are fitted to each model,
the rules between mode, sound, last frame and camera move, and the retired names."""
from __future__ import annotations

import base64

import pytest

from server.errors import GatewayError
from server.providers.interface import VideoRequest
from server.providers.kling import convert, models
from server.providers.kling.client import KlingVideo

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
PNG_B64 = base64.b64encode(PNG).decode()
PROMPT = "A red fox trotting through fresh snow at dawn, cinematic"
EXAMPLE = {"prompt": PROMPT, "duration": 5.0, "width": 1280, "height": 720, "fps": 30}
IMAGE_URL = "https://cdn.example.com/first.png"
TAIL_URL = "https://cdn.example.com/last.png"


def prepare(model: str, **fields):
    return convert.to_kling(VideoRequest(**({"model": model} | EXAMPLE | fields)))


def refused(model: str, param: str, code: str | None = None, **fields) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        prepare(model, **fields)
    assert info.value.http_status == 400, info.value
    assert info.value.param == param, info.value
    if code is not None:
        assert info.value.code == code
    return info.value


# -- what each model declares ------------------------------------------------------------

def test_capabilities_of_each_current_model():
    v3 = models.capabilities("kling-v3").listing()
    assert v3["durations"] == list(range(3, 16))
    assert v3["aspect_ratios"] == ["16:9", "9:16", "1:1"] and v3["resolutions"] == ["720p", "1080p"]
    assert v3["inputs"] == ["text", "first_frame", "last_frame"]
    assert {"negative_prompt", "last_frame", "aspect_ratio", "resolution", "watermark", "audio",
            "mode", "camera_control", "cfg_scale"} <= set(v3["metadata"])

    v26 = models.capabilities("kling-v2-6").listing()
    assert v26["durations"] == [5, 10] and v26["resolutions"] == ["720p", "1080p"]
    assert v26["inputs"] == ["text", "first_frame", "last_frame"]
    assert {"audio", "last_frame", "camera_control", "mode"} <= set(v26["metadata"])
    assert "cfg_scale" not in v26["metadata"]  # Kling's v2.x models take none

    turbo = models.capabilities("kling-v2-5-turbo").listing()
    assert turbo["durations"] == [5, 10] and turbo["resolutions"] == ["1080p"]  # pro mode only
    assert "audio" not in turbo["metadata"] and "last_frame" in turbo["metadata"]


def test_the_provider_answers_capabilities_and_nothing_for_names_it_does_not_know():
    assert KlingVideo.capabilities(None, "kling-v3") == models.capabilities("kling-v3")  # type: ignore[arg-type]
    assert models.capabilities("kling-v9-preview") is None
    assert models.capabilities("kling-v1-6") is None  # retired


# -- the documented example, per model -----------------------------------------------------

def test_documented_example_on_kling_v3():
    prepared = prepare("kling-v3")
    assert prepared.body == {"model_name": "kling-v3", "prompt": PROMPT, "duration": "5", "mode": "std",
                             "aspect_ratio": "16:9", "sound": "off"}
    assert prepared.asked == {"duration": 5.0, "width": 1280, "height": 720, "aspect_ratio": "16:9", "fps": 30,
                              "mode": "std", "resolution": "720p", "audio": False}


def test_documented_example_on_kling_v2_6():
    prepared = prepare("kling-v2-6")
    assert prepared.body == {"model_name": "kling-v2-6", "prompt": PROMPT, "duration": "5", "mode": "std",
                             "aspect_ratio": "16:9", "sound": "off"}
    assert prepared.asked["resolution"] == "720p" and prepared.asked["audio"] is False


def test_documented_example_on_kling_v2_5_turbo_is_pro_at_1080p():
    prepared = prepare("kling-v2-5-turbo")
    assert prepared.body == {"model_name": "kling-v2-5-turbo", "prompt": PROMPT, "duration": "5", "mode": "pro",
                             "aspect_ratio": "16:9"}
    assert (prepared.asked["width"], prepared.asked["height"], prepared.asked["resolution"]) == (1920, 1080, "1080p")


def test_documented_image_example_on_each_current_model():
    for model in models.CURRENT:
        for image, sent in ((IMAGE_URL, IMAGE_URL), (f"data:image/png;base64,{PNG_B64}", PNG_B64), (PNG_B64, PNG_B64)):
            prepared = prepare(model, image=image)
            assert prepared.body["image"] == sent and "aspect_ratio" not in prepared.body
            assert convert.endpoint_for(prepared.body) == "image2video"
            assert prepared.asked["width"] is None and prepared.asked["aspect_ratio"] is None


# -- fitting -------------------------------------------------------------------------------

@pytest.mark.parametrize("model,seconds,sent", [
    ("kling-v3", 5.0, "5"), ("kling-v3", 1, "3"), ("kling-v3", 7.4, "7"), ("kling-v3", 12.5, "13"),
    ("kling-v3", 60, "15"), ("kling-v3", None, "5"),
    ("kling-v2-6", 7.4, "5"), ("kling-v2-6", 7.5, "10"), ("kling-v2-6", 30, "10"),
    ("kling-v2-5-turbo", 2, "5"), ("kling-v2-5-turbo", 9, "10")])
def test_duration_goes_to_the_nearest_the_model_takes(model, seconds, sent):
    prepared = prepare(model, duration=seconds)
    assert prepared.body["duration"] == sent and prepared.asked["duration"] == float(sent)


@pytest.mark.parametrize("model", models.CURRENT)
def test_impossible_duration_is_refused(model):
    refused(model, "duration", duration=-1)


def test_resolution_chooses_the_mode_and_the_reported_size():
    pro = prepare("kling-v3", width=720, height=1280, metadata={"resolution": "1080p"})
    assert pro.body["mode"] == "pro" and pro.body["aspect_ratio"] == "9:16"
    assert (pro.asked["width"], pro.asked["height"], pro.asked["resolution"]) == (1080, 1920, "1080p")
    assert prepare("kling-v2-6", metadata={"mode": "pro"}).asked["resolution"] == "1080p"
    refused("kling-v2-5-turbo", "metadata.resolution", metadata={"resolution": "720p"})
    refused("kling-v3", "metadata.resolution", metadata={"resolution": "720p", "mode": "pro"})
    refused("kling-v2-5-turbo", "metadata.mode", metadata={"mode": "std"})
    refused("kling-v3", "metadata.mode", metadata={"mode": "turbo"})


def test_aspect_ratio_asked_by_name():
    assert prepare("kling-v3", metadata={"aspect_ratio": "1:1"}).body["aspect_ratio"] == "1:1"
    refused("kling-v3", "metadata.aspect_ratio", metadata={"aspect_ratio": "21:9"})
    # a video made from an image follows the image's shape
    refused("kling-v3", "metadata.aspect_ratio", image=IMAGE_URL, metadata={"aspect_ratio": "1:1"})


# -- sound, last frame, camera move ------------------------------------------------------------

def test_sound_on_kling_v3_in_either_mode():
    std = prepare("kling-v3", metadata={"audio": True}).body
    assert (std["sound"], std["mode"]) == ("on", "std")
    with_sound = prepare("kling-v3", metadata={"audio": True, "mode": "pro"})
    assert with_sound.body["sound"] == "on" and with_sound.asked["audio"] is True
    assert prepare("kling-v3", metadata={"sound": "on"}).body["sound"] == "on"  # Kling's own name
    refused("kling-v3", "metadata.audio", metadata={"audio": "yes"})
    refused("kling-v3", "metadata.sound", metadata={"audio": True, "sound": "on"})


def test_sound_on_kling_v2_6_needs_pro_mode():
    prepared = prepare("kling-v2-6", metadata={"audio": True})
    assert prepared.body["sound"] == "on" and prepared.body["mode"] == "pro"  # the mode that makes sound
    assert prepared.asked["mode"] == "pro" and prepared.asked["resolution"] == "1080p"
    refused("kling-v2-6", "metadata.audio", metadata={"audio": True, "mode": "std"})


def test_sound_where_the_model_has_none_is_refused_by_name():
    refused("kling-v2-5-turbo", "metadata.audio", metadata={"audio": True})
    refused("kling-v2-5-turbo", "metadata.sound", metadata={"sound": "on"})


def test_last_frame_becomes_image_tail():
    prepared = prepare("kling-v3", image=IMAGE_URL, metadata={"last_frame": f"data:image/png;base64,{PNG_B64}"})
    assert prepared.body["image"] == IMAGE_URL and prepared.body["image_tail"] == PNG_B64
    assert prepared.body["mode"] == "std"
    on_v26 = prepare("kling-v2-6", image=IMAGE_URL, metadata={"last_frame": TAIL_URL})
    assert on_v26.body["image_tail"] == TAIL_URL and on_v26.body["mode"] == "pro"
    refused("kling-v2-6", "metadata.last_frame", image=IMAGE_URL, metadata={"last_frame": TAIL_URL, "mode": "std"})
    # on kling-v2-6 a last frame and sound exclude each other
    refused("kling-v2-6", "metadata.audio", image=IMAGE_URL, metadata={"last_frame": TAIL_URL, "audio": True})
    refused("kling-v2-master", "metadata.last_frame", image=IMAGE_URL, metadata={"last_frame": TAIL_URL})
    refused("kling-v3", "metadata.last_frame", image=IMAGE_URL, metadata={"last_frame": "not an image"})
    refused("kling-v3", "metadata.image_tail", image=IMAGE_URL,
            metadata={"last_frame": TAIL_URL, "image_tail": TAIL_URL})


def test_camera_control_is_checked_and_passed_through():
    move = {"type": "simple", "config": {"horizontal": 0, "vertical": 0, "pan": 0, "tilt": 0, "roll": 0, "zoom": 5}}
    assert prepare("kling-v2-6", metadata={"camera_control": move}).body["camera_control"] == move
    assert prepare("kling-v3", metadata={"camera_control": {"type": "forward_up"}}).body["camera_control"] == \
        {"type": "forward_up"}
    for bad in ({"type": "spin"}, {"type": "simple"}, {"type": "simple", "config": {"zoom": 11}},
                {"type": "simple", "config": {"zoom": 1, "pan": 2}}, {"type": "down_back", "config": {"zoom": 1}},
                "forward_up"):
        refused("kling-v3", "metadata.camera_control", metadata={"camera_control": bad})
    # Kling takes one of a last frame, a motion brush, a camera move
    refused("kling-v3", "metadata.camera_control", image=IMAGE_URL,
            metadata={"last_frame": TAIL_URL, "camera_control": move})


def test_kling_own_parameters_per_model():
    assert prepare("kling-v3", metadata={"cfg_scale": 0.3}).body["cfg_scale"] == 0.3
    refused("kling-v2-6", "metadata.cfg_scale", metadata={"cfg_scale": 0.3})
    refused("kling-v3", "metadata.cfg_scale", metadata={"cfg_scale": 1.5})
    assert prepare("kling-v3", metadata={"watermark": True}).body["watermark_info"] == {"enabled": True}
    refused("kling-v3", "metadata.watermark", metadata={"watermark": "on"})
    assert prepare("kling-v2-6", metadata={"negative_prompt": "blur"}).body["negative_prompt"] == "blur"
    voices = [{"voice_id": "829824295735410756"}]
    assert prepare("kling-v3", metadata={"audio": True, "voice_list": voices}).body["voice_list"] == voices
    refused("kling-v3", "metadata.voice_list", metadata={"voice_list": voices})
    refused("kling-v3", "metadata.static_mask", image=IMAGE_URL, metadata={"static_mask": PNG_B64})
    refused("kling-v3", "metadata.reference_images", metadata={"reference_images": [IMAGE_URL]})
    refused("kling-v3", "metadata.warp_speed", metadata={"warp_speed": "max"})
    refused("kling-v3", "seed", seed=7)


# -- retired and other names -------------------------------------------------------------------

@pytest.mark.parametrize("model", sorted(models.RETIRED))
def test_retired_model_is_refused_naming_it(model):
    error = refused(model, "model", "model_retired")
    assert model in error.message and "kling-v3" in error.message and "2026-09-15" in error.message


@pytest.mark.parametrize("model", sorted(models.OMNI))
def test_omni_model_is_refused_naming_it(model):
    assert model in refused(model, "model", "model_not_supported").message


def test_a_name_st_ai_does_not_know_is_sent_for_kling_to_judge():
    prepared = prepare("kling-v9-preview", metadata={"cfg_scale": 0.5})
    assert prepared.body == {"model_name": "kling-v9-preview", "prompt": PROMPT, "duration": "5", "mode": "std",
                             "aspect_ratio": "16:9", "cfg_scale": 0.5}


def test_a_negative_size_is_refused_with_or_without_an_image():
    refused("kling-v3", "width", width=-1280)
    refused("kling-v3", "height", image=IMAGE_URL, height=-720)
