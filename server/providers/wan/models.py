"""What each Wan model takes, from Model Studio's API references (November 2026).

DashScope has three request shapes for Wan, chosen by model:
- SIZE: text-to-video of wan2.6 and earlier: `parameters.size` as "W*H";
- FIRST_FRAME: image-to-video of wan2.6 and earlier: `input.img_url`, `parameters.resolution`;
- KEYFRAMES: first-and-last-frame models (`kf2v`), on their own path: `input.first_frame_url`,
  `input.last_frame_url`, `parameters.resolution`;
- MEDIA: wan2.7 and later: `input.media` (a list of `{"type", "url"}`), `parameters.resolution`
  and `parameters.ratio`.
A name st-ai does not know is fitted to the shape its name suggests, with that shape's
general rules, and left to DashScope to judge."""
from __future__ import annotations

from dataclasses import dataclass

from server.providers.video_shape import (ASPECT_RATIO, AUDIO, FIRST_FRAME, INPUT_LAST_FRAME, LAST_FRAME,
                                          NEGATIVE_PROMPT, REFERENCE, REFERENCE_IMAGES, RESOLUTION, TEXT,
                                          WATERMARK, VideoCapabilities)

SIZE, FIRST, KEYFRAMES, MEDIA = "size", "first_frame", "keyframes", "media"

# Pixel sizes per resolution tier and aspect ratio, as DashScope names them.
TIER_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "480P": {"16:9": (832, 480), "9:16": (480, 832), "1:1": (624, 624)},
    "720P": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (960, 960), "4:3": (1088, 832),
             "3:4": (832, 1088)},
    "1080P": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1440, 1440), "4:3": (1632, 1248),
              "3:4": (1248, 1632)},
}
FPS = (30,)  # every Wan model writes 30 fps MP4 (H.264); none takes a frame rate
COMMON = frozenset({NEGATIVE_PROMPT, WATERMARK})
RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")


@dataclass(frozen=True)
class WanModel:
    shape: str                          # SIZE, FIRST, KEYFRAMES or MEDIA
    caps: VideoCapabilities
    needs_image: bool = False           # image-to-video only: text alone is refused
    audio: bool = False                 # `parameters.audio` (generated soundtrack) and `input.audio_url`
    media_types: frozenset[str] = frozenset()  # MEDIA: the `type`s of `input.media` it takes


def _default_duration(durations: tuple[int, ...] | range) -> float:
    return 5.0 if 5 in durations else float(durations[0])  # DashScope's default is 5 s


def _sizes(*tiers: str) -> tuple[tuple[int, int], ...]:
    return tuple(size for tier in tiers for size in TIER_SIZES[tier].values())


def _t2v(durations: tuple[int, ...], tiers: tuple[str, ...], audio: bool = False,
         own: frozenset[str] = frozenset()) -> WanModel:
    neutral = COMMON | ({AUDIO} if audio else frozenset())
    own = own | {"size", "prompt_extend"} | ({"audio_url"} if audio else frozenset())
    # The default size (the first) is 720P landscape where the model has it, else its largest.
    default = "720P" if "720P" in tiers else tiers[-1]
    ordered = (default,) + tuple(t for t in tiers if t != default)
    caps = VideoCapabilities(durations=tuple(float(d) for d in durations), sizes=_sizes(*ordered), fps=FPS,
                             inputs=(TEXT,), neutral=neutral | {ASPECT_RATIO, RESOLUTION}, own=own,
                             resolutions=tiers, aspect_ratios=RATIOS if "720P" in tiers or "1080P" in tiers
                             else ("16:9", "9:16", "1:1"), default_duration=_default_duration(durations),
                             default_resolution=default, default_aspect_ratio="16:9")
    return WanModel(SIZE, caps, audio=audio)


def _i2v(durations: tuple[int, ...], tiers: tuple[str, ...], audio: bool = False,
         own: frozenset[str] = frozenset(), default: str | None = None) -> WanModel:
    neutral = COMMON | {RESOLUTION} | ({AUDIO} if audio else frozenset())
    own = own | {"prompt_extend"} | ({"audio_url"} if audio else frozenset())
    caps = VideoCapabilities(durations=tuple(float(d) for d in durations), resolutions=tiers, fps=FPS,
                             inputs=(TEXT, FIRST_FRAME), neutral=neutral, own=own,
                             default_duration=_default_duration(durations),
                             default_resolution=default or tiers[-1])
    return WanModel(FIRST, caps, needs_image=True, audio=audio)


def _kf2v(tiers: tuple[str, ...], default: str | None = None) -> WanModel:
    caps = VideoCapabilities(durations=(5.0,), resolutions=tiers, fps=FPS, inputs=(TEXT, FIRST_FRAME, INPUT_LAST_FRAME),
                             neutral=COMMON | {RESOLUTION, LAST_FRAME}, own=frozenset({"prompt_extend"}),
                             default_duration=5.0, default_resolution=default or tiers[-1])
    return WanModel(KEYFRAMES, caps, needs_image=True)


