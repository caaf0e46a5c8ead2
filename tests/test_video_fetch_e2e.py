"""A provider's finished video is fetched only from where st-ai may go, and stored only
if it is a real video. st-ai's core runs in the test's loop (database, poller, providers)
with a stub resolver; the fake Kling and Runway are real HTTP servers on 127.0.0.1.
A URL the rules refuse, another scheme, a redirect to a refused address, or a file that
is not a video: the task fails with a clear error, nothing is fetched where it must not
be, nothing is stored and no usage is booked. Refused addresses are never connected to."""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.gateway import Config, open_core
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from server.video_tasks import VideoConfig
from tests.fakes.kling import FakeKling
from tests.fakes.resolver import StubResolver
from tests.fakes.runway import FakeRunway
from tests.fakes.sample_media import sample_mp4, sample_png

pytestmark = pytest.mark.timeout(60)

PROMPT = "a paper boat on a rain-swept street"
NAMES = {"cdn.local.test": ["127.0.0.1"],            # on the channels' own network: allowed
         "cdn.private.test": ["10.20.30.40"],        # a private address
         "cdn.metadata.test": ["169.254.169.254"],   # the cloud metadata service
         "cdn.mixed.test": ["93.184.216.34", "192.168.1.20"]}


@dataclass
class Outcome:
    video: dict
    usage_rows: int
    stored: list[str]


@pytest.fixture
def kling():
    fake = FakeKling().start()
    yield fake
    fake.stop()


@pytest.fixture
def runway():
    fake = FakeRunway().start()
    yield fake
    fake.stop()


