"""Inline images are measured from their header (real files made by FFmpeg's encoders through
PyAV), so their reservation uses OpenAI's formula at the real size instead of the worst one."""
from __future__ import annotations

import base64
import struct
from fractions import Fraction

import av
import pytest

from server.billing.estimate import prompt_tokens
from server.billing.image_size import HEAD_BYTES, data_url_dimensions, image_dimensions

FORMATS = {  # name: (codec, pixel format, options)
    "png": ("png", "rgb24", {}),
    "jpeg": ("mjpeg", "yuvj420p", {}),
    "webp lossy (VP8)": ("libwebp", "yuv420p", {}),
    "webp lossless (VP8L)": ("libwebp", "bgra", {"lossless": "1"}),
    "webp extended (VP8X)": ("libwebp", "bgra", {}),
    "gif": ("gif", "rgb8", {}),
}
SIZES = [(1000, 600), (34, 2050), (3001, 18)]


def encode(kind: str, width: int, height: int) -> bytes:
    codec, pix_fmt, options = FORMATS[kind]
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = width, height, pix_fmt, Fraction(1, 25)
    ctx.options = options
    frame = av.VideoFrame(width, height, "rgba").reformat(format=pix_fmt)
    return b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize("kind", list(FORMATS))
@pytest.mark.parametrize("width, height", SIZES)
def test_the_size_is_read_from_the_header(kind, width, height):
    data = encode(kind, width, height)
    assert image_dimensions(data) == (width, height)
    assert data_url_dimensions(data_url("image/whatever", data)) == (width, height)


def with_app_segments(jpeg: bytes, total: int) -> bytes:
    """The same JPEG with `total` bytes of APP1 segments (EXIF-like) before its frame header."""
    segments = b""
    while total > 0:
        size = min(total, 65_000)
        segments += b"\xff\xe1" + struct.pack(">H", size + 2) + b"\0" * size
        total -= size
    return jpeg[:2] + segments + jpeg[2:]


def test_a_jpeg_frame_header_after_large_metadata_is_found():
    jpeg = with_app_segments(encode("jpeg", 640, 480), 100_000)
    assert data_url_dimensions(data_url("image/jpeg", jpeg)) == (640, 480)


def test_a_frame_header_beyond_the_decoded_prefix_is_unknown_not_guessed():
    jpeg = with_app_segments(encode("jpeg", 640, 480), HEAD_BYTES + 10_000)
    assert data_url_dimensions(data_url("image/jpeg", jpeg)) is None


@pytest.mark.parametrize("url", [
    "https://img.example/cat.png", "data:image/png,not-base64", "data:image/png;base64,@@@@",
    data_url("image/png", encode("png", 100, 100)[:20]), data_url("image/png", b"plain text, not an image"),
    data_url("image/png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\0\0\0\0\0"),
])
def test_anything_unreadable_has_no_size(url):
    assert data_url_dimensions(url) is None


def chat_with_image(url: str, detail: str = "high") -> dict:
    return {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe it."}, {"type": "image_url", "image_url": {"url": url, "detail": detail}}]}]}


def test_an_inline_image_costs_the_formula_at_its_real_size():
    text_only = prompt_tokens({"messages": [{"role": "user", "content": [{"type": "text", "text": "Describe it."}]}]},
                              "gpt-4o")
    small = data_url("image/png", encode("png", 512, 512))
    assert prompt_tokens(chat_with_image(small), "gpt-4o") == text_only + 85 + 170
    assert prompt_tokens(chat_with_image(small), "gpt-4o-mini") == text_only + 2833 + 5667
    assert prompt_tokens(chat_with_image(small), "gpt-4.1-mini") == text_only + 415  # 256 patches × 1.62
    linked = "https://img.example/cat.png"
    assert prompt_tokens(chat_with_image(linked), "gpt-4o") == text_only + 85 + 170 * 8
