"""Kling's current models end to end over REST: a real `st-ai serve` in front of the fake
Kling (tests/fakes/kling.py, which knows each model's rules and refuses what Kling
refuses), driven the way the API document tells users to. For each current model:
text-to-video and image-to-video (with a last frame, a camera move, sound where the
model offers it) to completion with the provider's exact bytes, and the exact body Kling
received; a retired model name is a 400 naming it, and nothing is sent."""
from __future__ import annotations

import base64

import pytest

from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.kling import FakeKling
from tests.test_video_providers_e2e import ASK, POLL, PROMPT, assert_openai_error, call_json, documented_flow

pytestmark = pytest.mark.timeout(60)

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
PNG_B64 = base64.b64encode(PNG).decode()
DATA_URI = f"data:image/png;base64,{PNG_B64}"
CURRENT = ["kling-v3", "kling-v2-6", "kling-v2-5-turbo"]
RETIRED = ["kling-v1-6", "kling-v2-1-master"]
ZOOM_IN = {"type": "simple", "config": {"horizontal": 0, "vertical": 0, "pan": 0, "tilt": 0, "roll": 0, "zoom": 5}}


@pytest.fixture(scope="module")
def fake():
    kling = FakeKling().start()
    yield kling
    kling.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fake):
    folder = tmp_path_factory.mktemp("kling-current")
    db_path = str(folder / "st-ai.db")
    open_db(db_path).close()
    gateway = start_gateway(db_path, "--video-poll-interval", str(POLL), "--assets-dir", str(folder / "assets"))
    gateway.channel("kling-now", "kling", CURRENT + RETIRED, base_url=fake.base_url, key=fake.key)
    yield gateway
    stop_gateway(gateway)


@pytest.fixture(scope="module")
def key(gw) -> str:
    return gw.token("kling-current")


@pytest.fixture(autouse=True)
def clean(fake):
    fake.received.clear()
    yield


def completes(gw, key, fake, body: dict, tmp_path) -> tuple[dict, dict]:
    """The documented flow to completion: the video is the fake's own bytes; returns
    the task as the client saw it and the one body Kling received."""
    out = tmp_path / "video.mp4"
    _, _, video = documented_flow(gw, key, body, out)
    assert video["status"] == "completed", video
    assert out.read_bytes() == fake.video
    (submission,) = [r for r in fake.received if r.method == "POST"]
    return video, submission


# -- text to video -------------------------------------------------------------------------

@pytest.mark.parametrize("model,mode,sound,size", [
    ("kling-v3", "std", {"sound": "off"}, "1280x720"),
    ("kling-v2-6", "std", {"sound": "off"}, "1280x720"),
    ("kling-v2-5-turbo", "pro", {}, "1920x1080")])
def test_documented_example_on_each_current_model(gw, key, fake, tmp_path, model, mode, sound, size):
    video, sent = completes(gw, key, fake, {"model": model, **ASK, "fps": 30}, tmp_path)
    assert sent.path == "/v1/videos/text2video"
    assert sent.body == {"model_name": model, "prompt": PROMPT, "duration": "5", "mode": mode,
                         "aspect_ratio": "16:9", **sound}
    assert video["seconds"] == "5" and video["size"] == size
    assert video["metadata"]["mode"] == mode and video["metadata"]["aspect_ratio"] == "16:9"


def test_kling_v3_with_sound_for_twelve_seconds(gw, key, fake, tmp_path):
    body = {"model": "kling-v3", **ASK, "duration": 12.0, "metadata": {"audio": True, "resolution": "1080p"}}
    video, sent = completes(gw, key, fake, body, tmp_path)
    assert sent.body == {"model_name": "kling-v3", "prompt": PROMPT, "duration": "12", "mode": "pro",
                         "aspect_ratio": "16:9", "sound": "on"}
    assert video["seconds"] == "12" and video["size"] == "1920x1080"
    assert video["metadata"]["audio"] is True and video["metadata"]["resolution"] == "1080p"


def test_kling_v2_6_with_sound_is_asked_in_pro_mode(gw, key, fake, tmp_path):
    video, sent = completes(gw, key, fake, {"model": "kling-v2-6", **ASK, "metadata": {"audio": True}}, tmp_path)
    assert sent.body["sound"] == "on" and sent.body["mode"] == "pro"
    assert video["metadata"]["mode"] == "pro" and video["metadata"]["audio"] is True


def test_camera_move_with_negative_prompt_on_kling_v2_6(gw, key, fake, tmp_path):
    body = {"model": "kling-v2-6", **ASK, "height": 1280, "width": 720,
            "metadata": {"camera_control": ZOOM_IN, "negative_prompt": "blur, text"}}
    _, sent = completes(gw, key, fake, body, tmp_path)
    assert sent.body["camera_control"] == ZOOM_IN and sent.body["negative_prompt"] == "blur, text"
    assert sent.body["aspect_ratio"] == "9:16"


# -- image to video -------------------------------------------------------------------------

