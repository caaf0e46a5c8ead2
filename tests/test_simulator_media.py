"""server/providers/simulator/media: real PNGs and MP4s drawn from a prompt,
thumbnails and probing of any MP4. Decoded back with PyAV (and zlib for PNG)."""
from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from fractions import Fraction

import av
import pytest

from server.providers.simulator.media import (
    MediaError,
    draw_png,
    even_size,
    is_mp4,
    pick_video_codec,
    probe_mp4,
    thumbnail_from_mp4,
    write_mp4,
)

PROMPT = "A red fox jumping over the lazy dog at sunset, oil painting"


# ---------------------------------------------------------------- helpers


def png_decode(data: bytes) -> tuple[int, int, bytes]:
    """A strict little PNG reader for what draw_png writes: (width, height, RGB rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr, kinds = 8, b"", None, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        kinds.append(kind)
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and pos == len(data)
    width, height, depth, colour, _, _, interlace = ihdr
    assert (depth, colour, interlace) == (8, 2, 0)
    raw = zlib.decompress(idat)
    row = 1 + 3 * width
    assert len(raw) == height * row
    assert all(raw[y * row] == 0 for y in range(height))  # filter "None" on every row
    pixels = b"".join(raw[y * row + 1:(y + 1) * row] for y in range(height))
    return width, height, pixels


def pixel(pixels: bytes, width: int, x: int, y: int) -> tuple[int, int, int]:
    o = 3 * (y * width + x)
    return tuple(pixels[o:o + 3])


def close(a, b, tol=24) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def decode_frames(path: str) -> list:
    with av.open(path) as c:
        return [f.reformat(format="rgb24") for f in c.decode(video=0)]


def rgb_bytes(frame) -> tuple[int, int, bytes]:
    """Tightly packed RGB24 bytes of a decoded frame (FFmpeg pads its rows)."""
    plane = frame.planes[0]
    raw = bytes(plane)
    w3 = 3 * frame.width
    return frame.width, frame.height, b"".join(
        raw[y * plane.line_size:y * plane.line_size + w3] for y in range(frame.height))


def decode_image(data: bytes):
    with av.open(io.BytesIO(data)) as c:
        return next(c.decode(video=0)).reformat(format="rgb24")


def foreign_mp4(path: str, seconds: int = 3, fps: int = 25, size=(352, 288)) -> None:
    """An MP4 unlike the simulator's: libx264 defaults (High profile, B-frames),
    an AAC audio track, and thirds that are red, green, blue."""
    w, h = size
    with av.open(path, "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "medium"}
        aus = out.add_stream("aac", rate=44100, layout="mono")
        n = seconds * fps
        for i in range(n):
            colour = (b"\xff\x00\x00", b"\x00\xff\x00", b"\x00\x00\xff")[3 * i // n]
            frame = av.VideoFrame(w, h, "rgb24")
            plane = frame.planes[0]
            row = colour * w + b"\x00" * (plane.line_size - 3 * w)
            plane.update(row * h)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for p in vs.encode(frame):
                out.mux(p)
        for i in range(seconds * 44100 // 1024):
            af = av.AudioFrame(format="fltp", layout="mono", samples=1024)
            af.planes[0].update(b"\x00" * 4096)
            af.sample_rate, af.pts, af.time_base = 44100, i * 1024, Fraction(1, 44100)
            for p in aus.encode(af):
                out.mux(p)
        for s in (vs, aus):
            for p in s.encode(None):
                out.mux(p)


# ---------------------------------------------------------------- is_mp4


def test_is_mp4_signature():
    assert is_mp4(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00")
    assert is_mp4(bytearray(b"\x00\x00\x00\x18ftypmp42"))
    assert is_mp4(memoryview(b"\x00\x00\x00\x18ftyp"))
    assert not is_mp4(b"")
    assert not is_mp4(b"\x00\x00\x00\x18fty")
    assert not is_mp4(b"\x89PNG\r\n\x1a\n")
    assert not is_mp4(b"\x1aE\xdf\xa3webm....")


# ---------------------------------------------------------------- draw_png


def test_png_decodes_with_zlib_and_has_the_size():
    data = draw_png(PROMPT, 256, 192)
    w, h, pixels = png_decode(data)
    assert (w, h) == (256, 192)
    assert len(pixels) == 256 * 192 * 3
    # the caption band is drawn over the bottom rows
    assert pixel(pixels, w, 0, h - 1) == (16, 16, 24)
    # and it is a picture, not a flat fill
    assert len({pixel(pixels, w, x, y) for x in range(0, w, 16) for y in range(0, h, 16)}) > 20


def test_png_decodes_with_ffmpeg_too():
    data = draw_png(PROMPT, 320, 200)
    frame = decode_image(data)
    assert (frame.width, frame.height) == (320, 200)
    assert rgb_bytes(frame)[2] == png_decode(data)[2]


def test_png_is_deterministic_and_differs_by_prompt():
    a = draw_png(PROMPT, 300, 200)
    assert a == draw_png(PROMPT, 300, 200)
    assert a != draw_png(PROMPT + "!", 300, 200)
    assert draw_png("a cat", 64, 64) != draw_png("a dog", 64, 64)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (17, 5), (333, 77), (1023, 1), (5, 900)])
def test_png_any_size(size):
    w, h, pixels = png_decode(draw_png(PROMPT, *size))
    assert (w, h) == size and len(pixels) == 3 * w * h


def test_png_odd_prompts():
    for prompt in ("", "   ", "é ✓ 日本語 \udcff", "x" * 5000, "word " * 400):
        w, h, _ = png_decode(draw_png(prompt, 128, 128))
        assert (w, h) == (128, 128)


def test_png_at_1024_decodes_to_its_size():
    assert png_decode(draw_png(PROMPT, 1024, 1024))[:2] == (1024, 1024)


@pytest.mark.parametrize("bad", [(0, 10), (10, 0), (-5, 5), (10.0, 10), (True, 10), (9000, 10), (5000, 5000)])
def test_png_rejects_bad_sizes(bad):
    with pytest.raises(MediaError):
        draw_png(PROMPT, *bad)


# ---------------------------------------------------------------- write_mp4 / probe_mp4


def test_mp4_round_trip(tmp_path):
    path = str(tmp_path / "v.mp4")
    size = write_mp4(path, PROMPT, 2.0, 320, 240, 15)
    assert size == os.path.getsize(path) > 1000
    with open(path, "rb") as f:
        assert is_mp4(f.read(12))
    meta = probe_mp4(path)
    assert meta["width"] == 320 and meta["height"] == 240
    assert meta["duration"] == pytest.approx(2.0, abs=0.01)
    assert meta["fps"] == pytest.approx(15.0)
    assert meta["frames"] == 30
    assert meta["codec"] == ("h264" if pick_video_codec() in ("libx264", "h264") else "mpeg4")
    frames = decode_frames(path)
    assert len(frames) == 30
    assert all((f.width, f.height) == (320, 240) for f in frames)
    first, last = rgb_bytes(frames[0])[2], rgb_bytes(frames[-1])[2]
    assert first != last  # things move
    # the caption band survives lossy coding
    assert close(pixel(first, 320, 2, 239), (16, 16, 24))


def test_mp4_prefers_h264_in_a_browser_friendly_profile(tmp_path):
    assert pick_video_codec() in ("libx264", "h264", "mpeg4")
    if pick_video_codec() == "mpeg4":
        pytest.skip("this FFmpeg build has no H.264 encoder")
    path = str(tmp_path / "v.mp4")
    write_mp4(path, PROMPT, 0.5, 160, 120, 10)
    with av.open(path) as c:
        cc = c.streams.video[0].codec_context
        assert cc.name == "h264"
        assert cc.pix_fmt == "yuv420p"
        assert "Baseline" in (cc.profile or "") or cc.profile in ("Main", "High")


def test_mp4_mpeg4_fallback(tmp_path):
    path = str(tmp_path / "v.mp4")
    write_mp4(path, PROMPT, 1.0, 176, 144, 12, codec="mpeg4")
    with open(path, "rb") as f:
        assert is_mp4(f.read(8))
    meta = probe_mp4(path)
    assert (meta["codec"], meta["width"], meta["height"], meta["frames"]) == ("mpeg4", 176, 144, 12)
    assert meta["duration"] == pytest.approx(1.0, abs=0.01)
    assert len(decode_frames(path)) == 12
    assert thumbnail_from_mp4(path)[1] in ("image/webp", "image/png", "image/jpeg")


@pytest.mark.parametrize("asked,real", [((321, 241), (320, 240)), ((3, 3), (2, 2)), ((640, 361), (640, 360))])
def test_mp4_odd_sizes_are_rounded_down_to_even(tmp_path, asked, real):
    assert even_size(*asked) == real
    path = str(tmp_path / "v.mp4")
    write_mp4(path, "odd", 0.4, *asked, 10)
    meta = probe_mp4(path)
    assert (meta["width"], meta["height"]) == real
    assert all((f.width, f.height) == real for f in decode_frames(path))


def test_mp4_frame_count_and_duration(tmp_path):
    path = str(tmp_path / "v.mp4")
    write_mp4(path, PROMPT, 1.3, 96, 64, 10)  # round(13.0) frames
    meta = probe_mp4(path)
    assert meta["frames"] == 13 and meta["duration"] == pytest.approx(1.3, abs=0.01)
    write_mp4(path, PROMPT, 0.001, 96, 64, 24)  # never fewer than one frame
    meta = probe_mp4(path)
    assert meta["frames"] == 1 and meta["duration"] == pytest.approx(1 / 24, abs=0.01)


def test_mp4_is_deterministic(tmp_path):
    a, b, c = (str(tmp_path / n) for n in ("a.mp4", "b.mp4", "c.mp4"))
    write_mp4(a, PROMPT, 1.0, 160, 96, 10)
    write_mp4(b, PROMPT, 1.0, 160, 96, 10)
    write_mp4(c, PROMPT + "?", 1.0, 160, 96, 10)
    fa, fb, fc = (decode_frames(p) for p in (a, b, c))
    assert [rgb_bytes(f) for f in fa] == [rgb_bytes(f) for f in fb]
    assert [rgb_bytes(f) for f in fa] != [rgb_bytes(f) for f in fc]
    if pick_video_codec() == "libx264":  # x264 is bit-exact run to run
        with open(a, "rb") as x, open(b, "rb") as y:
            assert x.read() == y.read()


def test_mp4_progress_is_monotonic_and_ends_at_one(tmp_path):
    path = str(tmp_path / "v.mp4")
    seen: list[tuple[float, int]] = []

    def progress(frac: float) -> None:
        seen.append((frac, os.path.getsize(path) if frac == 1.0 else -1))

    size = write_mp4(path, PROMPT, 3.0, 128, 96, 30, progress)
    fracs = [f for f, _ in seen]
    assert fracs[-1] == 1.0 and fracs.count(1.0) == 1
    assert all(0 < a < b for a, b in zip(fracs, fracs[1:]))
    assert 10 <= len(fracs) <= 101  # throttled to ~1 % steps
    assert seen[-1][1] == size  # 1.0 comes once the file is complete


def test_mp4_progress_on_a_single_frame(tmp_path):
    seen: list[float] = []
    write_mp4(str(tmp_path / "v.mp4"), PROMPT, 0.01, 64, 64, 10, seen.append)
    assert seen == [1.0]


def test_mp4_progress_exception_aborts_and_removes_the_file(tmp_path):
    path = str(tmp_path / "v.mp4")

    def cancel(frac: float) -> None:
        if frac > 0.3:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        write_mp4(path, PROMPT, 2.0, 128, 96, 25, cancel)
    assert not os.path.exists(path)


@pytest.mark.parametrize("kwargs", [
    {"seconds": 0}, {"seconds": -1}, {"seconds": float("nan")}, {"seconds": float("inf")},
    {"fps": 0}, {"fps": 2.5}, {"fps": 1000}, {"width": 1}, {"height": 0}, {"width": 9000},
    {"seconds": 5000, "fps": 60},
])
def test_mp4_rejects_bad_arguments(tmp_path, kwargs):
    args = {"path": str(tmp_path / "v.mp4"), "prompt": PROMPT, "seconds": 1.0,
            "width": 64, "height": 64, "fps": 10, **kwargs}
    with pytest.raises(MediaError):
        write_mp4(**args)
    assert not os.path.exists(args["path"])


def test_mp4_of_the_documented_example_has_its_size_and_duration(tmp_path):
    # speed is for benchmarks, not tests: this checks only what was made
    path = str(tmp_path / "v.mp4")
    size = write_mp4(path, PROMPT, 5.0, 1280, 720, 30)
    meta = probe_mp4(path)
    assert (meta["width"], meta["height"], meta["frames"]) == (1280, 720, 150)
    assert meta["duration"] == pytest.approx(5.0, abs=0.01)
    assert size < 10_000_000


def test_probe_other_providers_mp4(tmp_path):
    path = str(tmp_path / "other.mp4")
    foreign_mp4(path)
    meta = probe_mp4(path)
    assert (meta["width"], meta["height"], meta["codec"]) == (352, 288, "h264")
    assert meta["fps"] == pytest.approx(25.0)
    assert meta["duration"] == pytest.approx(3.0, abs=0.1)


def test_probe_rejects_what_is_not_a_video(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"garbage" * 100)
    with pytest.raises(MediaError):
        probe_mp4(str(junk))
    png = tmp_path / "x.mp4"
    png.write_bytes(b"")
    with pytest.raises(MediaError):
        probe_mp4(str(png))
    with pytest.raises(FileNotFoundError):
        probe_mp4(str(tmp_path / "missing.mp4"))


def test_probe_rejects_audio_only_mp4(tmp_path):
    path = str(tmp_path / "a.mp4")
    with av.open(path, "w", format="mp4") as out:
        s = out.add_stream("aac", rate=44100, layout="mono")
        for i in range(10):
            af = av.AudioFrame(format="fltp", layout="mono", samples=1024)
            af.planes[0].update(b"\x00" * 4096)
            af.sample_rate, af.pts, af.time_base = 44100, i * 1024, Fraction(1, 44100)
            for p in s.encode(af):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    with pytest.raises(MediaError, match="no video"):
        probe_mp4(path)
    with pytest.raises(MediaError, match="no video"):
        thumbnail_from_mp4(path)


# ---------------------------------------------------------------- thumbnail_from_mp4


def check_image(data: bytes, content_type: str):
    if content_type == "image/webp":
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
        assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    elif content_type == "image/png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert content_type == "image/jpeg" and data[:2] == b"\xff\xd8"
    return decode_image(data)


def test_thumbnail_from_generated_mp4_is_scaled_down(tmp_path):
    path = str(tmp_path / "v.mp4")
    write_mp4(path, PROMPT, 1.0, 1280, 720, 10)
    data, content_type = thumbnail_from_mp4(path)
    assert content_type == "image/webp"  # the PyAV wheels ship libwebp
    img = check_image(data, content_type)
    assert (img.width, img.height) == (640, 360)
    data, content_type = thumbnail_from_mp4(path, max_width=100)
    img = check_image(data, content_type)
    assert (img.width, img.height) == (100, 56)


def test_thumbnail_is_never_upscaled(tmp_path):
    path = str(tmp_path / "v.mp4")
    write_mp4(path, PROMPT, 0.5, 320, 240, 10)
    img = check_image(*thumbnail_from_mp4(path))
    assert (img.width, img.height) == (320, 240)
    w, _, rgb = rgb_bytes(img)
    assert close(pixel(rgb, w, 2, 239), (16, 16, 24), tol=40)  # the caption band


def test_thumbnail_of_other_providers_mp4_is_from_the_middle(tmp_path):
    path = str(tmp_path / "other.mp4")
    foreign_mp4(path)
    img = check_image(*thumbnail_from_mp4(path))
    assert (img.width, img.height) == (352, 288)
    w, _, rgb = rgb_bytes(img)
    assert close(pixel(rgb, w, 176, 144), (0, 255, 0), tol=40)  # the green middle third


def test_thumbnail_rejects_bad_input(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(MediaError):
        thumbnail_from_mp4(str(junk))
    path = str(tmp_path / "v.mp4")
    write_mp4(path, PROMPT, 0.2, 64, 64, 10)
    with pytest.raises(MediaError):
        thumbnail_from_mp4(path, max_width=0)


def test_png_path_does_not_load_ffmpeg():
    # draw_png and is_mp4 are pure Python; av (FFmpeg) is imported only by the video paths
    code = ("import sys; from server.providers.simulator import media; "
            "media.draw_png('x', 8, 8); media.is_mp4(b''); assert 'av' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
