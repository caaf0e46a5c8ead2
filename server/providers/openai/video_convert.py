"""Pure mapping between st-ai's provider-neutral video task and OpenAI's Videos API
(`POST /videos`, the Video object). No I/O here, so every rule is testable alone.

OpenAI takes few values: `seconds` is one of "4", "8", "12" and `size` one of four
resolutions, so a request is mapped to the nearest supported values (video_shape's
fitting; a tie in duration goes to the shorter, as OpenAI bills per second) and `asked`
tells the client what was really requested upstream."""
from __future__ import annotations

import base64
import binascii
import re

from server.errors import invalid_request
from server.media_types import EXTENSIONS, image_type
from server.providers.interface import Prepared, TaskState, VideoRequest
from server.providers.video_shape import (ASPECT_RATIO, FIRST_FRAME, TEXT, VideoCapabilities, nearest_duration,
                                          nearest_size, require_input, split_metadata, with_aspect_ratio)

SECONDS = (4, 8, 12)           # OpenAI's `seconds` enum (sent as strings)
DEFAULT_SECONDS = 4            # OpenAI's default
# In tie-breaking order: a request equally near two sizes gets the earlier one.
ALL_SIZES = ((1280, 720), (720, 1280), (1792, 1024), (1024, 1792))
SORA_2_SIZES = ALL_SIZES[:2]   # plain sora-2 renders only 720p; sora-2-pro all four
DEFAULT_SIZE = (720, 1280)     # OpenAI's default

# Request fields OpenAI has that VideoRequest does not name, taken from `metadata`.
# `character_ids` exists only in some SDK versions; an upstream without it says so itself.
METADATA_KEYS = frozenset({"character_ids"})

# OpenAI takes one input image (`input_reference`, the first frame) and pixel sizes; the
# neutral `aspect_ratio` picks among those sizes. It has no negative prompt, last frame,
# watermark or audio switch.
_SHAPE = dict(durations=SECONDS, aspect_ratios=("16:9", "9:16"), inputs=(TEXT, FIRST_FRAME),
              neutral=frozenset({ASPECT_RATIO}), own=METADATA_KEYS, default_duration=DEFAULT_SECONDS,
              default_aspect_ratio="9:16", default_size=DEFAULT_SIZE)
SORA_2 = VideoCapabilities(sizes=SORA_2_SIZES, **_SHAPE)
SORA_2_PRO = VideoCapabilities(sizes=ALL_SIZES, **_SHAPE)


def capabilities(model: str) -> VideoCapabilities | None:
    """OpenAI's video models by name (dated snapshots included); None for other names."""
    if model.startswith("sora-2-pro"):
        return SORA_2_PRO
    if model.startswith("sora-2"):
        return SORA_2
    return None


def fitting_for(model: str) -> VideoCapabilities:
    # Unknown names (a chained st-ai, a renamed deployment) may take every size: let them judge.
    return capabilities(model) or SORA_2_PRO


_DATA_URI = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,(?P<data>.*)",
                       re.DOTALL | re.IGNORECASE)


# -- request -----------------------------------------------------------------------------

def _sniff(data: bytes) -> tuple[str, str] | None:
    # OpenAI documents JPEG, PNG and WebP reference images
    kind = image_type(data)
    return (kind, EXTENSIONS[kind]) if kind else None


def _upload(data: bytes) -> dict:
    """The multipart file part, described JSON-safely (base64) so a Prepared body can be
    logged or stored; `videos.submit` turns it back into bytes."""
    kind = _sniff(data)
    if kind is None:
        raise invalid_request("The input image must be a JPEG, PNG or WebP image.", "image")
    mime, ext = kind
    return {"filename": f"input_reference.{ext}", "content_type": mime,
            "data_base64": base64.b64encode(data).decode("ascii")}


def _decode_image(image: str) -> bytes:
    text = image.strip()
    match = _DATA_URI.fullmatch(text)
    payload = match.group("data") if match else text
    try:
        return base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request("image must be an http(s) URL, a data: URI or base64 image data.",
                              "image") from None


