"""Pure mapping between st-ai's provider-neutral video task and Kling's API: the
request body (and which endpoint takes it), and Kling's task object as a TaskState.
No I/O here, so every rule can be tested on plain data."""
from __future__ import annotations

import base64
import binascii
import math
import re

from server.errors import invalid_request, upstream_failed
from server.providers import video_shape as shape
from server.providers.interface import Prepared, TaskState, VideoRequest
from server.providers.kling import models, params

TEXT2VIDEO = "text2video"
IMAGE2VIDEO = "image2video"
ENDPOINTS = (TEXT2VIDEO, IMAGE2VIDEO)

MAX_PROMPT = 2500
IMAGE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png"})
# Kling takes JPEG or PNG only: base64 images are checked by their first bytes, so text
# posing as an image is refused here rather than by Kling after the task was admitted.
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")

DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[^;,]*)*?);base64,", re.IGNORECASE)

# Progress: Kling reports none, so it is estimated from the time spent processing
# (typical tasks take a few minutes): 95 * (1 - e^(-elapsed/PROGRESS_TAU)), never
# above 95 until Kling says the task succeeded.
PROGRESS_TAU = 120.0
PROGRESS_CAP = 95

# Words in Kling's failure messages that mean a content-safety block. Kling gives no
# code for it inside a task, only task_status_msg text.
SAFETY_WORDS = ("risk control", "content security", "safety", "sensitive", "policy",
                "moderation", "inappropriate", "风控", "安全", "违规")


# -- request ---------------------------------------------------------------------------

def endpoint_for(body: dict) -> str:
    """Which endpoint takes a prepared body: one with a start or end frame is image2video.
    Derived from the body itself so submit needs nothing beside it."""
    return IMAGE2VIDEO if body.get("image") or body.get("image_tail") else TEXT2VIDEO


def _decoded_is_image(value: str) -> bool:
    # 64 characters (a multiple of 4) decode to the first 48 bytes, enough for the signature
    return base64.b64decode(value[:64]).startswith(IMAGE_MAGIC)


def bare_base64(value: str, param: str) -> str:
    """An image as Kling takes it: a URL as is, base64 without a data: prefix."""
    if not isinstance(value, str):
        raise invalid_request("The image must be an http(s) URL, a data: URI or base64.", param)
    if value.startswith(("http://", "https://")):
        return value
    match = DATA_URI.match(value)
    if value[:5].lower() == "data:" and match is None:
        raise invalid_request("A data: URI image must be base64-encoded.", param)
    if match is not None:
        if match.group(1) and match.group(1).lower() not in IMAGE_TYPES:
            raise invalid_request(f"Kling takes JPEG or PNG images, not {match.group(1)}.", param)
        value = value[match.end():]
    value = "".join(value.split())
    if not value:
        raise invalid_request("The image is empty.", param)
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request("The image must be an http(s) URL, a data: URI or base64.", param) from None
    if not _decoded_is_image(value):
        raise invalid_request("Kling takes JPEG or PNG images; this one is neither.", param)
    return value


def _image(request: VideoRequest) -> str | None:
    if request.image and request.image_bytes:
        raise invalid_request("Give the image either as a string or as an upload, not both.", "image")
    if request.image_bytes is not None:
        if request.image_type and request.image_type.lower() not in IMAGE_TYPES:
            raise invalid_request(f"Kling takes JPEG or PNG images, not {request.image_type}.",
                                  "input_reference")
        if not request.image_bytes:
            raise invalid_request("The uploaded image is empty.", "input_reference")
        if not request.image_bytes.startswith(IMAGE_MAGIC):
            raise invalid_request("Kling takes JPEG or PNG images; this one is neither.", "input_reference")
        return base64.b64encode(request.image_bytes).decode("ascii")
    if request.image:
        return bare_base64(request.image, "image")
    return None


def _nominal_size(ratio: str, resolution: str) -> tuple[int, int]:
    """Kling is asked a ratio and a mode, not a size: the size reported is the nominal one."""
    short = shape.RESOLUTION_HEIGHTS[resolution]
    long = short * 16 // 9
    return {"16:9": (long, short), "9:16": (short, long)}.get(ratio, (short, short))


