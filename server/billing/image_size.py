"""Width and height of an image sent inline as a base64 data URL, read from its header only.

Decodes at most HEAD_BYTES of the image, so a 30 MB data URL costs microseconds. PNG, JPEG,
WebP and GIF (what OpenAI accepts as image input); anything else, a remote URL, or a JPEG whose
frame header lies beyond the prefix is None: its size is then bounded, not known.
"""
from __future__ import annotations

import binascii
import struct

HEAD_BYTES = 192 * 1024
_B64_CHARS = HEAD_BYTES // 3 * 4

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic…): not DHT, JPG, DAC
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# JPEG markers without a length field
_STANDALONE = {0x01, *range(0xD0, 0xDA)}


def data_url_dimensions(url: str) -> tuple[int, int] | None:
    if not url.startswith("data:"):
        return None
    comma = url.find(",", 0, 256)
    if comma < 0 or not url[:comma].endswith(";base64"):
        return None
    prefix = url[comma + 1: comma + 1 + _B64_CHARS]
    try:
        head = binascii.a2b_base64(prefix[: len(prefix) // 4 * 4])
    except (binascii.Error, ValueError):
        return None
    return image_dimensions(head)


def image_dimensions(head: bytes) -> tuple[int, int] | None:
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return _positive(*struct.unpack(">II", head[16:24]))
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return _positive(*struct.unpack("<HH", head[6:10]))
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp(head)
        if head.startswith(b"\xff\xd8"):
            return _jpeg(head)
    except struct.error:  # a header cut short
        return None
    return None


def _webp(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return _positive(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return _positive((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        return _positive(int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1)
    return None


def _jpeg(head: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        length = struct.unpack(">H", head[at + 2: at + 4])[0]
        if marker in _SOF:
            height, width = struct.unpack(">HH", head[at + 5: at + 9])
            return _positive(width, height)
        if marker == 0xDA or length < 2:  # scan data before any frame header: not a valid JPEG
            return None
        at += 2 + length
    return None


def _positive(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None
