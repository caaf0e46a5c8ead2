"""Recognising image files by their first bytes, wherever st-ai must name or check
an image's type (uploads sent to providers, thumbnails it serves)."""
from __future__ import annotations

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def image_type(head: bytes) -> str | None:
    """image/png, image/jpeg or image/webp, or None for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None