def _media(durations: range, inputs: tuple[str, ...], media_types: frozenset[str], needs_image: bool,
           default_duration: int = 5) -> WanModel:
    neutral = COMMON | {RESOLUTION, ASPECT_RATIO}
    if INPUT_LAST_FRAME in inputs:
        neutral |= {LAST_FRAME}
    if REFERENCE in inputs:
        neutral |= {REFERENCE_IMAGES}
    caps = VideoCapabilities(durations=tuple(float(d) for d in durations), resolutions=("720P", "1080P"),
                             aspect_ratios=RATIOS, fps=FPS, inputs=inputs, neutral=neutral,
                             own=frozenset({"prompt_extend", "media", "shot_type"}),
                             default_duration=float(default_duration), default_resolution="1080P",
                             default_aspect_ratio="16:9")
    return WanModel(MEDIA, caps, needs_image=needs_image, media_types=media_types)


SHOTS = frozenset({"shot_type"})  # wan2.6's multi-shot narrative (with prompt_extend)
FRAMES = frozenset({"first_frame", "last_frame", "driving_audio", "first_clip"})
REFERENCES = frozenset({"reference_image", "reference_video"})

MODELS: dict[str, WanModel] = {
    # text-to-video, `size`
    "wan2.6-t2v": _t2v(tuple(range(2, 16)), ("720P", "1080P"), audio=True, own=SHOTS),
    "wan2.5-t2v-preview": _t2v((5, 10), ("480P", "720P", "1080P"), audio=True),
    "wan2.2-t2v-plus": _t2v((5,), ("480P", "1080P")),
    "wan2.1-t2v-turbo": _t2v((5,), ("480P", "720P")),
    "wan2.1-t2v-plus": _t2v((5,), ("720P",)),
    # image-to-video from a first frame, `img_url` and `resolution`
    "wan2.6-i2v": _i2v(tuple(range(2, 16)), ("720P", "1080P"), audio=True, own=SHOTS),
    "wan2.6-i2v-flash": _i2v(tuple(range(2, 16)), ("720P", "1080P"), audio=True, own=SHOTS),
    "wan2.5-i2v-preview": _i2v((5, 10), ("480P", "720P", "1080P"), audio=True),
    "wan2.2-i2v-plus": _i2v((5,), ("480P", "1080P")),
    "wan2.2-i2v-flash": _i2v((5,), ("480P", "720P", "1080P")),
    "wan2.1-i2v-turbo": _i2v((3, 4, 5), ("480P", "720P"), default="720P"),
    "wan2.1-i2v-plus": _i2v((5,), ("720P",)),
    # first and last frame
    "wan2.2-kf2v-flash": _kf2v(("480P", "720P", "1080P"), default="720P"),
    "wan2.1-kf2v-plus": _kf2v(("720P",)),
    # the `media` list (wan2.7 and later)
    "wan2.7-t2v": _media(range(2, 16), (TEXT,), frozenset(), needs_image=False),
    "wan2.7-i2v": _media(range(2, 16), (TEXT, FIRST_FRAME, INPUT_LAST_FRAME), FRAMES, needs_image=True),
    "wan2.7-r2v": _media(range(2, 11), (TEXT, REFERENCE), REFERENCES, needs_image=False),
    "wan3.0-video": _media(range(2, 31), (TEXT, FIRST_FRAME, INPUT_LAST_FRAME, REFERENCE),
                           FRAMES | REFERENCES, needs_image=False),
    "wan3.0-video-prime": _media(range(2, 31), (TEXT, FIRST_FRAME, INPUT_LAST_FRAME, REFERENCE),
                                 FRAMES | REFERENCES, needs_image=False),
}

# The general rules for a name st-ai does not know, by the shape its name suggests.
GENERAL: dict[str, WanModel] = {
    SIZE: _t2v(tuple(range(2, 16)), ("480P", "720P", "1080P"), audio=True, own=SHOTS),
    FIRST: _i2v(tuple(range(2, 16)), ("480P", "720P", "1080P"), audio=True, own=SHOTS, default="720P"),
    KEYFRAMES: _kf2v(("480P", "720P", "1080P"), default="720P"),
    MEDIA: _media(range(2, 31), (TEXT, FIRST_FRAME, INPUT_LAST_FRAME, REFERENCE), FRAMES | REFERENCES,
                  needs_image=False),
}


def model(name: str) -> WanModel:
    known = MODELS.get(name)
    if known is not None:
        return known
    lowered = name.lower()
    if "kf2v" in lowered:
        return GENERAL[KEYFRAMES]
    old = lowered.startswith(("wan2.1", "wan2.2", "wan2.5", "wan2.6", "wanx"))
    if old and "i2v" in lowered:
        return GENERAL[FIRST]
    if old and "t2v" in lowered:
        return GENERAL[SIZE]
    return GENERAL[MEDIA]