def input_reference(request: VideoRequest) -> dict | None:
    """Bytes (an upload, a data: URI, bare base64) go as the multipart file upload every
    deployment of the API accepts. An http(s) URL goes as the JSON reference object
    {"image_url": ...} of the current API spec, so the gateway never fetches it itself."""
    if request.image_bytes is not None:
        return {"upload": _upload(request.image_bytes)}
    if not request.image:
        return None
    if re.match(r"https?://", request.image.strip(), re.IGNORECASE):
        return {"image_url": request.image.strip()}
    if request.image.strip().lower().startswith("data:") and not _DATA_URI.fullmatch(request.image.strip()):
        raise invalid_request("A data: URI image must be base64-encoded.", "image")
    return {"upload": _upload(_decode_image(request.image))}


def to_prepared(request: VideoRequest) -> Prepared:
    if not request.prompt or not request.prompt.strip():
        raise invalid_request("prompt is required.", "prompt")
    caps = fitting_for(request.model)
    metadata = split_metadata(caps, request.metadata, "OpenAI")
    body: dict = {"model": request.model, "prompt": request.prompt}
    for key, value in metadata.own.items():
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise invalid_request(f"metadata.{key} must be a list of strings.", f"metadata.{key}")
        body[key] = value
    if ASPECT_RATIO in metadata.neutral:
        caps = with_aspect_ratio(caps, _text(metadata.neutral[ASPECT_RATIO], ASPECT_RATIO))
    seconds = int(nearest_duration(caps, request.duration, prefer_longer=False))
    width, height = nearest_size(caps, request.width, request.height)
    # Sent explicitly even when defaulted, so `asked` is what the upstream really used.
    body["seconds"] = str(seconds)
    body["size"] = f"{width}x{height}"
    reference = input_reference(request)
    if reference is not None:
        require_input(caps, FIRST_FRAME, "OpenAI", "image")
        body["input_reference"] = reference
    # OpenAI has neither fps nor seed: the seed is ignored and no fps is reported,
    # since OpenAI does not document its output frame rate.
    asked = {"duration": float(seconds), "width": width, "height": height,
             "seconds": body["seconds"], "size": body["size"]}
    return Prepared(body=body, asked=asked)


def _text(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise invalid_request(f"metadata.{key} must be a string.", f"metadata.{key}")
    return value


# -- answers -----------------------------------------------------------------------------

def _seconds(value: object) -> int | None:
    """A Unix time in seconds; a millisecond value (some compatible services) is scaled."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return int(value / 1000) if value > 1e11 else int(value)


def to_task_state(video: dict) -> TaskState:
    """OpenAI's Video object → TaskState. A failure arrives as status "failed" with
    error {code, message} on an ordinary 200 (moderation included, code kept)."""
    status = video.get("status")
    progress = video.get("progress")
    progress = int(progress) if isinstance(progress, (int, float)) and not isinstance(progress, bool) else 0
    progress = max(0, min(100, progress))
    updated_at = _seconds(video.get("completed_at")) or _seconds(video.get("created_at"))
    if status == "completed":
        return TaskState("completed", 100, updated_at=updated_at)
    if status in ("queued", "in_progress"):
        return TaskState(status, progress, updated_at=updated_at)
    error = video.get("error") if isinstance(video.get("error"), dict) else {}
    code = error.get("code") if isinstance(error.get("code"), str) and error.get("code") else None
    message = error.get("message") if isinstance(error.get("message"), str) and error.get("message") else None
    if status != "failed":
        # Not one of the documented four (e.g. "cancelled"): end the task rather than poll forever.
        if code is None:
            known = isinstance(status, str) and re.fullmatch(r"[a-z_]{1,32}", status)
            code = f"upstream_status_{status}" if known else "upstream_bad_answer"
        message = message or "The upstream service reported a status st-ai does not know."
    return TaskState("failed", progress, code or "video_generation_failed",
                     message or "The upstream service failed to generate the video.", updated_at=updated_at)