async def make_video(tmp_path: Path, fake, type_: str, model: str, resolver: StubResolver | None = None,
                     max_video_bytes: int = VideoConfig.max_video_bytes) -> Outcome:
    """One video through st-ai's core, from submission until it is completed or failed."""
    db_path = str(tmp_path / "st-ai.db")
    db = open_db(db_path)
    channel_store.add(db, f"{type_}-fake", type_, fake.base_url,
                      fake.key if type_ == "kling" else fake.api_key, [model])
    _, key = token_store.create(db, "fetch-e2e")
    db.close()
    config = Config(db_path=db_path, assets_dir=str(tmp_path / "assets"),
                    video=VideoConfig(poll_interval=0.1, max_video_bytes=max_video_bytes))
    async with open_core(config, "http://127.0.0.1:1", resolver=resolver or StubResolver(NAMES)) as core:
        token = await core.catalog.authenticate(f"Bearer {key}")
        video = await core.videos.create(token, {"model": model, "prompt": PROMPT, "duration": 5})
        deadline = time.monotonic() + 20
        while video["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, f"the task never ended: {video}"
            await asyncio.sleep(0.05)
            video = await core.videos.get(token, video["id"])
    db = open_db(db_path)
    usage_rows = db.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'video' AND status = 200").fetchone()[0]
    db.close()
    stored = sorted(os.listdir(tmp_path / "assets" / "videos"))
    return Outcome(video, usage_rows, stored)


def assert_failed(outcome: Outcome, code: str, *words: str) -> None:
    video = outcome.video
    assert video["status"] == "failed", video
    assert video["error"]["code"] == code, video["error"]
    for word in words:
        assert word in video["error"]["message"], video["error"]
    assert outcome.usage_rows == 0
    assert outcome.stored == []


# -- the control: what the rules allow completes and is booked -------------------------------

async def test_a_video_on_the_channels_own_network_completes_and_is_booked(tmp_path, kling):
    kling.video_url_for = lambda url: url.replace("127.0.0.1", "cdn.local.test")
    outcome = await make_video(tmp_path, kling, "kling", "kling-v1")
    assert outcome.video["status"] == "completed", outcome.video
    videos = [name for name in outcome.stored if name.endswith(".mp4")]
    assert outcome.usage_rows == 1 and len(videos) == 1
    assert (tmp_path / "assets" / "videos" / videos[0]).read_bytes() == kling.video
    assert len(kling.cdn_requests()) == 1


# -- (a) a URL whose name resolves to a refused address ---------------------------------------

@pytest.mark.parametrize("host,kind", [("cdn.private.test", "private"), ("cdn.metadata.test", "cloud metadata"),
                                       ("cdn.mixed.test", "private"), ("169.254.169.254", "cloud metadata"),
                                       ("[::ffff:10.0.0.1]", "private"), ("metadata.google.internal", "metadata")])
async def test_kling_video_url_pointing_at_a_refused_address_fails_the_task(tmp_path, kling, host, kind):
    kling.video_url_for = lambda url: url.replace("127.0.0.1", host)
    resolver = StubResolver(NAMES)
    outcome = await make_video(tmp_path, kling, "kling", "kling-v1", resolver)
    assert_failed(outcome, "unsafe_url", kind)
    assert kling.cdn_requests() == []
    assert "metadata.google.internal" not in resolver.asked


async def test_runway_output_url_resolving_to_a_private_address_fails_the_task(tmp_path, runway):
    runway.output_url_for = lambda url: url.replace("127.0.0.1", "cdn.private.test")
    outcome = await make_video(tmp_path, runway, "runway", "gen4.5")
    assert_failed(outcome, "unsafe_url", "private")
    assert runway.cdn_requests() == []


# -- (b) another scheme ---------------------------------------------------------------------------

@pytest.mark.parametrize("url,scheme", [("ftp://127.0.0.1/videos/1.mp4", "'ftp'"), ("file:///etc/passwd", "'file'"),
                                        ("gopher://127.0.0.1:70/_GET", "'gopher'")])
async def test_a_video_url_with_another_scheme_fails_the_task(tmp_path, kling, url, scheme):
    kling.video_url_for = lambda _: url
    outcome = await make_video(tmp_path, kling, "kling", "kling-v1")
    assert_failed(outcome, "unsafe_url", scheme, "only http and https")
    assert kling.cdn_requests() == []


async def test_a_runway_file_url_fails_the_task(tmp_path, runway):
    runway.output_url_for = lambda _: "file:///etc/passwd"
    assert_failed(await make_video(tmp_path, runway, "runway", "gen4.5"), "unsafe_url", "'file'")


# -- (c) a redirect to a refused address -------------------------------------------------------------

@pytest.mark.parametrize("location,kind", [("http://cdn.metadata.test/latest/meta-data/", "cloud metadata"),
                                           ("http://10.0.0.9/video.mp4", "private"),
                                           ("ftp://cdn.local.test/video.mp4", "'ftp'")])
async def test_runway_cdn_redirecting_to_a_refused_place_fails_the_task(tmp_path, runway, location, kind):
    runway.cdn_redirect = location
    outcome = await make_video(tmp_path, runway, "runway", "gen4.5")
    assert_failed(outcome, "unsafe_url", kind)
    assert len(runway.cdn_requests()) == 1   # the first hop, on the channel's own host; nothing after


async def test_kling_cdn_redirecting_to_a_refused_address_fails_the_task(tmp_path, kling):
    kling.cdn_redirect = "http://cdn.private.test/video.mp4"
    outcome = await make_video(tmp_path, kling, "kling", "kling-v1")
    assert_failed(outcome, "unsafe_url", "private")
    assert len(kling.cdn_requests()) == 1


# -- (d) a file that is not a video --------------------------------------------------------------------

NOT_VIDEOS = {
    "ftyp header only": (b"\x00\x00\x00\x08ftyp", "not a video file"),
    "ftyp and padding": (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4000, "not a video file"),
    "truncated mp4": (sample_mp4("fake kling video")[:-64], "truncated"),
    "half an mp4": (sample_mp4("fake kling video")[:5000], ""),
    "png renamed": (sample_png(), "MP4"),
    "empty": (b"", "empty"),
}


@pytest.mark.parametrize("name", list(NOT_VIDEOS))
async def test_a_file_that_is_not_a_video_fails_the_task_at_once_and_books_nothing(tmp_path, kling, name):
    kling.video, said = NOT_VIDEOS[name]
    outcome = await make_video(tmp_path, kling, "kling", "kling-v1")
    assert_failed(outcome, "invalid_video", "The provider's video could not be used", said)
    assert len(kling.cdn_requests()) == 1   # fetched once: the same file would come back on every try
    assert os.listdir(tmp_path / "assets" / "tmp") == []


async def test_runway_serving_a_truncated_video_fails_the_task(tmp_path, runway):
    runway.video = runway.video[: len(runway.video) // 2]
    assert_failed(await make_video(tmp_path, runway, "runway", "gen4.5"), "invalid_video")


async def test_a_video_over_the_size_cap_fails_the_task(tmp_path, kling):
    cap = len(kling.video) - 1
    outcome = await make_video(tmp_path, kling, "kling", "kling-v1", max_video_bytes=cap)
    assert_failed(outcome, "file_too_large", f"{cap} bytes")
