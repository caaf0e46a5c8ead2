"""`GET /v1/models` tells, for each video model, what it takes (durations, sizes or aspect
ratios, fps, inputs, metadata keys), from the provider of the first channel serving it; chat
and image models carry no capabilities. Checked over REST, gRPC and the openai SDK against a
real `st-ai serve` in front of the fake OpenAI and Runway servers and a simulator channel,
then the documented example request (5.0 s, 1280x720, 30 fps) on each type."""
from __future__ import annotations

import time

import grpc
import pytest
from openai import OpenAI

from server.codec import codec_for
from server.providers.openai.video_convert import capabilities as openai_capabilities
from server.providers.runway import convert as runway
from server.providers.simulator.video import CAPABILITIES as SIMULATOR
from st_ai.v1 import models_pb2, models_pb2_grpc
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.runway import FakeRunway
from tests.test_video_providers_e2e import call_json

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")]

EXAMPLE = {"prompt": "a red fox running through fresh snow", "duration": 5.0, "width": 1280, "height": 720,
           "fps": 30}
RUNWAY_MODELS = sorted(runway.MODELS)
CHAT_MODELS = ["gpt-4o-mini", "sim-chat"]


@pytest.fixture(scope="module")
def fakes():
    openai_fake, runway_fake = FakeOpenAI().start(), FakeRunway().start()
    yield openai_fake, runway_fake
    openai_fake.stop()
    runway_fake.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fakes):
    openai_fake, runway_fake = fakes
    gateway = start_gateway(str(tmp_path_factory.mktemp("caps") / "st-ai.db"), "--video-poll-interval", "0.2")
    gateway.channel("caps-openai", "openai", ["sora-2", "sora-2-pro", "gpt-4o-mini"],
                    base_url=openai_fake.base_url, key=openai_fake.api_key)
    # "shared-video" is served by the simulator too, at a lower priority: Runway's is listed
    gateway.channel("caps-runway", "runway", [*RUNWAY_MODELS, "shared-video"], base_url=runway_fake.base_url,
                    key=runway_fake.api_key, model_map={"shared-video": "veo3.1"}, priority=5)
    gateway.channel("caps-simulator", "simulator", ["kling-sim", "sim-chat", "shared-video"])
    yield gateway
    stop_gateway(gateway)


@pytest.fixture(scope="module")
def key(gw) -> str:
    return gw.token("caps")


def expected() -> dict[str, dict]:
    listed = {"sora-2": openai_capabilities("sora-2"), "sora-2-pro": openai_capabilities("sora-2-pro"),
              "kling-sim": SIMULATOR, "shared-video": runway.capabilities("veo3.1")}
    listed |= {name: runway.capabilities(name) for name in RUNWAY_MODELS}
    return {name: caps.listing() for name, caps in listed.items()}


def test_rest_lists_capabilities_for_every_video_model_and_none_for_chat(gw, key):
    status, page = call_json(gw, key, "GET", "/v1/models")
    assert status == 200, page
    by_id = {m["id"]: m for m in page["data"]}
    for name, listing in expected().items():
        assert by_id[name]["capabilities"] == listing, name
        assert by_id[name]["object"] == "model"
    for name in CHAT_MODELS:
        assert "capabilities" not in by_id[name]
    sora = by_id["sora-2"]["capabilities"]
    assert sora["durations"] == [4, 8, 12] and sora["sizes"] == ["1280x720", "720x1280"]
    assert by_id["gen4_turbo"]["capabilities"]["inputs"] == ["text", "first_frame"]
    assert by_id["kling-sim"]["capabilities"]["side_range"] == {"min": 64, "max": 1920}
    assert "last_frame" in by_id["shared-video"]["capabilities"]["inputs"]  # veo3.1 by Runway, not the simulator

    status, one = call_json(gw, key, "GET", "/v1/models/gen4.5")
    assert status == 200 and one["capabilities"] == expected()["gen4.5"]


