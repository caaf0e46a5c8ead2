"""Pure mapping between st-ai's provider-neutral video task and Ark's content generation
task: the request body (`model`, the `content` list, ratio, duration, resolution, ...)
and Ark's task object as a TaskState. No I/O here.

Images go to Ark as they came: a URL as is (Ark fetches it; st-ai never does), base64
as the `data:image/<format>;base64,` URI Ark requires."""
from __future__ import annotations

import base64
import binascii
import math
import re

from server.errors import invalid_request, upstream_failed
from server.providers import video_shape as vs
from server.providers.interface import Prepared, TaskState, VideoRequest
from server.providers.seedance import models

MAX_SEED = 2**32 - 1
SERVICE_TIERS = ("default", "flex")
EXPIRY_RANGE = (3600, 259200)        # execution_expires_after, seconds
DATA_URI = re.compile(r"^data:image/([\w.+-]+);base64,", re.IGNORECASE)
FORMATS = frozenset({"jpeg", "jpg", "png", "webp", "bmp", "tiff", "gif", "heic", "heif"})
# Magic numbers of the formats Ark takes, to name a bare base64 image's format.
_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF8", "gif"), (b"BM", "bmp"),
          (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"))

# Progress: Ark reports none; estimated from the time running, never above 95 before success.
PROGRESS_TAU = 60.0
PROGRESS_CAP = 95
# Ark's error codes (and words) for content-safety refusals.
SAFETY_MARKS = ("sensitivecontent", "riskdetection", "sensitive", "risk")


# -- request ---------------------------------------------------------------------------

def _sniff(raw: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if raw.startswith(magic):
            return kind
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "webp"
    if raw[4:8] == b"ftyp" and raw[8:12] in (b"heic", b"heix", b"mif1"):
        return "heic"
    return None


def _decoded(value: str, param: str) -> bytes:
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request("The image must be an http(s) URL, a data: URI or base64.", param) from None
    if not raw:
        raise invalid_request("The image is empty.", param)
    return raw


def image_url(value: object, param: str) -> str:
    """An image as Ark takes it: an http(s) URL as is, or a data:image/<format>;base64, URI."""
    if not isinstance(value, str) or not value.strip():
        raise invalid_request("The image must be an http(s) URL, a data: URI or base64.", param)
    value = value.strip()
    if value.startswith(("http://", "https://")):
        return value
    match = DATA_URI.match(value)
    if match is not None:
        if match.group(1).lower() not in FORMATS:
            raise invalid_request(f"Seedance does not take {match.group(1)} images.", param)
        _decoded(value[match.end():], param)
        return value
    if value[:5].lower() == "data:":
        raise invalid_request("A data: URI image must be a base64-encoded image.", param)
    raw = _decoded(value, param)
    kind = _sniff(raw)
    if kind is None:
        raise invalid_request("The image is not a JPEG, PNG, WebP, BMP, TIFF, GIF or HEIC picture.", param)
    return f"data:image/{kind};base64,{base64.b64encode(raw).decode('ascii')}"


def _upload(data: bytes, content_type: str | None) -> str:
    if not data:
        raise invalid_request("The uploaded image is empty.", "input_reference")
    kind = (content_type or "").lower().removeprefix("image/")
    if kind not in FORMATS:
        kind = _sniff(data) or ""
    if kind not in FORMATS:
        raise invalid_request(f"Seedance does not take {content_type or 'this kind of'} images.", "input_reference")
    return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"


def _first_frame(request: VideoRequest) -> str | None:
    if request.image and request.image_bytes is not None:
        raise invalid_request("Give the image either as a string or as an upload, not both.", "image")
    if request.image_bytes is not None:
        return _upload(request.image_bytes, request.image_type)
    return image_url(request.image, "image") if request.image else None


def _image_item(url: str, role: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}, "role": role}


def _references(value: object, limit: int) -> list[str]:
    param = f"metadata.{vs.REFERENCE_IMAGES}"
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise invalid_request("metadata.reference_images must be a list of image URLs or base64.", param)
    if len(items) > limit:
        raise invalid_request(f"This Seedance model takes at most {limit} reference images.", param)
    return [image_url(item, f"{param}[{i}]") for i, item in enumerate(items)]


def _flag(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_request(f"{param} must be true or false.", param)
    return value


def _own(own: dict) -> dict:
    fields: dict = {}
    if "camera_fixed" in own:
        fields["camera_fixed"] = _flag(own["camera_fixed"], "metadata.camera_fixed")
    if "service_tier" in own:
        if own["service_tier"] not in SERVICE_TIERS:
            raise invalid_request("metadata.service_tier must be default or flex.", "metadata.service_tier")
        fields["service_tier"] = own["service_tier"]
    if "execution_expires_after" in own:
        value = own["execution_expires_after"]
        low, high = EXPIRY_RANGE
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
                or not float(value).is_integer():
            raise invalid_request(f"metadata.execution_expires_after must be whole seconds from {low} to {high}.",
                                  "metadata.execution_expires_after")
        fields["execution_expires_after"] = int(value)
    return fields


def _ratio(caps: vs.VideoCapabilities, request: VideoRequest, asked: object, has_image: bool) -> str:
    if asked == models.ADAPTIVE:
        return models.ADAPTIVE
    if asked is not None and not isinstance(asked, str):
        raise invalid_request("metadata.aspect_ratio must be a ratio such as 16:9.", f"metadata.{vs.ASPECT_RATIO}")
    if asked is None and has_image and not (request.width and request.height):
        # no shape asked: the video takes the first frame's, as Ark does by default
        return models.ADAPTIVE
    return vs.nearest_aspect_ratio(caps, request.width, request.height, asked)


def prepare(request: VideoRequest) -> Prepared:
    """The Ark body for a request, and what it really asks for. What Ark would refuse for
    a documented reason is refused here, before anything is sent."""
    model = models.lookup(request.model) or models.GENERAL
    caps = model.caps
    meta = vs.split_metadata(caps, request.metadata, "Seedance")
    first = _first_frame(request)
    if first is not None:
        vs.require_input(caps, vs.FIRST_FRAME, "Seedance", "image" if request.image else "input_reference")
    last = meta.neutral.get(vs.LAST_FRAME)
    references = meta.neutral.get(vs.REFERENCE_IMAGES)
    if last is not None and first is None:
        raise invalid_request("A last frame needs a first frame (the image).", f"metadata.{vs.LAST_FRAME}")
    if references is not None and (first is not None or last is not None):
        raise invalid_request("Seedance takes reference images or first/last frames, not both.",
                              f"metadata.{vs.REFERENCE_IMAGES}")
    if model.needs_image and first is None and references is None:
        raise invalid_request(f"The Seedance model '{request.model}' needs an input image.", "image")
    prompt = request.prompt if request.prompt and request.prompt.strip() else ""
    if not prompt and first is None and references is None:
        raise invalid_request("A prompt is required to make a video from text.", "prompt")
    if request.seed is not None and not -1 <= request.seed <= MAX_SEED:
        raise invalid_request(f"The seed must be from -1 to {MAX_SEED}.", "seed")

    content: list[dict] = [{"type": "text", "text": prompt}] if prompt else []
    if first is not None:
        content.append(_image_item(first, "first_frame"))
    if last is not None:
        content.append(_image_item(image_url(last, f"metadata.{vs.LAST_FRAME}"), "last_frame"))
    if references is not None:
        content += [_image_item(url, "reference_image") for url in _references(references, model.max_references)]

    duration = vs.nearest_duration(caps, request.duration)
    ratio = _ratio(caps, request, meta.neutral.get(vs.ASPECT_RATIO), first is not None)
    resolution = vs.nearest_resolution(caps, request.width, request.height, meta.neutral.get(vs.RESOLUTION))
    vs.nearest_fps(caps, request.fps)  # checks a given fps; Ark renders 24 whatever was asked

    # Explicit values rather than Ark's defaults, so `asked` states what Ark was asked.
    body: dict = {"model": request.model, "content": content, "ratio": ratio, "duration": int(duration),
                  "resolution": resolution}
    if request.seed is not None:
        body["seed"] = request.seed
    if vs.WATERMARK in meta.neutral:
        body["watermark"] = _flag(meta.neutral[vs.WATERMARK], f"metadata.{vs.WATERMARK}")
    if vs.AUDIO in meta.neutral:
        body["generate_audio"] = _flag(meta.neutral[vs.AUDIO], f"metadata.{vs.AUDIO}")
    body.update(_own(meta.own))

    width, height = models.nominal_size(resolution, ratio) or (None, None)
    asked = {"duration": float(int(duration)), "width": width, "height": height, "fps": models.FPS[0],
             "aspect_ratio": ratio, "resolution": resolution}
    for neutral, field in ((vs.WATERMARK, "watermark"), (vs.AUDIO, "generate_audio")):
        if field in body:
            asked[neutral] = body[field]
    if request.seed is not None:
        asked["seed"] = request.seed
    return Prepared(body=body, asked=asked)


# -- task state ------------------------------------------------------------------------

def is_safety_failure(code: str, message: str) -> bool:
    text = f"{code} {message}".lower().replace(" ", "")
    return any(mark in text for mark in SAFETY_MARKS)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def estimated_progress(created_at: object, now: float) -> int:
    start = _int(created_at)
    if start is None:
        return 0
    elapsed = max(0.0, now - start)
    return min(PROGRESS_CAP, int(PROGRESS_CAP * (1 - math.exp(-elapsed / PROGRESS_TAU))))


def usage(task: dict) -> dict | None:
    """The tokens Ark reports it used for the task (what Ark bills)."""
    raw = task.get("usage")
    if not isinstance(raw, dict):
        return None
    counted = {k: raw[k] for k in ("completion_tokens", "total_tokens") if _int(raw.get(k)) is not None}
    return counted or None


def to_state(task: dict, now: float) -> TaskState:
    """Ark's task object as st-ai's TaskState."""
    status = task.get("status")
    updated = _int(task.get("updated_at"))
    if status == "queued":
        return TaskState("queued", 0, updated_at=updated)
    if status == "running":
        return TaskState("in_progress", estimated_progress(task.get("created_at"), now), updated_at=updated)
    if status == "succeeded":
        url = (task.get("content") or {}).get("video_url") if isinstance(task.get("content"), dict) else None
        if not isinstance(url, str) or not url:
            return TaskState("failed", 0, "upstream_error", "Seedance reported success without a video.",
                             updated_at=updated)
        return TaskState("completed", 100, video_url=url, updated_at=updated, usage=usage(task))
    if status in ("failed", "cancelled", "expired"):
        error = task.get("error") if isinstance(task.get("error"), dict) else {}
        code = error.get("code") if isinstance(error.get("code"), str) else ""
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        if status == "cancelled":
            return TaskState("failed", 0, "cancelled", message or "The task was cancelled upstream.",
                             updated_at=updated)
        if status == "expired":
            return TaskState("failed", 0, "timeout", message or "Ark gave the task up: it expired before it ran.",
                             updated_at=updated)
        kind = "moderation_blocked" if is_safety_failure(code, message) else "generation_failed"
        return TaskState("failed", 0, kind, message or f"Seedance failed to generate the video ({code or 'no code'}).",
                         updated_at=updated)
    raise upstream_failed("Seedance answered with an unknown task status.")
