"""Pure mapping between st-ai's provider-neutral video task and DashScope's video
synthesis API: the request body (and which path takes it) and DashScope's task as a
TaskState. No I/O here, so every rule is tested on plain data.

Images are passed on as DashScope takes them (a public URL, or a base64 data: URI):
DashScope fetches URLs itself, so st-ai never does."""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import replace

from server.errors import invalid_request, upstream_failed
from server.media_types import image_type
from server.providers.interface import Prepared, TaskState, VideoRequest
from server.providers.video_shape import (ASPECT_RATIO, AUDIO, FIRST_FRAME, LAST_FRAME, NEGATIVE_PROMPT,
                                          REFERENCE_IMAGES, RESOLUTION, WATERMARK, nearest_aspect_ratio,
                                          nearest_duration, nearest_fps, nearest_resolution, nearest_size,
                                          require_input, split_metadata)
from server.providers.wan.models import FIRST, KEYFRAMES, MEDIA, SIZE, TIER_SIZES, WanModel, model

SYNTHESIS = "/api/v1/services/aigc/video-generation/video-synthesis"
KEYFRAME_SYNTHESIS = "/api/v1/services/aigc/image2video/video-synthesis"  # the kf2v models' own path
MAX_SEED = 2147483647
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/bmp", "image/webp"})
DATA_URI = re.compile(r"^data:(image/[\w.+-]+);base64,", re.IGNORECASE)
SHOT_TYPES = ("single", "multi")
MAX_REFERENCES = 10

# Words in DashScope's failure codes that mean its content inspection refused the task.
MODERATION_WORDS = ("datainspection", "data_inspection", "ipinfringement", "greennet", "sensitive")


# -- request ---------------------------------------------------------------------------

def path_for(body: dict) -> str:
    """Which path takes a prepared body; derived from the body so submit needs nothing else."""
    return KEYFRAME_SYNTHESIS if "first_frame_url" in body.get("input", {}) else SYNTHESIS


def prepare(request: VideoRequest) -> Prepared:
    wan = model(request.model)
    caps = wan.caps
    split = split_metadata(caps, request.metadata or {}, "Wan")
    neutral, own = split.neutral, split.own
    first = _first_frame(request)
    if first is not None:
        require_input(caps, FIRST_FRAME, "Wan", "input_reference" if request.image_bytes is not None else "image")
    raw_media = _own_media(wan, own.get("media"), first, neutral)
    if wan.needs_image and first is None and not _has_frame(raw_media):
        raise invalid_request(f"Wan's {request.model} makes videos from an image; send one as `image`.",
                              "image", "image_required")
    prompt = request.prompt or ""
    if not prompt.strip() and first is None and not raw_media:
        raise invalid_request("A prompt is required to make a video from text.", "prompt", "prompt_required")

    duration = int(nearest_duration(caps, request.duration))
    inputs: dict = {}
    if prompt:
        inputs["prompt"] = prompt
    parameters: dict = {}
    asked: dict = {"duration": duration, "fps": nearest_fps(caps, request.fps) or 30}

    if wan.shape == SIZE:
        width, height = _size(wan, request, neutral, own)
        parameters["size"] = f"{width}*{height}"
        asked.update(width=width, height=height, size=parameters["size"])
    else:
        resolution = nearest_resolution(caps, request.width, request.height, _text(neutral, RESOLUTION))
        parameters["resolution"] = resolution
        asked["resolution"] = resolution
        framed = first is not None or _has_frame(raw_media)
        if wan.shape == MEDIA and not framed:
            # Only a video without a first frame has a ratio to choose; otherwise it follows the image.
            ratio = nearest_aspect_ratio(caps, request.width, request.height, _text(neutral, ASPECT_RATIO))
            parameters["ratio"] = ratio
            width, height = TIER_SIZES[resolution][ratio]
            asked.update(width=width, height=height, aspect_ratio=ratio)
        elif ASPECT_RATIO in neutral:
            raise invalid_request("The video takes the shape of its first frame; drop metadata.aspect_ratio.",
                                  f"metadata.{ASPECT_RATIO}")

    inputs.update(_frames(wan, first, neutral, raw_media))
    if NEGATIVE_PROMPT in neutral:
        inputs["negative_prompt"] = _string(neutral[NEGATIVE_PROMPT], f"metadata.{NEGATIVE_PROMPT}")
    if "audio_url" in own:
        inputs["audio_url"] = _string(own["audio_url"], "metadata.audio_url")

    parameters["duration"] = duration
    if "prompt_extend" in own:
        parameters["prompt_extend"] = _flag(own["prompt_extend"], "metadata.prompt_extend")
    if "shot_type" in own:
        if own["shot_type"] not in SHOT_TYPES:
            raise invalid_request("metadata.shot_type is 'single' or 'multi'.", "metadata.shot_type")
        parameters["shot_type"] = own["shot_type"]
    if WATERMARK in neutral:
        parameters["watermark"] = _flag(neutral[WATERMARK], f"metadata.{WATERMARK}")
    if AUDIO in neutral:
        parameters["audio"] = _flag(neutral[AUDIO], f"metadata.{AUDIO}")
    if request.seed is not None:
        if not 0 <= request.seed <= MAX_SEED:
            raise invalid_request(f"Wan takes a seed from 0 to {MAX_SEED}.", "seed")
        parameters["seed"] = request.seed
    return Prepared(body={"model": request.model, "input": inputs, "parameters": parameters}, asked=asked)


