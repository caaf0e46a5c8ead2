"""Pure mapping between st-ai's provider-neutral video task and MiniMax's video API: the
`POST /v1/video_generation` body, and a `GET /v1/query/video_generation` answer as a
TaskState. No I/O here, so every rule can be tested on plain data."""
from __future__ import annotations

import base64
import binascii
import dataclasses
import re

from server.errors import invalid_request, upstream_failed
from server.media_types import image_type
from server.providers.hailuo import errors
from server.providers.hailuo.models import (FAST_PRETREATMENT, NOMINAL_SIZE, PROMPT_OPTIMIZER, HailuoModel,
                                            model_for)
from server.providers.interface import Prepared, TaskState, VideoRequest
from server.providers.video_shape import (FIRST_FRAME, LAST_FRAME, REFERENCE, REFERENCE_IMAGES, RESOLUTION,
                                          WATERMARK, nearest_duration, nearest_resolution, require_input,
                                          split_metadata)

PROVIDER = "MiniMax Hailuo"
MAX_PROMPT = 2000                   # characters, MiniMax's limit
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # MiniMax's limit for an input image
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)((?:;[^;,]*)*?);base64,", re.IGNORECASE)

QUEUED = ("Preparing", "Queueing")
FAILED = "Fail"
# MiniMax reports no progress: a task it is generating shows halfway until it ends.
PROCESSING_PROGRESS = 50


# -- request ---------------------------------------------------------------------------

def prepare(request: VideoRequest) -> Prepared:
    """The MiniMax body for a request, and what it really asks for. What MiniMax would
    refuse for a documented reason is refused here, before anything is sent."""
    model = model_for(request.model)
    caps = model.caps
    if request.seed is not None:
        raise invalid_request("MiniMax's video models take no seed.", "seed", "seed_not_supported")
    split = split_metadata(caps, request.metadata, PROVIDER)
    first = _first_frame(request)
    if first is not None:
        require_input(caps, FIRST_FRAME, PROVIDER, "image")
    elif model.image_required:
        raise invalid_request(f"MiniMax's {request.model} makes videos from an image: send one as `image`.",
                              "image", "image_required")
    last = _image(split.neutral[LAST_FRAME], f"metadata.{LAST_FRAME}") if LAST_FRAME in split.neutral else None
    references = _references(split.neutral.get(REFERENCE_IMAGES))
    if REFERENCE in caps.inputs and not references:
        raise invalid_request(f"MiniMax's {request.model} needs a picture of its subject in "
                              f"metadata.{REFERENCE_IMAGES}.", f"metadata.{REFERENCE_IMAGES}")

    prompt = request.prompt or ""
    if len(prompt) > MAX_PROMPT:
        raise invalid_request(f"MiniMax takes a prompt of at most {MAX_PROMPT} characters.", "prompt",
                              "prompt_too_long")
    if not prompt.strip() and first is None:
        raise invalid_request("A prompt is required to make a video from text.", "prompt", "prompt_required")

    duration, resolution = _fit(model, request, split.neutral.get(RESOLUTION), first is not None, last is not None)
    own = _own(model, split.own, last is not None)

    body: dict = {"model": request.model}
    if prompt:
        body["prompt"] = prompt
    if first is not None:
        body["first_frame_image"] = first
    if last is not None:
        body["last_frame_image"] = last
    if references:
        body["subject_reference"] = [{"type": "character", "image": references}]
    body["duration"] = int(duration)
    body["resolution"] = resolution
    body.update(own)
    if WATERMARK in split.neutral:
        if not isinstance(split.neutral[WATERMARK], bool):
            raise invalid_request("metadata.watermark is true or false.", f"metadata.{WATERMARK}")
        body["aigc_watermark"] = split.neutral[WATERMARK]

    # A text-to-video is 16:9 at the resolution; one from an image takes the image's shape,
    # which st-ai does not decode, so no size is claimed for it.
    width, height = NOMINAL_SIZE.get(resolution, (None, None)) if first is None else (None, None)
    asked = {"duration": int(duration), "resolution": resolution, "width": width, "height": height}
    return Prepared(body=body, asked=asked)


def _fit(model: HailuoModel, request: VideoRequest, asked_resolution: object, has_first: bool,
         has_last: bool) -> tuple[float, str]:
    """The duration and resolution nearest the request that MiniMax takes together (1080P
    only at 6 s; 512P only from an image; a last frame not at 512P). A resolution the
    client named is kept and the duration fitted to it; otherwise the duration is kept."""
    caps = model.caps
    if asked_resolution is not None and not isinstance(asked_resolution, str):
        raise invalid_request("metadata.resolution is a name such as \"768p\".", f"metadata.{RESOLUTION}")
    allowed = [r for r in caps.resolutions if has_first or r not in model.image_only_resolutions]
    if has_last and model.last_frame_resolutions:
        allowed = [r for r in allowed if r in model.last_frame_resolutions]
    duration = nearest_duration(caps, request.duration)
    if asked_resolution is not None:
        resolution = nearest_resolution(caps, None, None, asked_resolution)
        if resolution not in allowed:
            raise invalid_request(f"MiniMax's {request.model} takes no {resolution} for this request (512P is "
                                  f"for a video from a first frame alone); it takes {', '.join(allowed)}.",
                                  f"metadata.{RESOLUTION}")
        fitted = dataclasses.replace(caps, durations=model.durations_for(resolution))
        return nearest_duration(fitted, request.duration if request.duration is not None else duration), resolution
    together = [r for r in allowed if duration in model.durations_for(r)] or allowed
    default = caps.default_resolution if caps.default_resolution in together else together[0]
    fitted = dataclasses.replace(caps, resolutions=tuple(together), default_resolution=default)
    return duration, nearest_resolution(fitted, request.width, request.height)


