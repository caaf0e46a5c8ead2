"""Pure mapping between st-ai's provider-neutral video task and Runway's API: the
request body (and which endpoint takes it) and Runway's task object as a TaskState.
No I/O here, so every rule can be tested on plain data.

The per-model rules follow Runway's SDK (runwayml/sdk-python and sdk-node, API version
2024-11-06): which endpoint a model is on, its ratios, its durations and which extra
fields it takes. A model Runway does not list for an endpoint is refused here, before
anything is sent, because its ratio and duration could not be chosen honestly; so is a
retired one (gen3a_turbo, end of life 2026-07-30, gone from the SDK's models)."""
from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from server.errors import invalid_request, upstream_failed
from server.media_types import image_type
from server.providers.interface import Prepared, TaskState, VideoRequest
from server.providers.video_shape import (ASPECT_RATIO, AUDIO, FIRST_FRAME, INPUT_LAST_FRAME, LAST_FRAME,
                                          NEGATIVE_PROMPT, TEXT, VideoCapabilities, nearest_aspect_ratio,
                                          nearest_duration, nearest_fps, split_metadata)

IMAGE_TO_VIDEO = "/v1/image_to_video"
TEXT_TO_VIDEO = "/v1/text_to_video"

MAX_PROMPT_UTF16 = 1000          # "up to 1000 characters (measured in UTF-16 code units)"
MAX_DATA_URI = 5 * 1024 * 1024   # the SDK: "base64 data URI (...up to 5MB)"
MAX_SEED = 4294967295
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")  # what Runway takes as promptImage
DATA_URI = re.compile(r"^data:(image/(?:jpeg|jpg|png|webp));base64,[A-Za-z0-9+/=\s]+$", re.IGNORECASE)

GEN4_RATIOS = ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672")
VEO_RATIOS = ("1280:720", "720:1280", "1080:1920", "1920:1080")


@dataclass(frozen=True)
class Mode:
    """What one endpoint takes for one model."""
    ratios: tuple[str, ...]          # the first is the default
    durations: tuple[int, ...]
    default_duration: int
    extras: frozenset[str] = frozenset()  # Runway fields a client may pass in metadata
    seed: bool = True
    positions: tuple[str, ...] = ("first",)  # promptImage positions the model takes
    prompt_required: bool = False


@dataclass(frozen=True)
class Model:
    image: Mode | None               # POST /v1/image_to_video
    text: Mode | None                # POST /v1/text_to_video
    fps: int = 24                    # Runway's outputs are 24 fps; it takes no fps parameter


MODERATION = frozenset({"contentModeration"})
VEO_EXTRAS = frozenset({"audio", "negativePrompt"})
_VEO31_IMAGE = Mode(VEO_RATIOS, (4, 6, 8), 8, VEO_EXTRAS, seed=False, positions=("first", "last"))
_VEO31_TEXT = Mode(VEO_RATIOS, (4, 6, 8), 8, VEO_EXTRAS, seed=False, prompt_required=True)
_GEN45_DURATIONS = tuple(range(2, 11))

MODELS: dict[str, Model] = {
    "gen4_turbo": Model(image=Mode(GEN4_RATIOS, (5, 10), 5, MODERATION), text=None),
    "gen4.5": Model(image=Mode(GEN4_RATIOS, _GEN45_DURATIONS, 5, MODERATION, prompt_required=True),
                    text=Mode(("1280:720", "720:1280"), _GEN45_DURATIONS, 5, MODERATION,
                              prompt_required=True)),
    "veo3": Model(image=Mode(VEO_RATIOS, (8,), 8, seed=False),
                  text=Mode(VEO_RATIOS, (8,), 8, seed=False, prompt_required=True)),
    "veo3.1": Model(image=_VEO31_IMAGE, text=_VEO31_TEXT),
    "veo3.1_fast": Model(image=_VEO31_IMAGE, text=_VEO31_TEXT),
}

# metadata keys st-ai itself reads (not sent as-is): an exact Runway ratio, and the
# promptImage array form ([{"uri", "position"}]) for first/last frames.
OWN_KEYS = frozenset({"ratio", "promptImage"})
# Runway's extras that are neutral metadata keys elsewhere ("audio" has the same name).
NEUTRAL_EXTRAS = {"negativePrompt": NEGATIVE_PROMPT, "audio": AUDIO}
# Runway's ratios are output sizes in pixels; the shapes clients name them by (metadata
# `aspect_ratio`), as Runway's documentation does.
RATIO_SHAPES = {"1280:720": "16:9", "1920:1080": "16:9", "720:1280": "9:16", "1080:1920": "9:16",
                "1104:832": "4:3", "832:1104": "3:4", "960:960": "1:1", "1584:672": "21:9"}


