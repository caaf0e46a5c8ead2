"""What each current Seedance model takes (Volcengine Ark / BytePlus ModelArk), as
`VideoCapabilities` plus the two rules Seedance adds: a model that needs an image, and
how many reference images it takes.

Model names come in three spellings for one model: BytePlus `seedance-1-0-pro-250528`,
Volcengine `doubao-seedance-1-0-pro-250528`, Seedance 2.0 `dreamina-seedance-2-0-260128`,
each with or without its date suffix. An endpoint id (`ep-...`) or a newer name is not
known here: it is fitted to the general rules and Ark judges the rest."""
from __future__ import annotations

import re
from dataclasses import dataclass

from server.providers import video_shape as vs

RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
ADAPTIVE = "adaptive"   # Ark's ratio that follows the first frame (or the prompt)
RESOLUTIONS = ("480p", "720p", "1080p")
FPS = (24,)             # every Seedance model renders 24 frames a second

# The neutral metadata keys Seedance has (it has no negative prompt).
_SILENT = frozenset({vs.LAST_FRAME, vs.REFERENCE_IMAGES, vs.ASPECT_RATIO, vs.RESOLUTION, vs.WATERMARK})
_WITH_AUDIO = _SILENT | {vs.AUDIO}
# Ark's own task parameters a client may pass in metadata.
OWN = frozenset({"camera_fixed", "service_tier", "execution_expires_after"})


def _seconds(low: int, high: int) -> tuple[float, ...]:
    return tuple(float(s) for s in range(low, high + 1))


@dataclass(frozen=True)
class SeedanceModel:
    caps: vs.VideoCapabilities
    needs_image: bool = False       # the lite i2v model makes nothing from text alone
    max_references: int = 0


def _model(durations: tuple[float, ...], inputs: tuple[str, ...], resolutions: tuple[str, ...] = RESOLUTIONS,
           default_resolution: str = "720p", audio: bool = False, needs_image: bool = False,
           max_references: int = 0) -> SeedanceModel:
    neutral = _WITH_AUDIO if audio else _SILENT
    if vs.INPUT_LAST_FRAME not in inputs:
        neutral = neutral - {vs.LAST_FRAME}
    if vs.REFERENCE not in inputs:
        neutral = neutral - {vs.REFERENCE_IMAGES}
    caps = vs.VideoCapabilities(durations=durations, aspect_ratios=RATIOS, resolutions=resolutions, fps=FPS,
                                inputs=inputs, neutral=neutral, own=OWN, default_duration=5.0,
                                default_aspect_ratio="16:9", default_resolution=default_resolution)
    return SeedanceModel(caps, needs_image, max_references)


_T, _F, _L, _R = vs.TEXT, vs.FIRST_FRAME, vs.INPUT_LAST_FRAME, vs.REFERENCE

# By family name: the name without its vendor prefix and date suffix.
FAMILIES: dict[str, SeedanceModel] = {
    "seedance-2-0": _model(_seconds(4, 15), (_T, _F, _L, _R), audio=True, max_references=9),
    "seedance-2-0-fast": _model(_seconds(4, 15), (_T, _F, _L, _R), ("480p", "720p"), audio=True,
                                max_references=9),
    "seedance-1-5-pro": _model(_seconds(4, 12), (_T, _F, _L), audio=True),
    "seedance-1-0-pro": _model(_seconds(2, 12), (_T, _F, _L), default_resolution="1080p"),
    "seedance-1-0-pro-fast": _model(_seconds(2, 12), (_T, _F), default_resolution="1080p"),
    "seedance-1-0-lite-t2v": _model(_seconds(2, 12), (_T,)),
    "seedance-1-0-lite-i2v": _model(_seconds(2, 12), (_T, _F, _L, _R), needs_image=True, max_references=4),
}

# A name st-ai does not know: everything Ark's task API has, Ark judges the model.
GENERAL = _model(_seconds(2, 15), (_T, _F, _L, _R), audio=True, max_references=9)

_PREFIX = re.compile(r"^(?:doubao-|dreamina-|bytedance-)")
_DATE = re.compile(r"-\d{6}$")


def family(model: str) -> str:
    return _DATE.sub("", _PREFIX.sub("", model.strip().lower()))


def lookup(model: str) -> SeedanceModel | None:
    return FAMILIES.get(family(model))


def nominal_size(resolution: str, ratio: str) -> tuple[int, int] | None:
    """The size a task is reported (and priced) at: the resolution's height on the short
    side, the ratio's on the long one (720p 16:9 is 1280x720; Ark renders 1248x704, to
    its 16-pixel grid). None for an adaptive ratio, which follows the image, whose size
    st-ai does not decode."""
    if ratio not in RATIOS:
        return None
    short = vs.RESOLUTION_HEIGHTS[resolution]
    w, _, h = ratio.partition(":")
    long = int(short * max(int(w), int(h)) / min(int(w), int(h)) / 2 + 0.5) * 2
    return (long, short) if int(w) >= int(h) else (short, long)