@pytest.mark.parametrize("model,extra,expect", [
    ("kling-v3", {"audio": True}, {"mode": "std", "sound": "on"}),
    ("kling-v2-6", {}, {"mode": "pro", "sound": "off"}),
    ("kling-v2-5-turbo", {}, {"mode": "pro"})])
def test_first_and_last_frame_on_each_current_model(gw, key, fake, tmp_path, model, extra, expect):
    body = {"model": model, **ASK, "image": DATA_URI, "metadata": {"last_frame": PNG_B64, **extra}}
    video, sent = completes(gw, key, fake, body, tmp_path)
    assert sent.path == "/v1/videos/image2video"
    assert sent.body == {"model_name": model, "prompt": PROMPT, "image": PNG_B64, "image_tail": PNG_B64,
                         "duration": "5", **expect}
    assert "size" not in video  # the video takes the image's shape, which st-ai does not claim
    polls = [r for r in fake.received if r.method == "GET" and not r.path.startswith("/cdn/")]
    assert polls and all(r.path.startswith("/v1/videos/image2video/") for r in polls)


def test_image_with_a_camera_move_on_kling_v3(gw, key, fake, tmp_path):
    body = {"model": "kling-v3", **ASK, "image": PNG_B64, "metadata": {"camera_control": ZOOM_IN}}
    _, sent = completes(gw, key, fake, body, tmp_path)
    assert sent.body["image"] == PNG_B64 and sent.body["camera_control"] == ZOOM_IN


# -- refused before anything is sent --------------------------------------------------------

def refused_before_sending(gw, key, fake, body: dict, param: str) -> dict:
    status, answer = call_json(gw, key, "POST", "/v1/videos", body)
    error = assert_openai_error(status, answer, 400)
    assert error["param"] == param, error
    assert [r for r in fake.received if r.method == "POST"] == []
    return error


@pytest.mark.parametrize("model", RETIRED)
def test_retired_model_is_400_naming_it(gw, key, fake, model):
    error = refused_before_sending(gw, key, fake, {"model": model, **ASK}, "model")
    assert model in error["message"] and error["code"] == "model_retired"


def test_what_the_model_cannot_do_is_400_naming_the_field(gw, key, fake):
    refused_before_sending(gw, key, fake, {"model": "kling-v2-5-turbo", **ASK, "metadata": {"audio": True}},
                           "metadata.audio")
    refused_before_sending(gw, key, fake, {"model": "kling-v2-6", **ASK, "image": PNG_B64,
                                           "metadata": {"last_frame": PNG_B64, "audio": True}}, "metadata.audio")
    refused_before_sending(gw, key, fake, {"model": "kling-v2-6", **ASK, "metadata": {"cfg_scale": 0.5}},
                           "metadata.cfg_scale")
    refused_before_sending(gw, key, fake, {"model": "kling-v3", **ASK, "image": PNG_B64,
                                           "metadata": {"last_frame": PNG_B64, "camera_control": ZOOM_IN}},
                           "metadata.camera_control")
    refused_before_sending(gw, key, fake, {"model": "kling-v3", **ASK, "duration": -5}, "duration")
    not_an_image = base64.b64encode(b"just some text, not a picture").decode()
    refused_before_sending(gw, key, fake, {"model": "kling-v3", **ASK, "image": not_an_image}, "image")


def test_the_fake_refuses_what_kling_refuses(fake):
    """The fake's own table of Kling's rules, so a body st-ai got wrong cannot pass."""
    t2v = {"model_name": "kling-v2-6", "prompt": PROMPT, "duration": "5", "mode": "std", "aspect_ratio": "16:9"}
    assert fake._validate("text2video", t2v) is None
    assert "sound" in fake._validate("text2video", t2v | {"sound": "on"})
    assert "cfg_scale" in fake._validate("text2video", t2v | {"cfg_scale": 0.5})
    assert "duration" in fake._validate("text2video", t2v | {"duration": "7"})
    assert "duration" not in (fake._validate("text2video", t2v | {"model_name": "kling-v3", "duration": "7"}) or "")
    assert "offline" in fake._validate("text2video", t2v | {"model_name": "kling-v1-6"})
    assert "mode" in fake._validate("text2video", t2v | {"model_name": "kling-v2-5-turbo"})
    i2v = {"model_name": "kling-v2-6", "image": PNG_B64, "duration": "5", "mode": "pro", "image_tail": PNG_B64}
    assert fake._validate("image2video", i2v) is None
    assert "image_tail" in fake._validate("image2video", i2v | {"mode": "std"})
    assert "together" in fake._validate("image2video", i2v | {"sound": "on"})
    assert "together" in fake._validate("image2video", i2v | {"camera_control": ZOOM_IN})
    assert "aspect_ratio" in fake._validate("image2video", i2v | {"aspect_ratio": "16:9"})
    assert "image" in fake._validate("image2video", i2v | {"image": base64.b64encode(b"text").decode()})
    assert "camera_control" in fake._validate("text2video", t2v | {"camera_control": {"type": "simple"}})