def _own(model: HailuoModel, own: dict, has_last: bool) -> dict:
    fields = {}
    for key in (PROMPT_OPTIMIZER, FAST_PRETREATMENT):
        if key in own:
            if not isinstance(own[key], bool):
                raise invalid_request(f"metadata.{key} is true or false.", f"metadata.{key}")
            fields[key] = own[key]
    if FAST_PRETREATMENT in fields and has_last:
        raise invalid_request("MiniMax takes no fast_pretreatment for a video between a first and a last frame.",
                              f"metadata.{FAST_PRETREATMENT}")
    return fields


def _first_frame(request: VideoRequest) -> str | None:
    if request.image and request.image_bytes is not None:
        raise invalid_request("Give the image either as a string or as an upload, not both.", "image")
    if request.image_bytes is not None:
        return _data_uri(request.image_bytes, "input_reference")
    if request.image:
        return _image(request.image, "image")
    return None


def _references(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    param = f"metadata.{REFERENCE_IMAGES}"
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], str):
        raise invalid_request("MiniMax takes one picture of the subject in metadata.reference_images.", param)
    return [_image(value[0], f"{param}[0]")]


def _image(value: object, param: str) -> str:
    """An image as MiniMax takes it: a URL as is (MiniMax fetches it), else a base64
    data: URI of a JPEG, PNG or WebP image."""
    if not isinstance(value, str) or not value.strip():
        raise invalid_request("The image must be a URL, a data: URI or base64.", param, "invalid_image")
    value = value.strip()
    if value[:8].lower().startswith(("https://", "http://")):
        return value
    match = DATA_URI.match(value)
    if value[:5].lower() == "data:" and match is None:
        raise invalid_request("A data: URI image must be base64-encoded.", param, "invalid_image")
    encoded = value[match.end():] if match is not None else value
    try:
        raw = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request("The image must be an http(s) URL, a data: URI or base64.", param,
                              "invalid_image") from None
    return _data_uri(raw, param)


def _data_uri(raw: bytes, param: str) -> str:
    kind = image_type(raw[:16])
    if kind is None:
        raise invalid_request("MiniMax takes a JPEG, PNG or WebP image.", param, "invalid_image")
    if len(raw) > MAX_IMAGE_BYTES:
        raise invalid_request("MiniMax takes an image of at most 20 MB.", param, "image_too_large")
    return f"data:{kind};base64,{base64.b64encode(raw).decode('ascii')}"


# -- task ------------------------------------------------------------------------------

def to_state(answer: dict) -> TaskState:
    """A `GET /v1/query/video_generation` answer (its base_resp already found ok or a
    content-safety verdict) in st-ai's four states."""
    code, message = errors.base_resp(answer)
    if code in errors.SAFETY_CODES:
        return TaskState("failed", 0, "moderation_blocked", _said(message, code))
    status = answer.get("status")
    if status in QUEUED:
        return TaskState("queued", 0)
    if status == "Processing":
        return TaskState("in_progress", PROCESSING_PROGRESS)
    if status == "Success":
        if file_id(answer) is None:
            return TaskState("failed", 0, "upstream_error", "MiniMax reported success but named no file.")
        return TaskState("completed", 100)
    if status == FAILED:
        return TaskState("failed", 0, "generation_failed", _said(message, code))
    raise upstream_failed("MiniMax answered with an unknown task status.")


def file_id(answer: dict) -> str | None:
    """The finished video's file id (MiniMax writes it as a string, some answers as a number)."""
    value = answer.get("file_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value in ("", 0):
        return None
    return str(value)


def download_url(answer: dict) -> str | None:
    """The `download_url` of a `GET /v1/files/retrieve` answer."""
    file = answer.get("file")
    url = file.get("download_url") if isinstance(file, dict) else None
    return url if isinstance(url, str) and url else None


def _said(message: str | None, code: int | None) -> str:
    if code in errors.SAFETY_CODES:
        return "MiniMax blocked the video for sensitive content" + (f": {message}" if message else ".")
    # A failed task's base_resp may still say 0 "success": its words then say nothing.
    return "MiniMax failed to generate the video" + (f": {message}" if message and code else ".")