def to_kling(request: VideoRequest) -> Prepared:
    """The Kling body for a request, and what it really asks for. Everything that
    Kling would refuse for a documented reason is refused here, before any I/O."""
    spec = models.spec_for(request.model)
    caps = spec.caps
    if request.seed is not None:
        raise invalid_request("Kling does not take a seed.", "seed")
    split = shape.split_metadata(caps, request.metadata, "Kling")
    neutral, own = split.neutral, dict(split.own)
    image = _image(request)
    tail = params.last_frame(neutral, own)
    if tail is not None:
        tail = bare_base64(tail, params.tail_param(neutral))
    endpoint = IMAGE2VIDEO if image or tail else TEXT2VIDEO

    prompt = request.prompt or ""
    if len(prompt) > MAX_PROMPT:
        raise invalid_request(f"The prompt must be at most {MAX_PROMPT} characters for Kling.", "prompt")
    if endpoint == TEXT2VIDEO and not prompt.strip():
        raise invalid_request("A prompt is required to make a video from text.", "prompt")
    negative = neutral.get(shape.NEGATIVE_PROMPT)
    if negative is not None and (not isinstance(negative, str) or len(negative) > MAX_PROMPT):
        raise invalid_request(f"The negative prompt must be text of at most {MAX_PROMPT} characters.",
                              f"metadata.{shape.NEGATIVE_PROMPT}")
    brush = sorted(models.MOTION_BRUSH & own.keys())
    if endpoint == TEXT2VIDEO and brush:
        raise invalid_request(f"The Kling parameter '{brush[0]}' needs an input image.", f"metadata.{brush[0]}")
    if endpoint == IMAGE2VIDEO and shape.ASPECT_RATIO in neutral:
        raise invalid_request("A video made from an image takes the image's shape; leave out the aspect ratio.",
                              f"metadata.{shape.ASPECT_RATIO}")

    sound = params.sound(neutral, own)
    mode = params.choose_mode(spec, own.pop("mode", None), neutral.get(shape.RESOLUTION), sound == "on",
                              tail is not None, params.tail_param(neutral))
    params.check_own(own, sound, tail is not None)
    duration = shape.nearest_duration(caps, request.duration)

    body: dict = {"model_name": request.model}
    if prompt:
        body["prompt"] = prompt
    if negative:
        body["negative_prompt"] = negative
    if image:
        body["image"] = image
    if tail:
        body["image_tail"] = tail
    body["duration"] = str(int(duration))
    body["mode"] = mode
    resolution = spec.resolution_of_mode.get(mode)
    ratio: str | None = None
    width = height = None
    # Fitted for every request, so a negative width is refused for image2video too.
    fitted = shape.nearest_aspect_ratio(caps, request.width, request.height, neutral.get(shape.ASPECT_RATIO))
    # Explicit values rather than Kling's defaults, so `asked` states what Kling was asked.
    if endpoint == TEXT2VIDEO:
        ratio = body["aspect_ratio"] = fitted
        width, height = _nominal_size(ratio, resolution or "720p")
    # image2video has no aspect_ratio: the video follows the image's shape, which st-ai
    # does not decode, so no size is claimed.
    # A known model with sound is told "off" explicitly; a name st-ai does not know gets
    # `sound` only when asked, since Kling may not take it there.
    if spec.sound_modes and (sound is not None or request.model in models.MODELS):
        body["sound"] = sound or "off"
    if shape.WATERMARK in neutral:
        body["watermark_info"] = params.watermark(neutral[shape.WATERMARK], own)
    body.update(own)
    asked = {"duration": float(duration), "width": width, "height": height, "aspect_ratio": ratio,
             # Kling documents no frame rate nor takes one: what was requested is echoed.
             "fps": request.fps, "mode": mode}
    if resolution:
        asked["resolution"] = resolution
    if "sound" in body:
        asked["audio"] = body["sound"] == "on"
    return Prepared(body=body, asked=asked)


# -- task state ------------------------------------------------------------------------

def estimated_progress(created_at_ms: object, now: float) -> int:
    if not isinstance(created_at_ms, (int, float)) or isinstance(created_at_ms, bool):
        return 0
    elapsed = max(0.0, now - created_at_ms / 1000)  # clamp: Kling's clock may run ahead of ours
    return min(PROGRESS_CAP, int(PROGRESS_CAP * (1 - math.exp(-elapsed / PROGRESS_TAU))))


def is_safety_failure(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in SAFETY_WORDS)


def _seconds(ms: object) -> int | None:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)):
        return None
    return int(ms // 1000)


def to_state(task: dict, now: float) -> TaskState:
    """Kling's task object (the envelope's `data`) as st-ai's TaskState."""
    status = task.get("task_status")
    updated = _seconds(task.get("updated_at"))
    if status == "submitted":
        return TaskState("queued", 0, updated_at=updated)
    if status == "processing":
        return TaskState("in_progress", estimated_progress(task.get("created_at"), now), updated_at=updated)
    if status == "succeed":
        videos = ((task.get("task_result") or {}).get("videos") or [])
        url = videos[0].get("url") if videos and isinstance(videos[0], dict) else None
        if not isinstance(url, str) or not url:
            return TaskState("failed", 0, "upstream_error", "Kling reported success without a video.",
                             updated_at=updated)
        return TaskState("completed", 100, video_url=url, updated_at=updated)
    if status == "failed":
        message = task.get("task_status_msg") or "Kling failed to generate the video."
        message = message if isinstance(message, str) else str(message)
        code = "moderation_blocked" if is_safety_failure(message) else "generation_failed"
        return TaskState("failed", 0, code, message, updated_at=updated)
    raise upstream_failed("Kling answered with an unknown task status.")
