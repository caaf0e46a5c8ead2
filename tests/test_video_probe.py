"""What counts as a finished video: a real MP4 passes; bytes that only look like one
(an `ftyp` header, a cut-short download, a renamed image, sound without picture) do not."""
from __future__ import annotations

import os

import pytest

from server.providers.simulator.media import write_mp4
from server.video_probe import InvalidVideo, probe_video
from tests.fakes.sample_media import sample_mp4, sample_png

pytestmark = pytest.mark.timeout(30)


def probe(tmp_path, data: bytes) -> str | None:
    """None if the bytes pass as a video, else what was said to be wrong."""
    path = tmp_path / "candidate.mp4"
    path.write_bytes(data)
    try:
        probe_video(str(path))
    except InvalidVideo as problem:
        return str(problem)
    return None


def audio_only_mp4(path: str) -> bytes:
    import av

    with av.open(path, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
            frame.planes[0].update(bytes(frame.planes[0].buffer_size))  # silence
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with open(path, "rb") as f:
        return f.read()


def test_real_videos_pass(tmp_path):
    assert probe(tmp_path, sample_mp4("probe")) is None
    one_frame = str(tmp_path / "one.mp4")
    write_mp4(one_frame, "a single frame", 0.05, 32, 32, 12)
    with open(one_frame, "rb") as f:
        assert probe(tmp_path, f.read()) is None


@pytest.mark.parametrize("data,said", [
    (b"\x00\x00\x00\x08ftyp", "not a video file"),
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2000, "not a video file"),
    (b"\x00\x00\x00\x18ftypisom" + os.urandom(4096), "not a video file"),
    (sample_png(), "duration"),
    (b"<html><body>Access denied</body></html>", "not a video file"),
])
def test_look_alikes_fail_saying_why(tmp_path, data, said):
    assert said in (probe(tmp_path, data) or "passed")


@pytest.mark.parametrize("keep", [0.999, 0.9, 0.6, 0.3, 0.1])
def test_a_cut_short_download_fails(tmp_path, keep):
    whole = sample_mp4("probe")
    assert probe(tmp_path, whole[:int(len(whole) * keep)]) is not None


def test_a_cut_short_download_missing_its_last_bytes_is_truncated(tmp_path):
    whole = sample_mp4("probe")
    assert "truncated" in probe(tmp_path, whole[:-10])


def test_sound_without_picture_has_no_video_stream(tmp_path):
    data = audio_only_mp4(str(tmp_path / "sound.mp4"))
    assert probe(tmp_path, data) == "it has no video stream"
