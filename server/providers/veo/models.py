"""What each Veo model takes on the Gemini API, as checked against Google's docs and the
google-genai SDK (which refuses seed, fps, generateAudio, compressionQuality and GCS URIs in
Gemini API mode, so st-ai never sends them). Names Google lists today; a name a model map
points to that is not here is fitted to GENERAL and left for Google to judge."""
from __future__ import annotations

from server.providers.video_shape import (ASPECT_RATIO, FIRST_FRAME, INPUT_LAST_FRAME, LAST_FRAME,
                                          NEGATIVE_PROMPT, REFERENCE, REFERENCE_IMAGES, RESOLUTION, TEXT,
                                          VideoCapabilities)

# Veo's own parameters a client may pass in `metadata`, under Google's names.
PERSON_GENERATION = "personGeneration"   # "allow_all" | "allow_adult" | "dont_allow"
ENHANCE_PROMPT = "enhancePrompt"          # Veo 2 only

FPS = 24                                  # every Veo model renders 24 fps; the Gemini API takes no fps
MAX_REFERENCE_IMAGES = 3
# Resolutions above 720p, and reference images, are rendered only as 8 s videos.
LONG_ONLY_RESOLUTIONS = frozenset({"1080p", "4k"})
LONG_ONLY_DURATION = 8.0

_VEO_3_1 = VideoCapabilities(
    durations=(4.0, 6.0, 8.0), aspect_ratios=("16:9", "9:16"), resolutions=("720p", "1080p", "4k"),
    fps=(FPS,), inputs=(TEXT, FIRST_FRAME, INPUT_LAST_FRAME, REFERENCE),
    neutral=frozenset({NEGATIVE_PROMPT, LAST_FRAME, REFERENCE_IMAGES, ASPECT_RATIO, RESOLUTION}),
    own=frozenset({PERSON_GENERATION}),
    default_duration=8.0, default_aspect_ratio="16:9", default_resolution="720p")
_VEO_3_1_LITE = VideoCapabilities(
    durations=(4.0, 6.0, 8.0), aspect_ratios=("16:9", "9:16"), resolutions=("720p", "1080p"),
    fps=(FPS,), inputs=(TEXT, FIRST_FRAME, INPUT_LAST_FRAME),
    neutral=frozenset({NEGATIVE_PROMPT, LAST_FRAME, ASPECT_RATIO, RESOLUTION}),
    own=frozenset({PERSON_GENERATION}),
    default_duration=8.0, default_aspect_ratio="16:9", default_resolution="720p")
_VEO_3 = VideoCapabilities(
    durations=(4.0, 6.0, 8.0), aspect_ratios=("16:9", "9:16"), resolutions=("720p", "1080p"),
    fps=(FPS,), inputs=(TEXT, FIRST_FRAME),
    neutral=frozenset({NEGATIVE_PROMPT, ASPECT_RATIO, RESOLUTION}),
    own=frozenset({PERSON_GENERATION}),
    default_duration=8.0, default_aspect_ratio="16:9", default_resolution="720p")
# Veo 2 renders 720p only and takes no resolution parameter.
_VEO_2 = VideoCapabilities(
    durations=(5.0, 6.0, 7.0, 8.0), aspect_ratios=("16:9", "9:16"), fps=(FPS,), inputs=(TEXT, FIRST_FRAME),
    neutral=frozenset({NEGATIVE_PROMPT, ASPECT_RATIO}),
    own=frozenset({PERSON_GENERATION, ENHANCE_PROMPT}),
    default_duration=8.0, default_aspect_ratio="16:9")

MODELS: dict[str, VideoCapabilities] = {
    "veo-3.1-generate-preview": _VEO_3_1,
    "veo-3.1-fast-generate-preview": _VEO_3_1,
    "veo-3.1-generate-001": _VEO_3_1,
    "veo-3.1-fast-generate-001": _VEO_3_1,
    "veo-3.1-lite-generate-preview": _VEO_3_1_LITE,
    "veo-3.1-lite-generate-001": _VEO_3_1_LITE,
    "veo-3.0-generate-001": _VEO_3,
    "veo-3.0-fast-generate-001": _VEO_3,
    "veo-2.0-generate-001": _VEO_2,
}

# A name st-ai does not know: the widest current rules, Google refuses what the model lacks.
GENERAL = _VEO_3_1


def capabilities(model: str) -> VideoCapabilities | None:
    return MODELS.get(model)


def rules(model: str) -> VideoCapabilities:
    return MODELS.get(model, GENERAL)
