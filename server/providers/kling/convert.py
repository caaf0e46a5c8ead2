"""Pure mapping between st-ai's provider-neutral video task and Kling's API: the
request body (and which endpoint takes it), and Kling's task object as a TaskState.
No I/O here, so every rule can be tested on plain data."""
from __future__ import annotations

import base64
import binascii
import math
import re

from server.errors import invalid_request, upstream_failed
from server.providers.interface import Prepared, TaskState, VideoRequest

TEXT2VIDEO = "text2video"
IMAGE2VIDEO = "image2video"
ENDPOINTS = (TEXT2VIDEO, IMAGE2VIDEO)

# The model enums Kling documents per endpoint. Models not listed (newer ones) are
# passed through and left for Kling to judge.
TEXT2VIDEO_MODELS = frozenset({"kling-v1", "kling-v1-6", "kling-v2-master", "kling-v2-1-master",
                               "kling-v2-5-turbo", "kling-v2-6"})
IMAGE2VIDEO_MODELS = TEXT2VIDEO_MODELS | {"kling-v1-5", "kling-v2-1"}

DURATIONS = (5, 10)                      # Kling takes "5" or "10" (strings)
DEFAULT_DURATION = 5
ASPECT_RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}
DEFAULT_ASPECT_RATIO = "16:9"
# Kling is asked a ratio, not a size; the size reported back is nominal 720p.
NOMINAL_SIZE = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)}
MODES = ("std", "pro")
MAX_PROMPT = 2500
IMAGE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png"})

# metadata keys passed through as Kling fields, per endpoint
COMMON_FIELDS = frozenset({"negative_prompt", "cfg_scale", "mode", "camera_control", "sound",
                           "watermark_info", "callback_url", "external_task_id"})
IMAGE_ONLY_FIELDS = frozenset({"image_tail", "static_mask", "dynamic_masks", "voice_list"})

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


def nearest_duration(seconds: float | None) -> int:
    if seconds is None:
        return DEFAULT_DURATION
    if not math.isfinite(seconds) or seconds <= 0:
        raise invalid_request("The duration must be a positive number of seconds.", "duration")
    # On a tie (7.5 s) the longer wins: the client gets at least what was asked.
    return min(DURATIONS, key=lambda d: (abs(d - seconds), -d))


def nearest_aspect_ratio(width: int | None, height: int | None) -> str:
    if width is None and height is None:
        return DEFAULT_ASPECT_RATIO
    if not width or not height or width <= 0 or height <= 0:
        raise invalid_request("Give both width and height as positive numbers, or neither.",
                              "width" if not width or width <= 0 else "height")
    wanted = math.log(width / height)  # compare in log space so 2:1 and 1:2 are equally far from 1:1
    return min(ASPECT_RATIOS, key=lambda name: abs(math.log(ASPECT_RATIOS[name]) - wanted))


def bare_base64(value: str, param: str) -> str:
    """An image as Kling takes it: a URL as is, base64 without a data: prefix."""
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
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request("The image must be an http(s) URL, a data: URI or base64.", param) from None
    if not value:
        raise invalid_request("The image is empty.", param)
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
        return base64.b64encode(request.image_bytes).decode("ascii")
    if request.image:
        return bare_base64(request.image, "image")
    return None


def _metadata(request: VideoRequest, image: str | None) -> dict:
    allowed = COMMON_FIELDS | (IMAGE_ONLY_FIELDS if image else frozenset())
    fields: dict = {}
    for key, value in request.metadata.items():
        if key in IMAGE_ONLY_FIELDS and not image:
            raise invalid_request(f"The Kling parameter '{key}' needs an input image.", f"metadata.{key}")
        if key not in allowed:
            raise invalid_request(
                f"Kling does not take the parameter '{key}'. It takes: {', '.join(sorted(allowed))}.",
                f"metadata.{key}")
        fields[key] = value
    if "mode" in fields and fields["mode"] not in MODES:
        raise invalid_request("The Kling mode must be 'std' or 'pro'.", "metadata.mode")
    if "sound" in fields and fields["sound"] not in ("on", "off"):
        raise invalid_request("The Kling sound must be 'on' or 'off'.", "metadata.sound")
    if "cfg_scale" in fields:
        scale = fields["cfg_scale"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= 1:
            raise invalid_request("The Kling cfg_scale must be a number from 0 to 1.", "metadata.cfg_scale")
    negative = fields.get("negative_prompt")
    if negative is not None and (not isinstance(negative, str) or len(negative) > MAX_PROMPT):
        raise invalid_request(f"The negative prompt must be text of at most {MAX_PROMPT} characters.",
                              "metadata.negative_prompt")
    if isinstance(fields.get("image_tail"), str):
        fields["image_tail"] = bare_base64(fields["image_tail"], "metadata.image_tail")
    return fields


def to_kling(request: VideoRequest) -> Prepared:
    """The Kling body for a request, and what it really asks for. Everything that
    Kling would refuse for a documented reason is refused here, before any I/O."""
    if request.seed is not None:
        raise invalid_request("Kling does not take a seed.", "seed")
    image = _image(request)
    endpoint = IMAGE2VIDEO if image or request.metadata.get("image_tail") else TEXT2VIDEO
    models = IMAGE2VIDEO_MODELS if endpoint == IMAGE2VIDEO else TEXT2VIDEO_MODELS
    if request.model in IMAGE2VIDEO_MODELS and request.model not in models:
        raise invalid_request(f"The Kling model '{request.model}' needs an input image.", "image")
    prompt = request.prompt or ""
    if len(prompt) > MAX_PROMPT:
        raise invalid_request(f"The prompt must be at most {MAX_PROMPT} characters for Kling.", "prompt")
    if endpoint == TEXT2VIDEO and not prompt.strip():
        raise invalid_request("A prompt is required to make a video from text.", "prompt")
    extra = _metadata(request, image or request.metadata.get("image_tail"))
    duration = nearest_duration(request.duration)
    mode = extra.pop("mode", "std")

    body: dict = {"model_name": request.model}
    if prompt:
        body["prompt"] = prompt
    if image:
        body["image"] = image
    body["duration"] = str(duration)
    body["mode"] = mode
    # Explicit values rather than Kling's defaults, so `asked` states what Kling was asked.
    if endpoint == TEXT2VIDEO:
        ratio: str | None = nearest_aspect_ratio(request.width, request.height)
        body["aspect_ratio"] = ratio
        width, height = NOMINAL_SIZE[ratio]
    else:
        # image2video has no aspect_ratio: the video follows the image's shape, which
        # st-ai does not decode, so no size is claimed.
        ratio, width, height = None, None, None
    body.update(extra)
    asked = {"duration": float(duration), "width": width, "height": height, "aspect_ratio": ratio,
             # Kling documents no frame rate nor takes one: what was requested is echoed.
             "fps": request.fps, "mode": mode}
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