def test_grpc_lists_the_same_capabilities(gw, key):
    with grpc.insecure_channel(gw.grpc_target) as channel:
        stub = models_pb2_grpc.ModelsStub(channel)
        answer = stub.ListModels(models_pb2.ListModelsRequest(), metadata=(("authorization", f"Bearer {key}"),),
                                 timeout=10)
        one = stub.GetModel(models_pb2.GetModelRequest(model="veo3"),
                            metadata=(("authorization", f"Bearer {key}"),), timeout=10)
    by_id = {m.id: m for m in answer.data}
    codec = codec_for(models_pb2.VideoCapabilities)
    for name, listing in expected().items():
        assert by_id[name].HasField("capabilities"), name
        assert codec.to_dict(by_id[name].capabilities) == listing, name
    for name in CHAT_MODELS:
        assert not by_id[name].HasField("capabilities")
    assert list(one.capabilities.durations) == [8.0] and list(one.capabilities.fps) == [24]
    assert list(by_id["sora-2-pro"].capabilities.sizes) == ["1280x720", "720x1280", "1792x1024", "1024x1792"]
    assert by_id["kling-sim"].capabilities.fps_range.max == 60


def test_openai_sdk_parses_the_list_with_capabilities(gw, key):
    client = OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=10)
    models = {m.id: m for m in client.models.list()}
    for name, listing in expected().items():
        assert models[name].object == "model"
        assert models[name].model_extra["capabilities"] == listing, name
    assert "capabilities" not in models["gpt-4o-mini"].model_extra
    assert client.models.retrieve("sora-2").model_extra["capabilities"]["durations"] == [4, 8, 12]


# -- the documented example on each type, fitted and reported --------------------------------

def _create(gw, key, body: dict) -> dict:
    status, created = call_json(gw, key, "POST", "/v1/videos", body)
    assert status == 200, created
    return created


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_documented_example_on_openai_shape(gw, key, fakes):
    openai_fake, _ = fakes
    created = _create(gw, key, {"model": "sora-2", **EXAMPLE})
    assert created["metadata"] == {"duration": 4.0, "width": 1280, "height": 720, "seconds": "4",
                                   "size": "1280x720"}
    _wait(lambda: any(r.method == "POST" for r in openai_fake.video_received), "the OpenAI submission")
    (sent,) = [r for r in openai_fake.video_received if r.method == "POST"]
    assert sent.body == {"model": "sora-2", "prompt": EXAMPLE["prompt"], "seconds": "4", "size": "1280x720"}


def test_documented_example_on_runway(gw, key, fakes):
    _, runway_fake = fakes
    created = _create(gw, key, {"model": "gen4.5", **EXAMPLE, "metadata": {"aspect_ratio": "16:9"}})
    assert created["metadata"] == {"duration": 5, "width": 1280, "height": 720, "ratio": "1280:720", "fps": 24}
    _wait(lambda: any(r.method == "POST" for r in runway_fake.received), "the Runway submission")
    (sent,) = [r for r in runway_fake.received if r.method == "POST"]
    assert (sent.path, sent.body) == ("/v1/text_to_video", {"model": "gen4.5", "promptText": EXAMPLE["prompt"],
                                                            "ratio": "1280:720", "duration": 5})


def test_documented_example_on_the_simulator(gw, key):
    created = _create(gw, key, {"model": "kling-sim", **EXAMPLE})
    assert created["metadata"] == {"duration": 5.0, "width": 1280, "height": 720, "fps": 30}


@pytest.mark.parametrize("model,key_name", [("sora-2", "negative_prompt"), ("gen4_turbo", "audio"),
                                            ("kling-sim", "watermark"), ("sora-2", "motion_bucket"),
                                            ("gen4.5", "style")])
def test_a_metadata_key_the_model_has_not_is_a_400_naming_it(gw, key, fakes, model, key_name):
    before = [len(f.received) for f in fakes]
    status, answer = call_json(gw, key, "POST", "/v1/videos",
                               {"model": model, **EXAMPLE, "image": "https://example.com/fox.png",
                                "metadata": {key_name: "x"}})
    assert status == 400, answer
    assert answer["error"]["param"] == f"metadata.{key_name}" and answer["error"]["type"] == "invalid_request_error"
    assert [len(f.received) for f in fakes] == before  # nothing went upstream
