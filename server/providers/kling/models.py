"""Kling's video models and what each takes on /v1/videos/text2video and image2video.

Current models (November 2026): kling-v3 (3-15 s, sound in both modes), kling-v2-6 (5 or
10 s; sound and a last frame only in pro mode, and not both at once) and kling-v2-5-turbo
(5 or 10 s, pro mode only). kling-v1 and kling-v2-master are older but not known to be
retired: they keep their old rules and Kling judges them. Kling retired kling-v1-5,
kling-v1-6, kling-v2-1 and kling-v2-1-master on 2026-09-15: they are refused with a 400
naming the model, never mapped to a newer one, because a newer model is another price and
another picture. Kling's Omni models (kling-video-o1, kling-v3-omni) speak another
endpoint (/v1/videos/omni-video) st-ai does not use yet, so they are refused the same way.
A name not listed here (a preview, a future version) is sent with Kling's general rules
and left for Kling to judge.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from server.errors import GatewayError
from server.providers import video_shape as shape
from server.providers.video_shape import VideoCapabilities

STD, PRO = "std", "pro"
RATIOS = ("16:9", "9:16", "1:1")

RETIRED = {"kling-v1-5": "2026-09-15", "kling-v1-6": "2026-09-15", "kling-v2-1": "2026-09-15",
           "kling-v2-1-master": "2026-09-15"}
OMNI = frozenset({"kling-video-o1", "kling-v3-omni"})
CURRENT = ("kling-v3", "kling-v2-6", "kling-v2-5-turbo")

# Kling's own parameters st-ai passes through (besides the neutral keys it maps).
PASSED = frozenset({"mode", "camera_control", "image_tail", "watermark_info", "callback_url", "external_task_id"})
CFG_SCALE, SOUND, VOICE_LIST = "cfg_scale", "sound", "voice_list"
MOTION_BRUSH = frozenset({"static_mask", "dynamic_masks"})  # image2video only, kling-v1 only


@dataclass(frozen=True)
class KlingModel:
    """One model's rules beyond its capabilities: which modes it has, what each mode
    renders at, and which modes allow sound or a last frame."""
    caps: VideoCapabilities
    modes: tuple[str, ...]
    resolution_of_mode: dict[str, str] = field(default_factory=dict)  # empty: not declared (older models)
    sound_modes: tuple[str, ...] = ()
    tail_modes: tuple[str, ...] = ()
    tail_excludes_sound: bool = False

    def mode_for_resolution(self, resolution: str) -> str:
        return next(m for m in self.modes if self.resolution_of_mode.get(m) == resolution)


def _model(durations: tuple[int, ...], modes: tuple[str, ...], *, resolutions: dict[str, str] | None = None,
           sound: tuple[str, ...] = (), tail: tuple[str, ...] = (), tail_excludes_sound: bool = False,
           cfg_scale: bool = False, motion_brush: bool = False) -> KlingModel:
    resolutions = resolutions or {}
    neutral = {shape.NEGATIVE_PROMPT, shape.ASPECT_RATIO, shape.WATERMARK}
    own = set(PASSED)
    inputs = [shape.TEXT, shape.FIRST_FRAME]
    if tail:
        neutral.add(shape.LAST_FRAME)
        inputs.append(shape.INPUT_LAST_FRAME)
    else:
        own.discard("image_tail")
    if resolutions:
        neutral.add(shape.RESOLUTION)
    if sound:
        neutral.add(shape.AUDIO)
        own |= {SOUND, VOICE_LIST}
    if cfg_scale:
        own.add(CFG_SCALE)
    if motion_brush:
        own |= MOTION_BRUSH
    caps = VideoCapabilities(
        durations=tuple(float(d) for d in durations), aspect_ratios=RATIOS,
        resolutions=tuple(dict.fromkeys(resolutions[m] for m in modes if m in resolutions)),
        inputs=tuple(inputs), neutral=frozenset(neutral), own=frozenset(own),
        default_duration=5.0, default_aspect_ratio="16:9",
        default_resolution=resolutions.get(modes[0]))
    return KlingModel(caps, modes, resolutions, sound, tail, tail_excludes_sound)


MODELS: dict[str, KlingModel] = {
    "kling-v3": _model(tuple(range(3, 16)), (STD, PRO), resolutions={STD: "720p", PRO: "1080p"},
                       sound=(STD, PRO), tail=(STD, PRO), cfg_scale=True),
    # Kling documents cfg_scale as not supported by the v2.x models.
    "kling-v2-6": _model((5, 10), (STD, PRO), resolutions={STD: "720p", PRO: "1080p"},
                         sound=(PRO,), tail=(PRO,), tail_excludes_sound=True),
    "kling-v2-5-turbo": _model((5, 10), (PRO,), resolutions={PRO: "1080p"}, tail=(PRO,)),
    "kling-v2-master": _model((5, 10), (STD, PRO)),
    "kling-v1": _model((5, 10), (STD, PRO), tail=(STD, PRO), cfg_scale=True, motion_brush=True),
}

# A name Kling may know and st-ai does not: Kling's general rules, every parameter passed.
GENERAL = _model((5, 10), (STD, PRO), sound=(STD, PRO), tail=(STD, PRO), cfg_scale=True, motion_brush=True)


def capabilities(model: str) -> VideoCapabilities | None:
    spec = MODELS.get(model)
    return spec.caps if spec is not None else None


def spec_for(model: str) -> KlingModel:
    """The model's rules; a 400 naming the model for one Kling no longer serves here."""
    if model in RETIRED:
        raise GatewayError(400, f"Kling retired the model '{model}' on {RETIRED[model]}; its current models are "
                                f"{', '.join(CURRENT)}.", "model_retired", "model")
    if model in OMNI:
        raise GatewayError(400, f"The Kling model '{model}' works only on Kling's Omni endpoint, which st-ai does "
                                f"not use; its text and image models are {', '.join(CURRENT)}.",
                           "model_not_supported", "model")
    return MODELS.get(model, GENERAL)
