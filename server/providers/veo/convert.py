"""Pure mapping between st-ai's provider-neutral video task and the Gemini API's Veo
calls: the `predictLongRunning` body, and a long-running operation as a TaskState.
No I/O here, so every rule can be tested on plain data."""
from __future__ import annotations

import math
import re

from server.errors import invalid_request
from server.providers import failures
from server.providers import video_shape as shape
from server.providers.interface import Prepared, TaskState, VideoRequest
from server.providers.veo import images, models

PERSON_GENERATION_VALUES = ("allow_all", "allow_adult", "dont_allow")
# Pixel sizes of what Veo renders, per resolution, for 16:9 (9:16 swaps them).
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}

# Progress: the operation carries none, so it is estimated from the time since submission
# (Veo takes one to six minutes), never above 95 until the operation is done.
PROGRESS_TAU = 90.0
PROGRESS_CAP = 95

OPERATION = re.compile(r"models/[A-Za-z0-9][A-Za-z0-9._-]{0,127}/operations/[A-Za-z0-9][A-Za-z0-9_-]{0,255}")

# Words of an operation error that mean a safety block rather than a failure.
SAFETY_WORDS = ("safety", "responsible ai", "rai ", "blocked", "policy", "prohibited", "sensitive")


# -- request ---------------------------------------------------------------------------

def to_veo(request: VideoRequest, base_url: str) -> Prepared:
    """The body for `models/{model}:predictLongRunning` (under "model" the model, which
    goes in the path) and what it really asks. Refuses only what no Veo call could do."""
    caps = models.rules(request.model)
    if request.seed is not None:
        raise invalid_request("Veo on the Gemini API takes no seed.", "seed", "seed_not_supported")
    meta = shape.split_metadata(caps, request.metadata, "Veo")
    neutral, own = meta.neutral, meta.own

    instance: dict = {"prompt": request.prompt}
    first = _first_frame(request, base_url)
    if first is not None:
        shape.require_input(caps, shape.FIRST_FRAME, "Veo", "image" if request.image else "input_reference")
        instance["image"] = first
    if shape.LAST_FRAME in neutral:
        if first is None:
            raise invalid_request("Veo takes a last frame only together with a first frame (the image).",
                                  f"metadata.{shape.LAST_FRAME}")
        instance["lastFrame"] = images.parse(neutral[shape.LAST_FRAME], f"metadata.{shape.LAST_FRAME}", base_url)
    references = _references(neutral.get(shape.REFERENCE_IMAGES), base_url)
    if references:
        if first is not None:
            raise invalid_request("Veo takes reference images or a first frame, not both.",
                                  f"metadata.{shape.REFERENCE_IMAGES}")
        instance["referenceImages"] = references

    ratio = shape.nearest_aspect_ratio(caps, request.width, request.height,
                                       _text(neutral, shape.ASPECT_RATIO))
    resolution = shape.nearest_resolution(caps, request.width, request.height,
                                          _text(neutral, shape.RESOLUTION))
    duration = shape.nearest_duration(caps, request.duration, prefer_longer=False)
    if references:
        # Veo renders reference-guided videos only as 8 s landscape ones.
        if shape.ASPECT_RATIO in neutral and ratio != "16:9":
            raise invalid_request("Veo takes reference images only for 16:9 videos.", f"metadata.{shape.ASPECT_RATIO}")
        ratio, duration = "16:9", models.LONG_ONLY_DURATION
    if resolution in models.LONG_ONLY_RESOLUTIONS:
        duration = models.LONG_ONLY_DURATION

    parameters: dict = {"aspectRatio": ratio, "durationSeconds": int(duration)}
    if resolution is not None:
        parameters["resolution"] = resolution
    if shape.NEGATIVE_PROMPT in neutral:
        parameters["negativePrompt"] = _text(neutral, shape.NEGATIVE_PROMPT)
    parameters.update(_own(own))

    width, height = SIZES[resolution or "720p"]
    if ratio == "9:16":
        width, height = height, width
    asked = {"duration": float(duration), "width": width, "height": height, "aspect_ratio": ratio,
             "fps": models.FPS}
    if resolution is not None:
        asked["resolution"] = resolution
    return Prepared(body={"model": request.model, "instances": [instance], "parameters": parameters}, asked=asked)


