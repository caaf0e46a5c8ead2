"""The `kling` video provider: pure request/answer mapping on JSON fixtures, then
KlingVideo over real HTTP against FakeKling (tests/fakes/kling.py) on 127.0.0.1."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from server.errors import GatewayError
from server.providers.interface import TaskState, Upstream, VideoRequest
from server.providers.kling import PROVIDER, auth, convert, errors
from server.providers.kling.client import KlingVideo
from server.store.channels import Channel
from tests.fakes.kling import SAFETY_FAILURE, FakeKling

pytestmark = pytest.mark.timeout(60)

FIXTURES = Path(__file__).parent / "fixtures" / "kling"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def request(**fields) -> VideoRequest:
    return VideoRequest(**({"model": "kling-v1", "prompt": "a fox in snow"} | fields))


def fails(call, status: int, param: str | None = None, code: str | None = None) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        call()
    assert info.value.http_status == status
    if param is not None:
        assert info.value.param == param
    if code is not None:
        assert info.value.code == code
    return info.value


# -- request mapping -------------------------------------------------------------------

def test_spec():
    assert PROVIDER.type == "kling" and PROVIDER.video is KlingVideo
    assert PROVIDER.default_base_url == "https://api-singapore.klingai.com"
    assert PROVIDER.key_format == "ACCESS_KEY:SECRET_KEY"


def test_documented_example_request():
    example = {k: v for k, v in fixture("example_request.json").items() if not k.startswith("_")}
    prepared = convert.to_kling(VideoRequest(**example))
    assert prepared.body == {"model_name": "kling-v1", "prompt": example["prompt"], "duration": "5",
                             "mode": "std", "aspect_ratio": "16:9"}
    assert prepared.asked == {"duration": 5.0, "width": 1280, "height": 720, "aspect_ratio": "16:9",
                              "fps": 30, "mode": "std"}
    assert convert.endpoint_for(prepared.body) == "text2video"


@pytest.mark.parametrize("seconds,expected", [(None, 5), (1, 5), (5.0, 5), (7.4, 5), (7.5, 10), (10, 10), (20, 10)])
def test_duration_goes_to_nearest_supported(seconds, expected):
    prepared = convert.to_kling(request(duration=seconds))
    assert prepared.body["duration"] == str(expected) and prepared.asked["duration"] == float(expected)


@pytest.mark.parametrize("size,ratio", [((1280, 720), "16:9"), ((1920, 1080), "16:9"), ((720, 1280), "9:16"),
                                        ((1024, 1024), "1:1"), ((1000, 900), "1:1"), ((700, 480), "16:9"), ((600, 480), "1:1"),
                                        ((None, None), "16:9")])
def test_size_goes_to_nearest_aspect_ratio(size, ratio):
    prepared = convert.to_kling(request(width=size[0], height=size[1]))
    assert prepared.body["aspect_ratio"] == ratio
    nominal = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)}
    assert (prepared.asked["width"], prepared.asked["height"]) == nominal[ratio]


def test_data_uri_prefix_is_stripped_for_image2video():
    bare = base64.b64encode(PNG).decode()
    prepared = convert.to_kling(request(image=f"data:image/png;base64,{bare}", width=1280, height=720))
    assert prepared.body["image"] == bare
    assert "aspect_ratio" not in prepared.body  # image2video follows the image's shape
    assert prepared.asked["aspect_ratio"] is None
    assert convert.endpoint_for(prepared.body) == "image2video"


def test_image_forms():
    assert convert.to_kling(request(image="https://example.com/a.png")).body["image"] == "https://example.com/a.png"
    bare = base64.b64encode(PNG).decode()
    assert convert.to_kling(request(image=bare)).body["image"] == bare
    assert convert.to_kling(request(image_bytes=PNG, image_type="image/png")).body["image"] == bare
    fails(lambda: convert.to_kling(request(image_bytes=PNG, image_type="image/gif")), 400, "input_reference")
    fails(lambda: convert.to_kling(request(image="data:image/webp;base64,AAAA")), 400, "image")
    fails(lambda: convert.to_kling(request(image="data:image/png,notbase64")), 400, "image")
    fails(lambda: convert.to_kling(request(image="not base64 at all!")), 400, "image")
    # base64 that decodes to something other than a JPEG or PNG
    fails(lambda: convert.to_kling(request(image=base64.b64encode(b"just some text").decode())), 400, "image")
    fails(lambda: convert.to_kling(request(image_bytes=b"GIF89a....", image_type="image/png")), 400,
          "input_reference")
    fails(lambda: convert.to_kling(request(image=bare, image_bytes=PNG)), 400, "image")


def test_metadata_passes_through_or_is_refused_by_name():
    prepared = convert.to_kling(request(metadata={"negative_prompt": "blur", "cfg_scale": 0.7, "mode": "pro",
                                                  "camera_control": {"type": "forward_up"},
                                                  "external_task_id": "mine-1"}))
    assert prepared.body["negative_prompt"] == "blur" and prepared.body["cfg_scale"] == 0.7
    assert prepared.body["mode"] == "pro" and prepared.asked["mode"] == "pro"
    assert prepared.body["camera_control"] == {"type": "forward_up"}
    fails(lambda: convert.to_kling(request(metadata={"style": "anime"})), 400, "metadata.style")
    # an end frame alone makes an image2video task, where the prompt is optional
    tail_only = convert.to_kling(request(metadata={"last_frame": "https://x/y.png"}, prompt=""))
    assert convert.endpoint_for(tail_only.body) == "image2video" and "prompt" not in tail_only.body
    fails(lambda: convert.to_kling(request(metadata={"static_mask": "AAAA"})), 400, "metadata.static_mask")
    fails(lambda: convert.to_kling(request(metadata={"mode": "turbo"})), 400, "metadata.mode")
    fails(lambda: convert.to_kling(request(metadata={"cfg_scale": 2})), 400, "metadata.cfg_scale")
    bare = base64.b64encode(PNG).decode()
    with_tail = convert.to_kling(request(image="https://x/a.png", metadata={"image_tail": f"data:image/png;base64,{bare}"}))
    assert with_tail.body["image_tail"] == bare  # Kling's own name for the last frame still works


def test_what_kling_cannot_do_is_refused_before_sending():
    fails(lambda: convert.to_kling(request(seed=7)), 400, "seed")
    fails(lambda: convert.to_kling(request(model="kling-v1-5", image="https://x/a.png")), 400, "model",
          "model_retired")
    fails(lambda: convert.to_kling(request(prompt="")), 400, "prompt")
    fails(lambda: convert.to_kling(request(prompt="x" * 2501)), 400, "prompt")
    fails(lambda: convert.to_kling(request(width=-1280, height=720)), 400, "width")
    fails(lambda: convert.to_kling(request(duration=-1)), 400, "duration")
    # a model st-ai does not know is left for Kling to judge
    assert convert.to_kling(request(model="kling-v9-preview")).body["model_name"] == "kling-v9-preview"


# -- answer mapping --------------------------------------------------------------------

def test_submitted_task_is_queued_and_ms_become_seconds():
    state = convert.to_state(fixture("create_response.json")["data"], now=1774805080.0)
    assert state == TaskState("queued", 0, updated_at=1774805076)


def test_succeeded_task_is_completed_with_its_url():
    state = convert.to_state(fixture("query_succeed.json")["data"], now=1739744700.0)
    assert state.status == "completed" and state.progress == 100
    assert state.video_url.startswith("https://cdn.klingai.com/") and state.video_url.endswith(".mp4")
    assert state.updated_at == 1739744621


def test_processing_progress_is_estimated_from_elapsed_time():
    task = fixture("query_processing.json")["data"]
    created = task["created_at"] / 1000
    seen = [convert.to_state(task, now=created + s).progress for s in (0, 10, 60, 120, 300, 10_000)]
    assert seen == sorted(seen) and seen[0] == 0 and 0 < seen[2] < seen[3] < 95 and seen[-1] == 95
    assert convert.to_state(task, now=created - 30).progress == 0  # Kling's clock ahead of ours
    assert convert.to_state(task, now=created).status == "in_progress"
    assert convert.to_state(task, now=created).updated_at == 1774805090


def test_failed_tasks_say_why():
    blocked = convert.to_state(fixture("query_failed_safety.json")["data"], now=0)
    assert (blocked.status, blocked.error_code) == ("failed", "moderation_blocked")
    assert blocked.error_message == "Failure to pass the risk control system"
    other = convert.to_state({"task_status": "failed", "task_status_msg": "Internal render error",
                              "updated_at": 1000}, now=0)
    assert (other.status, other.error_code, other.updated_at) == ("failed", "generation_failed", 1)
    empty = convert.to_state({"task_status": "succeed", "task_result": {"videos": []}}, now=0)
    assert empty.status == "failed"  # never "completed" without a video
    with pytest.raises(GatewayError):
        convert.to_state({"task_status": "mystery"}, now=0)


CHANNEL = Channel(1, "kling-test", "kling", "http://127.0.0.1:9/", "AKpublic:SKsecret-value", ("kling-v1",))


@pytest.mark.parametrize("status,body,expect_status,expect_code,retryable", [
    (401, {"code": 1004, "message": "Authorization has expired"}, 502, "upstream_error", False),
    (400, {"code": 1301, "message": "Trigger the content security policy"}, 400, "content_policy_violation", False),
    (400, {"code": 1201, "message": "duration value is invalid"}, 400, "invalid_request", False),
    (429, fixture("error_rate_limit.json"), 429, "upstream_rate_limited", True),
    (429, {"code": 1302, "message": "rate"}, 429, "upstream_rate_limited", True),
    (429, {"code": 1102, "message": "Account balance not enough"}, 502, "upstream_error", False),
    (403, {"code": 1103, "message": "no permission"}, 502, "upstream_error", False),
    (500, {"code": 5000, "message": "internal"}, 502, "upstream_error", True),
    (504, {"code": 5002, "message": "timeout"}, 504, "upstream_timeout", True),
    (502, b"<html>bad gateway</html>", 502, "upstream_error", True),
])
def test_error_envelopes(status, body, expect_status, expect_code, retryable):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    error = errors.from_response(status, raw, CHANNEL)
    assert (error.http_status, error.code, error.retryable) == (expect_status, expect_code, retryable)
    if isinstance(body, dict) and body["code"] in (1201, 1301):
        assert body["message"] in error.message


def test_error_messages_never_carry_the_key_or_address():
    leaky = {"code": 1201, "message": f"bad key AKpublic / SKsecret-value at {CHANNEL.base_url}"}
    message = errors.from_response(400, json.dumps(leaky).encode(), CHANNEL).message
    assert "AKpublic" not in message and "SKsecret-value" not in message and "127.0.0.1" not in message


# -- signing -----------------------------------------------------------------------------

def test_jwt_claims_and_caching():
    now = [1_700_000_000.0]
    cache = auth.TokenCache(lambda: now[0])
    token = cache.token("AK1:SK:with:colons")
    head, claims, signature = (base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split("."))
    assert json.loads(head) == {"alg": "HS256", "typ": "JWT"}
    assert json.loads(claims) == {"iss": "AK1", "exp": 1_700_001_800, "nbf": 1_699_999_995}
    signing_input = token.rsplit(".", 1)[0].encode()
    assert signature == hmac.new(b"SK:with:colons", signing_input, hashlib.sha256).digest()
    now[0] += 1000
    assert cache.token("AK1:SK:with:colons") == token  # reused while well within its life
    now[0] += 600
    assert cache.token("AK1:SK:with:colons") != token  # re-signed near expiry
    error = fails(lambda: cache.token("no-colon-secret"), 502)
    assert "no-colon-secret" not in error.message


# -- over HTTP against FakeKling ----------------------------------------------------------

@pytest.fixture
def fake():
    server = FakeKling().start()
    yield server
    server.stop()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as http:
        yield http


def channel_for(fake: FakeKling, key: str | None = None) -> Channel:
    return Channel(7, "kling-fake", "kling", fake.base_url, key or fake.key, ("kling-v1",))


async def poll_until_done(kling: KlingVideo, channel: Channel, task_id: str, limit: int = 20) -> list[TaskState]:
    states = []
    for _ in range(limit):
        state = await kling.poll(channel, task_id)
        states.append(state)
        if state.status in ("completed", "failed"):
            break
    return states


async def test_text_to_video_end_to_end(fake, session):
    kling, channel = KlingVideo(Upstream(session)), channel_for(fake)
    example = {k: v for k, v in fixture("example_request.json").items() if not k.startswith("_")}
    task_id = await kling.submit(channel, kling.prepare(channel, VideoRequest(**example)))
    assert task_id.startswith("text2video:")
    states = await poll_until_done(kling, channel, task_id)
    assert [s.status for s in states] == ["queued", "in_progress", "completed"]
    assert all(isinstance(s.updated_at, int) and abs(s.updated_at - time.time()) < 60 for s in states)
    video = b"".join([chunk async for chunk in kling.download(channel, task_id, states[-1], "video")])
    assert video == fake.video
    sent = fake.received[0]
    assert (sent.method, sent.path) == ("POST", "/v1/videos/text2video")
    assert sent.body == {"model_name": "kling-v1", "prompt": example["prompt"], "duration": "5",
                         "mode": "std", "aspect_ratio": "16:9"}
    api_calls = [r for r in fake.received if r.path.startswith("/v1/")]
    assert len({r.headers["Authorization"] for r in api_calls}) == 1  # one token, cached
    cdn = [r for r in fake.received if r.path.startswith("/cdn/")]
    assert cdn and "Authorization" not in cdn[0].headers  # no credentials to the CDN
    with pytest.raises(GatewayError) as info:
        [chunk async for chunk in kling.download(channel, task_id, states[-1], "thumbnail")]
    assert (info.value.http_status, info.value.code) == (404, "thumbnail_unavailable")


async def test_image_to_video_polls_its_own_path(fake, session):
    kling, channel = KlingVideo(Upstream(session)), channel_for(fake)
    bare = base64.b64encode(PNG).decode()
    prepared = kling.prepare(channel, request(image=f"data:image/png;base64,{bare}", duration=10))
    task_id = await kling.submit(channel, prepared)
    assert task_id.startswith("image2video:")
    assert fake.received[0].body["image"] == bare and fake.received[0].body["duration"] == "10"
    states = await poll_until_done(kling, channel, task_id)
    assert states[-1].status == "completed"
    assert {r.path.rsplit("/", 1)[0] for r in fake.received[1:]} == {"/v1/videos/image2video"}


async def test_wrong_secret_is_an_upstream_credentials_error(fake, session):
    kling = KlingVideo(Upstream(session))
    channel = channel_for(fake, key=f"{fake.access_key}:not-the-secret")
    with pytest.raises(GatewayError) as info:
        await kling.submit(channel, kling.prepare(channel, request()))
    assert info.value.http_status == 502 and "credentials" in info.value.message
    assert not info.value.retryable  # a wrong key does not mend itself: fail the task now
    assert "not-the-secret" not in info.value.message and fake.access_key not in info.value.message
    assert not fake.tasks


async def test_expired_token_is_refused_and_signed_anew(fake, session):
    clock = [time.time() - 3600]  # our clock an hour behind: the token is already expired
    kling, channel = KlingVideo(Upstream(session), clock=lambda: clock[0]), channel_for(fake)
    with pytest.raises(GatewayError) as info:
        await kling.submit(channel, kling.prepare(channel, request()))
    assert info.value.http_status == 502
    clock[0] = time.time()
    assert (await kling.submit(channel, kling.prepare(channel, request()))).startswith("text2video:")


async def test_rate_limit_while_polling_is_retryable(fake, session):
    kling, channel = KlingVideo(Upstream(session)), channel_for(fake)
    task_id = await kling.submit(channel, kling.prepare(channel, request()))
    fake.rate_limit_next = 1
    with pytest.raises(GatewayError) as info:
        await kling.poll(channel, task_id)
    assert (info.value.http_status, info.value.retryable) == (429, True)
    assert (await poll_until_done(kling, channel, task_id))[-1].status == "completed"


async def test_failure_midway(fake, session):
    fake.fail_with = "Video generation failed due to an internal error"
    kling, channel = KlingVideo(Upstream(session)), channel_for(fake)
    task_id = await kling.submit(channel, kling.prepare(channel, request()))
    states = await poll_until_done(kling, channel, task_id)
    assert [s.status for s in states] == ["queued", "in_progress", "failed"]
    assert (states[-1].error_code, states[-1].error_message) == ("generation_failed", fake.fail_with)


async def test_moderation_at_submit_and_during_generation(fake, session):
    kling, channel = KlingVideo(Upstream(session)), channel_for(fake)
    fake.block_at_submit = True
    with pytest.raises(GatewayError) as info:
        await kling.submit(channel, kling.prepare(channel, request()))
    assert (info.value.http_status, info.value.code, info.value.retryable) == (400, "content_policy_violation", False)
    fake.block_at_submit, fake.fail_with = False, SAFETY_FAILURE
    task_id = await kling.submit(channel, kling.prepare(channel, request()))
    final = (await poll_until_done(kling, channel, task_id))[-1]
    assert (final.status, final.error_code) == ("failed", "moderation_blocked")


async def test_never_finishing_task_stays_in_progress(fake, session):
    fake.never_finish = True
    kling, channel = KlingVideo(Upstream(session)), channel_for(fake)
    task_id = await kling.submit(channel, kling.prepare(channel, request()))
    states = await poll_until_done(kling, channel, task_id, limit=6)
    assert [s.status for s in states][-4:] == ["in_progress"] * 4


async def test_time_based_stages(fake, session):
    fake.seconds_per_stage = 0.2
    kling, channel = KlingVideo(Upstream(session)), channel_for(fake)
    task_id = await kling.submit(channel, kling.prepare(channel, request()))
    assert (await kling.poll(channel, task_id)).status == "queued"
    await asyncio.sleep(0.5)
    assert (await kling.poll(channel, task_id)).status == "completed"


async def test_kling_validation_errors_are_relayed(fake, session):
    kling, channel = KlingVideo(Upstream(session)), channel_for(fake)
    # a model st-ai does not know is passed through; Kling's refusal comes back as a 400
    with pytest.raises(GatewayError) as info:
        await kling.submit(channel, kling.prepare(channel, request(model="kling-v9")))
    assert info.value.http_status == 400 and "model_name" in info.value.message


async def test_unknown_task_and_unreachable_upstream(fake, session):
    kling, channel = KlingVideo(Upstream(session)), channel_for(fake)
    with pytest.raises(GatewayError) as info:
        await kling.poll(channel, "text2video:404404")
    assert (info.value.http_status, info.value.retryable) == (502, False)
    with pytest.raises(GatewayError) as info:
        await kling.poll(channel, "garbage")
    assert info.value.http_status == 404
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = Channel(8, "kling-closed", "kling", f"http://127.0.0.1:{port}", fake.key, ("kling-v1",))
    with pytest.raises(GatewayError) as info:
        await kling.submit(closed, kling.prepare(closed, request()))
    assert (info.value.http_status, info.value.retryable) == (502, True)
    assert str(port) not in info.value.message


def test_jwt_is_standard():
    """Cross-check with an independent JWT library (PyJWT, a test extra)."""
    import jwt

    token = auth.TokenCache().token("AKcheck:SKcheck0secret0key0000000000000001")
    claims = jwt.decode(token, "SKcheck0secret0key0000000000000001", algorithms=["HS256"], issuer="AKcheck")
    assert claims["exp"] - claims["nbf"] == auth.LIFETIME + auth.NOT_BEFORE_SLACK