def _unique(values) -> tuple:
    return tuple(dict.fromkeys(values))


def capabilities(name: str) -> VideoCapabilities | None:
    """What one Runway model takes, over both its endpoints; None for a name Runway has not."""
    model = MODELS.get(name)
    if model is None:
        return None
    modes = [mode for mode in (model.text, model.image) if mode is not None]
    ratios = _unique(r for mode in modes for r in mode.ratios)
    extras = frozenset().union(*(mode.extras for mode in modes))
    last = model.image is not None and "last" in model.image.positions
    inputs = (TEXT,) + ((FIRST_FRAME,) if model.image else ()) + ((INPUT_LAST_FRAME,) if last else ())
    neutral = {ASPECT_RATIO} | {NEUTRAL_EXTRAS[e] for e in extras if e in NEUTRAL_EXTRAS}
    return VideoCapabilities(
        durations=tuple(sorted({d for mode in modes for d in mode.durations})),
        aspect_ratios=_unique(RATIO_SHAPES[r] for r in ratios),
        sizes=tuple(tuple(int(n) for n in r.split(":")) for r in ratios), fps=(model.fps,), inputs=inputs,
        neutral=frozenset(neutral | ({LAST_FRAME} if last else set())),
        own=OWN_KEYS | (extras - NEUTRAL_EXTRAS.keys()), default_duration=modes[0].default_duration)


def _fitting(mode: Mode, fps: int) -> VideoCapabilities:
    """One endpoint's values, its ratios as the shapes fitting chooses among."""
    return VideoCapabilities(durations=mode.durations, aspect_ratios=mode.ratios, fps=(fps,),
                             default_duration=mode.default_duration, default_aspect_ratio=mode.ratios[0])


# -- request ---------------------------------------------------------------------------

def endpoint_for(body: dict) -> str:
    """Which endpoint takes a prepared body. Derived from the body itself, so submit
    needs nothing beside it: only image-to-video bodies carry promptImage."""
    return IMAGE_TO_VIDEO if "promptImage" in body else TEXT_TO_VIDEO


def prepare(request: VideoRequest) -> Prepared:
    model = MODELS.get(request.model)
    if model is None:
        raise invalid_request(f"Runway has no video model '{request.model[:100]}'; it offers "
                              f"{', '.join(MODELS)}.", "model", "model_not_supported")
    caps = capabilities(request.model)
    split = split_metadata(caps, request.metadata or {}, f"Runway {request.model}")
    metadata = {**split.own, **{runway: split.neutral[key] for runway, key in NEUTRAL_EXTRAS.items()
                                if key in split.neutral}}
    image = _with_last_frame(_prompt_image(request, metadata), split.neutral.get(LAST_FRAME))
    mode = model.image if image is not None else model.text
    if mode is None and image is None:
        raise invalid_request(f"Runway's {request.model} makes videos from an image only; send an image.",
                              "image", "image_required")
    if mode is None:
        raise invalid_request(f"Runway's {request.model} makes videos from text only; it takes no image.",
                              "image", "image_not_supported")
    _check_metadata(request.model, mode, metadata)

    body: dict = {"model": request.model}
    if image is not None:
        body["promptImage"] = _check_positions(request.model, mode, image)
    prompt = request.prompt or ""
    if prompt.strip():
        if len(prompt.encode("utf-16-le")) // 2 > MAX_PROMPT_UTF16:
            raise invalid_request(f"Runway takes a prompt of at most {MAX_PROMPT_UTF16} characters.",
                                  "prompt", "prompt_too_long")
        body["promptText"] = prompt
    elif mode.prompt_required:
        raise invalid_request(f"Runway's {request.model} needs a prompt.", "prompt", "prompt_required")
    fitting = _fitting(mode, model.fps)
    ratio = _ratio(fitting, request, metadata, split.neutral.get(ASPECT_RATIO))
    body["ratio"] = ratio
    duration = int(nearest_duration(fitting, request.duration))
    body["duration"] = duration
    if request.seed is not None:
        if not mode.seed:
            raise invalid_request(f"Runway's {request.model} takes no seed.", "seed", "seed_not_supported")
        if not 0 <= request.seed <= MAX_SEED:
            raise invalid_request(f"Runway takes a seed from 0 to {MAX_SEED}.", "seed")
        body["seed"] = request.seed
    for key in sorted(mode.extras & metadata.keys()):
        body[key] = metadata[key]

    width, height = (int(n) for n in ratio.split(":"))
    nearest_fps(fitting, request.fps)  # Runway renders 24 fps whatever is asked; a bad value is still a 400
    return Prepared(body=body, asked={"duration": duration, "width": width, "height": height, "ratio": ratio,
                                      "fps": model.fps})


