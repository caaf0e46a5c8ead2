"""The existing video types (openai-shape, runway, simulator) declare what each model takes
and fit requests through server/providers/video_shape.py: the documented example (5.0 s,
1280x720, 30 fps) is fitted and reported, neutral metadata keys are honoured where the
provider has the feature, and any other key is a 400 naming it."""
from __future__ import annotations

import pytest

from server.errors import GatewayError
from server.providers.interface import VideoModels, VideoRequest
from server.providers.openai.video_convert import capabilities as openai_capabilities
from server.providers.openai.video_convert import to_prepared
from server.providers.openai.videos import OpenAIVideos
from server.providers.runway import convert as runway
from server.providers.runway.client import RunwayVideo
from server.providers.simulator.video import SimulatorVideo
from server.providers.video_shape import NEUTRAL_KEYS
from server.store.channels import Channel

EXAMPLE = {"prompt": "a red fox in the snow", "duration": 5.0, "width": 1280, "height": 720, "fps": 30}
IMAGE_URL = "https://example.com/fox.png"
SIM = Channel(1, "sim", "simulator", "", "")


def refused(call, *args, **kwargs) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        call(*args, **kwargs)
    assert info.value.http_status == 400
    return info.value


def simulator(**fields):
    return SimulatorVideo(None).prepare(SIM, VideoRequest(**({"model": "sora-2", **EXAMPLE} | fields)))


def test_every_existing_video_provider_declares_capabilities():
    for provider in (OpenAIVideos, RunwayVideo, SimulatorVideo):
        assert issubclass(provider, VideoModels)


@pytest.mark.parametrize("model", sorted(runway.MODELS))
def test_every_runway_model_lists_what_its_endpoints_take(model):
    caps = runway.capabilities(model)
    spec = runway.MODELS[model]
    modes = [m for m in (spec.text, spec.image) if m]
    assert set(caps.durations) == {d for m in modes for d in m.durations}
    assert {f"{w}:{h}" for w, h in caps.sizes} == {r for m in modes for r in m.ratios}
    assert ("first_frame" in caps.inputs) == (spec.image is not None)
    assert caps.fps == (24,)
    listing = caps.listing()
    assert listing["inputs"][0] == "text" and "aspect_ratio" in listing["metadata"]
    assert set(listing["metadata"]) >= {"ratio", "promptImage"}


def test_openai_lists_sora_models_and_nothing_else():
    assert openai_capabilities("sora-2").listing() == {
        "inputs": ["text", "first_frame"], "durations": [4, 8, 12], "aspect_ratios": ["16:9", "9:16"],
        "sizes": ["1280x720", "720x1280"], "metadata": ["aspect_ratio", "character_ids"]}
    assert openai_capabilities("sora-2-pro-2025-10-06").sizes[2:] == ((1792, 1024), (1024, 1792))
    assert openai_capabilities("gpt-4o-mini") is None  # a chat model of the same channel


def test_simulator_lists_video_family_names_only():
    provider = SimulatorVideo(None)
    for name in ("sora-2", "kling-v2-1", "runway-gen3", "veo-3.0-generate-001", "wan2.5-t2v-plus",
                 "doubao-seedance-1-0-pro-250528", "MiniMax-Hailuo-02", "my-video-model"):
        listing = provider.capabilities(name).listing()
        assert listing["side_range"] == {"min": 64, "max": 1920} and listing["fps_range"] == {"min": 1, "max": 60}
    for name in ("gpt-4o-mini", "dall-e-3", "gpt-image-1", "swan-chat"):
        assert provider.capabilities(name) is None


# -- the documented example, fitted and reported ----------------------------------------------

def test_documented_example_on_openai_is_fitted_and_reported():
    prepared = to_prepared(VideoRequest(model="sora-2", **EXAMPLE))
    assert (prepared.body["seconds"], prepared.body["size"]) == ("4", "1280x720")
    assert prepared.asked == {"duration": 4.0, "width": 1280, "height": 720, "seconds": "4", "size": "1280x720"}


def test_documented_example_on_runway_is_fitted_and_reported():
    prepared = runway.prepare(VideoRequest(model="gen4_turbo", image=IMAGE_URL, **EXAMPLE))
    assert prepared.body == {"model": "gen4_turbo", "promptImage": IMAGE_URL, "promptText": EXAMPLE["prompt"],
                             "ratio": "1280:720", "duration": 5}
    assert prepared.asked == {"duration": 5, "width": 1280, "height": 720, "ratio": "1280:720", "fps": 24}
    veo = runway.prepare(VideoRequest(model="veo3.1", **EXAMPLE))
    assert (veo.body["duration"], veo.body["ratio"]) == (6, "1280:720")