def _frames(wan: WanModel, first: str | None, neutral: dict, raw_media: list[dict]) -> dict:
    """The images in the fields the model's shape has for them."""
    last = _image(neutral[LAST_FRAME], f"metadata.{LAST_FRAME}") if LAST_FRAME in neutral else None
    if wan.shape == FIRST:
        return {"img_url": first}
    if wan.shape == KEYFRAMES:
        return {"first_frame_url": first} | ({"last_frame_url": last} if last is not None else {})
    if wan.shape != MEDIA:
        return {}
    media = list(raw_media)
    if first is not None:
        media.append({"type": "first_frame", "url": first})
    if last is not None:
        media.append({"type": "last_frame", "url": last})
    if REFERENCE_IMAGES in neutral:
        media.extend({"type": "reference_image", "url": url} for url in _references(neutral[REFERENCE_IMAGES]))
    return {"media": media} if media else {}


def _size(wan: WanModel, request: VideoRequest, neutral: dict, own: dict) -> tuple[int, int]:
    """A SIZE model's "W*H": metadata.size exactly, else the tier and ratio asked, else
    the accepted size nearest the width and height."""
    caps = wan.caps
    if "size" in own:
        return _exact_size(caps.sizes, own["size"])
    if RESOLUTION in neutral or ASPECT_RATIO in neutral:
        tier = nearest_resolution(caps, request.width, request.height, _text(neutral, RESOLUTION))
        # The ratios of that tier only (480P has three): the nearest of them, or a 400 for one it lacks.
        in_tier = replace(caps, aspect_ratios=tuple(TIER_SIZES[tier]))
        ratio = nearest_aspect_ratio(in_tier, request.width, request.height, _text(neutral, ASPECT_RATIO))
        return TIER_SIZES[tier][ratio]
    return nearest_size(caps, request.width, request.height)


def _exact_size(sizes: tuple[tuple[int, int], ...], given: object) -> tuple[int, int]:
    """metadata.size, DashScope's own "W*H" (or "WxH"), when the model makes that size."""
    width, _, height = given.lower().replace("x", "*").partition("*") if isinstance(given, str) else ("", "", "")
    size = (int(width), int(height)) if width.isdigit() and height.isdigit() else None
    if size not in sizes:
        raise invalid_request(f"metadata.size is one of {', '.join(f'{w}*{h}' for w, h in sizes)}.",
                              "metadata.size")
    return size


def _own_media(wan: WanModel, given: object, first: str | None, neutral: dict) -> list[dict]:
    """metadata.media: DashScope's own list, passed on once checked (its types per model)."""
    if given is None:
        return []
    if first is not None or LAST_FRAME in neutral or REFERENCE_IMAGES in neutral:
        raise invalid_request("Give the images either in metadata.media or as image / last_frame / "
                              "reference_images, not both.", "metadata.media")
    if not isinstance(given, list) or not given:
        raise invalid_request('metadata.media is a list of {"type", "url"} objects.', "metadata.media")
    media = []
    for i, item in enumerate(given):
        where = f"metadata.media[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"].strip():
            raise invalid_request(f'{where} must be {{"type": ..., "url": ...}}.', where)
        if item.get("type") not in wan.media_types:
            raise invalid_request(f"{where}.type must be one of {', '.join(sorted(wan.media_types))}.",
                                  f"{where}.type")
        media.append(dict(item))
    return media