def _with_last_frame(image: str | list[dict] | None, last: object) -> str | list[dict] | None:
    """The neutral `last_frame` as Runway's promptImage array: [first, last] or [last]."""
    if last is None:
        return image
    if not isinstance(last, str) or not last.strip():
        raise invalid_request("metadata.last_frame is an image URL or base64.", f"metadata.{LAST_FRAME}")
    if isinstance(image, list):
        raise invalid_request("Send the last frame either in metadata.promptImage or as metadata.last_frame, "
                              "not both.", f"metadata.{LAST_FRAME}")
    frames = [{"uri": image, "position": "first"}] if image is not None else []
    return frames + [{"uri": _image_uri(last, f"metadata.{LAST_FRAME}"), "position": "last"}]


def _prompt_image(request: VideoRequest, metadata: dict) -> str | list[dict] | None:
    """The image as Runway takes it: an HTTPS URL or a data: URI, or the array form."""
    given = metadata.get("promptImage")
    if given is not None and (request.image or request.image_bytes):
        raise invalid_request("Send the image either as the image or as metadata.promptImage, not both.",
                              "metadata.promptImage")
    if request.image_bytes is not None:
        kind = (request.image_type or "").split(";")[0].strip().lower().replace("image/jpg", "image/jpeg")
        kind = kind if kind in IMAGE_TYPES else image_type(request.image_bytes)
        if kind is None:
            raise invalid_request("Runway takes a JPEG, PNG or WebP image.", "input_reference",
                                  "invalid_image")
        return _data_uri(kind, request.image_bytes, "input_reference")
    if request.image:
        return _image_uri(request.image, "image")
    if given is None:
        return None
    if isinstance(given, str):
        return _image_uri(given, "metadata.promptImage")
    if not isinstance(given, list) or not 1 <= len(given) <= 2:
        raise invalid_request("metadata.promptImage is an image, or a list of one or two "
                              '{"uri", "position"} objects.', "metadata.promptImage")
    frames = []
    for i, frame in enumerate(given):
        where = f"metadata.promptImage[{i}]"
        if not isinstance(frame, dict) or set(frame) != {"uri", "position"} \
                or not isinstance(frame["uri"], str) or frame["position"] not in ("first", "last"):
            raise invalid_request(f'{where} must be {{"uri": ..., "position": "first" | "last"}}.', where)
        frames.append({"uri": _image_uri(frame["uri"], f"{where}.uri"), "position": frame["position"]})
    return frames


def _check_positions(model: str, mode: Mode, image: str | list[dict]) -> str | list[dict]:
    if isinstance(image, list):
        positions = [frame["position"] for frame in image]
        if len(set(positions)) != len(positions):
            raise invalid_request("metadata.promptImage names the same position twice.", "metadata.promptImage")
        for i, position in enumerate(positions):
            if position not in mode.positions:
                raise invalid_request(f"Runway's {model} takes no '{position}' frame.",
                                      f"metadata.promptImage[{i}].position")
    return image


def _image_uri(value: str, param: str) -> str:
    value = value.strip()
    lowered = value[:16].lower()
    if lowered.startswith(("https://", "runway://")):
        return value
    if lowered.startswith("http://"):
        raise invalid_request("Runway fetches images over HTTPS only.", param, "invalid_image_url")
    if lowered.startswith("data:"):
        if not DATA_URI.match(value):
            raise invalid_request("Runway takes a base64 data: URI of a JPEG, PNG or WebP image.", param,
                                  "invalid_image")
        if len(value) > MAX_DATA_URI:
            raise invalid_request("Runway takes a data: URI image of at most 5 MB; send a URL instead.",
                                  param, "image_too_large")
        return value
    try:  # bare base64, as some clients send it
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    kind = image_type(raw)
    if kind is None:
        raise invalid_request("The image is not an HTTPS URL, a data: URI or base64 of a JPEG, PNG or "
                              "WebP image.", param, "invalid_image")
    return _data_uri(kind, raw, param)


def _data_uri(kind: str, raw: bytes, param: str) -> str:
    uri = f"data:{kind};base64,{base64.b64encode(raw).decode('ascii')}"
    if len(uri) > MAX_DATA_URI:
        raise invalid_request("Runway takes an inline image of at most 5 MB (as base64); send a URL "
                              "instead.", param, "image_too_large")
    return uri