def test_documented_example_on_the_simulator_is_kept_as_asked():
    assert simulator().asked == {"duration": 5.0, "width": 1280, "height": 720, "fps": 30}
    assert simulator(duration=45.0, fps=240, width=4000, height=10).asked == {
        "duration": 20.0, "width": 1920, "height": 64, "fps": 60}


@pytest.mark.parametrize("field,value", [("duration", -5.0), ("width", -1280), ("height", 0), ("fps", -30)])
def test_impossible_values_are_400_naming_the_field_on_every_type(field, value):
    assert refused(simulator, **{field: value}).param == field
    if field != "fps":  # OpenAI takes no fps, so it never reads it
        assert refused(to_prepared, VideoRequest(model="sora-2", **(EXAMPLE | {field: value}))).param == field
    assert refused(runway.prepare, VideoRequest(model="gen4.5", **(EXAMPLE | {field: value}))).param == field


# -- neutral metadata keys -----------------------------------------------------------------

def test_openai_honours_aspect_ratio_and_refuses_what_it_has_not():
    portrait = to_prepared(VideoRequest(model="sora-2", prompt="x", metadata={"aspect_ratio": "9:16"}))
    assert portrait.body["size"] == "720x1280"
    pro = to_prepared(VideoRequest(model="sora-2-pro", prompt="x", width=1920, height=1080,
                                   metadata={"aspect_ratio": "9:16"}))
    assert pro.body["size"] == "1024x1792"
    assert refused(to_prepared, VideoRequest(model="sora-2", prompt="x", metadata={"aspect_ratio": "4:3"})
                   ).param == "metadata.aspect_ratio"
    for key in NEUTRAL_KEYS - {"aspect_ratio"}:
        error = refused(to_prepared, VideoRequest(model="sora-2", prompt="x", metadata={key: "x"}))
        assert error.param == f"metadata.{key}"


def test_runway_maps_neutral_keys_to_its_own_fields():
    prepared = runway.prepare(VideoRequest(model="veo3.1", prompt="x", image=IMAGE_URL, metadata={
        "last_frame": "https://example.com/end.png", "negative_prompt": "blur", "audio": False,
        "aspect_ratio": "9:16"}))
    assert prepared.body["promptImage"] == [{"uri": IMAGE_URL, "position": "first"},
                                            {"uri": "https://example.com/end.png", "position": "last"}]
    assert (prepared.body["negativePrompt"], prepared.body["audio"], prepared.body["ratio"]) == \
        ("blur", False, "720:1280")
    assert prepared.asked["width"] == 720
    # a 1080p-sized request keeps its size within the asked shape
    tall = runway.prepare(VideoRequest(model="veo3", prompt="x", width=1080, height=1920,
                                       metadata={"aspect_ratio": "9:16"}))
    assert tall.body["ratio"] == "1080:1920"


def test_runway_refuses_neutral_keys_a_model_has_not():
    gen4 = VideoRequest(model="gen4_turbo", prompt="x", image=IMAGE_URL)
    for key in ("last_frame", "negative_prompt", "audio", "watermark", "resolution", "reference_images"):
        bad = VideoRequest(**{**gen4.__dict__, "metadata": {key: "x"}})
        assert refused(runway.prepare, bad).param == f"metadata.{key}"
    shape = VideoRequest(model="gen4.5", prompt="x", metadata={"aspect_ratio": "1:1"})  # text-to-video: 16:9, 9:16
    assert refused(runway.prepare, shape).param == "metadata.aspect_ratio"
    assert refused(runway.prepare, VideoRequest(**{**gen4.__dict__, "metadata": {"style": 1}})).param == \
        "metadata.style"


def test_simulator_honours_shape_keys_and_refuses_others():
    portrait = simulator(metadata={"aspect_ratio": "9:16"}).asked
    assert (portrait["width"], portrait["height"]) == (720, 1280)
    hd = simulator(width=None, height=None, metadata={"resolution": "1080p", "aspect_ratio": "1:1"}).asked
    assert (hd["width"], hd["height"]) == (1080, 1080)
    framed = simulator(metadata={"last_frame": IMAGE_URL, "reference_images": [IMAGE_URL],
                                 "negative_prompt": "blur", "style": "noir"})
    assert framed.body["prompt"].endswith("(from an image)")
    for key in ("watermark", "audio", "seed_strength"):
        assert refused(simulator, metadata={key: True}).param == f"metadata.{key}"
    assert refused(simulator, metadata={"resolution": "8k"}).param == "metadata.resolution"
    assert refused(simulator, metadata={"reference_images": "one"}).param == "metadata.reference_images"