def _has_frame(media: list[dict]) -> bool:
    return any(item.get("type") in ("first_frame", "first_clip") for item in media)


def _first_frame(request: VideoRequest) -> str | None:
    if request.image and request.image_bytes is not None:
        raise invalid_request("Give the image either as a string or as an upload, not both.", "image")
    if request.image_bytes is not None:
        kind = (request.image_type or "").split(";")[0].strip().lower().replace("image/jpg", "image/jpeg")
        kind = kind if kind in IMAGE_TYPES else image_type(request.image_bytes)
        if kind is None:
            raise invalid_request("Wan takes a JPEG, PNG, BMP or WebP image.", "input_reference", "invalid_image")
        return f"data:{kind};base64,{base64.b64encode(request.image_bytes).decode('ascii')}"
    if request.image:
        return _image(request.image, "image")
    return None


def _image(value: object, param: str) -> str:
    """An image as DashScope takes it: an http(s) URL as is, a data: URI, bare base64 made one."""
    if not isinstance(value, str) or not value.strip():
        raise invalid_request("The image must be a URL, a data: URI or base64.", param, "invalid_image")
    value = value.strip()
    if value[:8].lower().startswith(("https://", "http://")):
        return value
    match = DATA_URI.match(value)
    if value[:5].lower() == "data:" and match is None:
        raise invalid_request("A data: URI image must be a base64-encoded image.", param, "invalid_image")
    data = value[match.end():] if match else value
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request("The image must be a URL, a data: URI or base64.", param, "invalid_image") from None
    kind = image_type(raw) or ("image/bmp" if raw[:2] == b"BM" else None)
    if kind is None or kind not in IMAGE_TYPES:
        raise invalid_request("Wan takes a JPEG, PNG, BMP or WebP image.", param, "invalid_image")
    return value if match else f"data:{kind};base64,{''.join(data.split())}"


def _references(value: object) -> list[str]:
    param = f"metadata.{REFERENCE_IMAGES}"
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_REFERENCES:
        raise invalid_request(f"{param} is a list of 1 to {MAX_REFERENCES} images.", param)
    return [_image(item, f"{param}[{i}]") for i, item in enumerate(value)]


def _text(values: dict, key: str) -> str | None:
    if key not in values:
        return None
    return _string(values[key], f"metadata.{key}")


def _string(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise invalid_request(f"{param} is text.", param)
    return value


def _flag(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_request(f"{param} is true or false.", param)
    return value


# -- task ------------------------------------------------------------------------------

def task_id_of(answer: object) -> str | None:
    output = answer.get("output") if isinstance(answer, dict) else None
    task_id = output.get("task_id") if isinstance(output, dict) else None
    return task_id if isinstance(task_id, str) and task_id else None


def to_state(answer: dict) -> TaskState:
    """A `GET /api/v1/tasks/{id}` answer in st-ai's four states. DashScope reports no
    progress, so a running task shows 0 until it ends."""
    output = answer.get("output")
    if not isinstance(output, dict):
        raise upstream_failed("DashScope answered without the task.")
    status = output.get("task_status")
    if status == "PENDING":
        return TaskState("queued", 0)
    if status == "RUNNING":
        return TaskState("in_progress", 0)
    if status == "SUCCEEDED":
        url = output.get("video_url")
        if not isinstance(url, str) or not url:
            return TaskState("failed", 0, "upstream_error", "DashScope reported success without a video.")
        return TaskState("completed", 100, video_url=url)
    if status == "FAILED":
        code = output.get("code") if isinstance(output.get("code"), str) else None
        message = output.get("message") if isinstance(output.get("message"), str) else "The task failed."
        return TaskState("failed", 0, failure_code(code), f"Wan: {message}" + (f" ({code})" if code else ""))
    if status == "CANCELED":
        return TaskState("failed", 0, "cancelled", "The task was cancelled at DashScope.")
    if status == "UNKNOWN":
        # DashScope keeps task ids for 24 hours; after that, or for an id it never had, it says UNKNOWN.
        return TaskState("failed", 0, "task_not_found", "DashScope no longer knows this task.")
    raise upstream_failed("DashScope answered with an unknown task status.")


def failure_code(code: str | None) -> str:
    lowered = (code or "").lower()
    if any(word in lowered for word in MODERATION_WORDS):
        return "moderation_blocked"
    if lowered.startswith("invalidparameter"):
        return "invalid_input"
    if lowered.startswith("internalerror"):
        return "internal_error"
    return "generation_failed"