def _check_metadata(model: str, mode: Mode, metadata: dict) -> None:
    known = OWN_KEYS | mode.extras
    for key in metadata:
        if key not in known:
            raise invalid_request(f"Runway's {model} takes no parameter '{str(key)[:100]}' here; it takes "
                                  f"{', '.join(sorted(known))}.", f"metadata.{str(key)[:100]}",
                                  "unknown_parameter")
    moderation = metadata.get("contentModeration")
    if "contentModeration" in metadata and not (
            isinstance(moderation, dict) and set(moderation) <= {"publicFigureThreshold"}
            and moderation.get("publicFigureThreshold", "auto") in ("auto", "low")):
        raise invalid_request('metadata.contentModeration is {"publicFigureThreshold": "auto" | "low"}.',
                              "metadata.contentModeration")
    if "audio" in metadata and not isinstance(metadata["audio"], bool):
        raise invalid_request("metadata.audio is true or false.", "metadata.audio")
    if "negativePrompt" in metadata and not isinstance(metadata["negativePrompt"], str):
        raise invalid_request("metadata.negativePrompt is text.", "metadata.negativePrompt")


def _ratio(fitting: VideoCapabilities, request: VideoRequest, metadata: dict, shape: object) -> str:
    if "ratio" in metadata:
        if metadata["ratio"] not in fitting.aspect_ratios:
            raise invalid_request(f"Runway's {request.model} takes a ratio of {', '.join(fitting.aspect_ratios)}.",
                                  "metadata.ratio")
        return metadata["ratio"]
    if shape is not None:
        ratios = [r for r in fitting.aspect_ratios if RATIO_SHAPES.get(r) == shape]
        if not ratios:
            shapes = _unique(RATIO_SHAPES[r] for r in fitting.aspect_ratios)
            raise invalid_request(f"Runway's {request.model} takes here the aspect ratios {', '.join(shapes)}.",
                                  f"metadata.{ASPECT_RATIO}")
        # the asked size, if any, chooses among the sizes of that shape
        return nearest_aspect_ratio(VideoCapabilities(aspect_ratios=tuple(ratios)), request.width, request.height)
    return nearest_aspect_ratio(fitting, request.width, request.height)


# -- task ------------------------------------------------------------------------------

def to_state(task: dict) -> TaskState:
    """A `GET /v1/tasks/{id}` answer in st-ai's four states."""
    status = task.get("status")
    updated = parse_time(task.get("createdAt"))  # Runway reports no later timestamp
    if status in ("PENDING", "THROTTLED"):
        return TaskState("queued", 0, updated_at=updated)
    if status == "RUNNING":
        return TaskState("in_progress", _percent(task.get("progress")), updated_at=updated)
    if status == "SUCCEEDED":
        output = task.get("output")
        if not isinstance(output, list) or not output or not isinstance(output[0], str):
            return TaskState("failed", 0, "upstream_error", "Runway reported success but gave no video.",
                             updated_at=updated)
        return TaskState("completed", 100, video_url=output[0], updated_at=updated)
    if status == "FAILED":
        code = task.get("failureCode") if isinstance(task.get("failureCode"), str) else None
        reason = task.get("failure") if isinstance(task.get("failure"), str) else "The task failed."
        message = f"Runway: {reason}" + (f" ({code})" if code else "")
        return TaskState("failed", 0, failure_code(code), message, updated_at=updated)
    if status == "CANCELLED":
        return TaskState("failed", 0, "cancelled", "The task was cancelled at Runway.", updated_at=updated)
    raise upstream_failed("Runway answered with an unknown task status.")


def failure_code(code: str | None) -> str:
    """Runway's dot-separated failureCode (generic first) as st-ai's error code."""
    parts = (code or "").upper().split(".")
    if "SAFETY" in parts:  # SAFETY.INPUT.TEXT, SAFETY.OUTPUT.*, INPUT_PREPROCESSING.SAFETY.TEXT
        return "moderation_blocked"
    if parts[0] == "ASSET":
        return "invalid_input"
    if "INTERNAL" in parts:
        return "internal_error"
    return "generation_failed"


def _percent(progress: object) -> int:
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not math.isfinite(progress):
        return 0
    # 99 at most: 100 is said only once Runway reports SUCCEEDED.
    return max(0, min(99, int(progress * 100)))


def parse_time(value: object) -> int | None:
    """Runway's ISO-8601 timestamps ("2024-06-27T19:49:32.334Z") as Unix seconds."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:  # Runway writes UTC; a bare time is taken as UTC too
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())