def wire_body(body: dict) -> dict:
    """What is POSTed: the prepared body without the model, which names the path."""
    return {"instances": body["instances"], "parameters": body["parameters"]}


def _first_frame(request: VideoRequest, base_url: str) -> dict | None:
    if request.image and request.image_bytes:
        raise invalid_request("Give the image either as a string or as an upload, not both.", "image")
    if request.image_bytes is not None:
        return images.inline(request.image_bytes, "input_reference")
    if request.image:
        return images.parse(request.image, "image", base_url)
    return None


def _references(value: object, base_url: str) -> list[dict]:
    if value is None:
        return []
    where = f"metadata.{shape.REFERENCE_IMAGES}"
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not 1 <= len(value) <= models.MAX_REFERENCE_IMAGES:
        raise invalid_request(f"{where} is a list of 1 to {models.MAX_REFERENCE_IMAGES} images.", where)
    # "asset" (the subject to keep): the Gemini API takes no "style" references.
    return [{"image": images.parse(item, f"{where}[{i}]", base_url), "referenceType": "asset"}
            for i, item in enumerate(value)]


def _text(values: dict, key: str) -> str | None:
    value = values.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_request(f"metadata.{key} is text.", f"metadata.{key}")
    return value


def _own(own: dict) -> dict:
    if models.PERSON_GENERATION in own and own[models.PERSON_GENERATION] not in PERSON_GENERATION_VALUES:
        raise invalid_request(f"metadata.{models.PERSON_GENERATION} is one of "
                              f"{', '.join(PERSON_GENERATION_VALUES)}.", f"metadata.{models.PERSON_GENERATION}")
    if models.ENHANCE_PROMPT in own and not isinstance(own[models.ENHANCE_PROMPT], bool):
        raise invalid_request(f"metadata.{models.ENHANCE_PROMPT} is true or false.",
                              f"metadata.{models.ENHANCE_PROMPT}")
    return dict(own)


# -- operation -------------------------------------------------------------------------

def estimated_progress(submitted_at: float | None, now: float) -> int:
    if submitted_at is None:
        return 0
    elapsed = max(0.0, now - submitted_at)
    return min(PROGRESS_CAP, int(PROGRESS_CAP * (1 - math.exp(-elapsed / PROGRESS_TAU))))


def to_state(operation: dict, submitted_at: float | None, now: float) -> TaskState:
    """A `GET /v1beta/{operation name}` answer as st-ai's TaskState."""
    if not operation.get("done"):
        return TaskState("in_progress", estimated_progress(submitted_at, now))
    error = operation.get("error")
    if isinstance(error, dict):
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        code = "moderation_blocked" if is_safety_failure(message) else "generation_failed"
        return TaskState("failed", 0, code, f"Veo: {message or 'the video could not be generated.'}")
    answer = (operation.get("response") or {}).get("generateVideoResponse")
    if not isinstance(answer, dict):
        return TaskState("failed", 0, "upstream_error", "Veo finished without a video.")
    samples = answer.get("generatedSamples")
    uri = _first_uri(samples)
    if uri is not None:
        return TaskState("completed", 100, video_url=uri)
    filtered = answer.get("raiMediaFilteredCount")
    if isinstance(filtered, int) and not isinstance(filtered, bool) and filtered > 0:
        reasons = [r for r in answer.get("raiMediaFilteredReasons") or () if isinstance(r, str) and r.strip()]
        said = " ".join(reasons) or "the result was withheld."
        return TaskState("failed", 0, "moderation_blocked",
                         f"Veo's safety filters blocked {filtered} video{'s' if filtered != 1 else ''}: {said}")
    return TaskState("failed", 0, "upstream_error", "Veo finished without a video.")


def _first_uri(samples: object) -> str | None:
    if not isinstance(samples, list) or not samples or not isinstance(samples[0], dict):
        return None
    video = samples[0].get("video")
    uri = video.get("uri") if isinstance(video, dict) else None
    return uri if isinstance(uri, str) and uri else None


def is_safety_failure(message: str) -> bool:
    lowered = message.lower() + " "
    return any(word in lowered for word in SAFETY_WORDS)


def operation_name(answer: dict) -> str:
    """The operation a submission started; checked, as it becomes a path st-ai calls."""
    name = answer.get("name")
    if not isinstance(name, str) or not OPERATION.fullmatch(name):
        raise failures.bad_answer("Veo", "no operation for the task it accepted")
    return name
