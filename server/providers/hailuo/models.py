"""What each of MiniMax's video models takes, as MiniMax's API reference describes
`POST /v1/video_generation` per generation mode (text, first frame, first and last
frame, subject reference): durations, resolutions, and which images it needs.

MiniMax takes no aspect ratio, size, frame rate or seed: a text-to-video comes out 16:9
at the resolution asked, an image-to-video follows its image's shape."""
from __future__ import annotations

from dataclasses import dataclass

from server.providers.video_shape import (FIRST_FRAME, INPUT_LAST_FRAME, LAST_FRAME, REFERENCE,
                                          REFERENCE_IMAGES, RESOLUTION, TEXT, WATERMARK, VideoCapabilities)

# MiniMax's own request fields a client may pass in `metadata`.
PROMPT_OPTIMIZER = "prompt_optimizer"    # bool, MiniMax's default true
FAST_PRETREATMENT = "fast_pretreatment"  # bool: a quicker prompt optimisation (Hailuo 2.3 and 02)

# Pixel size of each resolution for a text-to-video (16:9, landscape).
NOMINAL_SIZE = {"512P": (912, 512), "720P": (1280, 720), "768P": (1366, 768), "1080P": (1920, 1080)}


@dataclass(frozen=True)
class HailuoModel:
    caps: VideoCapabilities
    image_required: bool = False     # an image-to-video model: no video from text alone
    # resolution -> the durations it allows (1080P is 6 s only on Hailuo 2.3 and 02)
    durations_at: tuple[tuple[str, tuple[float, ...]], ...] = ()
    image_only_resolutions: frozenset[str] = frozenset()  # 512P: image-to-video only
    # resolutions a first+last frame task may have (Hailuo 02: not 512P)
    last_frame_resolutions: tuple[str, ...] = ()
    fast_pretreatment: bool = False

    def durations_for(self, resolution: str) -> tuple[float, ...]:
        return dict(self.durations_at).get(resolution, self.caps.durations)


_NEW_OWN = frozenset({PROMPT_OPTIMIZER, FAST_PRETREATMENT})
_OLD_OWN = frozenset({PROMPT_OPTIMIZER})
_HAILUO_23 = VideoCapabilities(durations=(6, 10), resolutions=("768P", "1080P"), inputs=(TEXT, FIRST_FRAME),
                               neutral=frozenset({RESOLUTION, WATERMARK}), own=_NEW_OWN,
                               default_duration=6, default_resolution="768P")
_SIX_SECONDS_AT_1080P = (("1080P", (6,)),)
_SERIES_01 = dict(durations=(6,), resolutions=("720P",), neutral=frozenset({RESOLUTION, WATERMARK}),
                  own=_OLD_OWN, default_duration=6, default_resolution="720P")

MODELS: dict[str, HailuoModel] = {
    "MiniMax-Hailuo-2.3": HailuoModel(_HAILUO_23, durations_at=_SIX_SECONDS_AT_1080P, fast_pretreatment=True),
    "MiniMax-Hailuo-2.3-Fast": HailuoModel(
        VideoCapabilities(durations=(6, 10), resolutions=("768P", "1080P"), inputs=(FIRST_FRAME,),
                          neutral=frozenset({RESOLUTION, WATERMARK}), own=_NEW_OWN,
                          default_duration=6, default_resolution="768P"),
        image_required=True, durations_at=_SIX_SECONDS_AT_1080P, fast_pretreatment=True),
    "MiniMax-Hailuo-02": HailuoModel(
        VideoCapabilities(durations=(6, 10), resolutions=("512P", "768P", "1080P"),
                          inputs=(TEXT, FIRST_FRAME, INPUT_LAST_FRAME),
                          neutral=frozenset({RESOLUTION, WATERMARK, LAST_FRAME}), own=_NEW_OWN,
                          default_duration=6, default_resolution="768P"),
        durations_at=_SIX_SECONDS_AT_1080P, image_only_resolutions=frozenset({"512P"}),
        last_frame_resolutions=("768P", "1080P"), fast_pretreatment=True),
    "T2V-01-Director": HailuoModel(VideoCapabilities(inputs=(TEXT,), **_SERIES_01)),
    "T2V-01": HailuoModel(VideoCapabilities(inputs=(TEXT,), **_SERIES_01)),
    "I2V-01-Director": HailuoModel(VideoCapabilities(inputs=(FIRST_FRAME,), **_SERIES_01), image_required=True),
    "I2V-01-live": HailuoModel(VideoCapabilities(inputs=(FIRST_FRAME,), **_SERIES_01), image_required=True),
    "I2V-01": HailuoModel(VideoCapabilities(inputs=(FIRST_FRAME,), **_SERIES_01), image_required=True),
    "S2V-01": HailuoModel(VideoCapabilities(
        durations=(6,), resolutions=("720P",), inputs=(TEXT, REFERENCE),
        neutral=frozenset({RESOLUTION, WATERMARK, REFERENCE_IMAGES}), own=_OLD_OWN,
        default_duration=6, default_resolution="720P")),
}

# A model st-ai does not list (a newer one) is fitted to the rules of MiniMax's newest
# models (every older one is listed) and left for MiniMax to judge.
GENERAL = HailuoModel(
    VideoCapabilities(durations=(6, 10), resolutions=("512P", "768P", "1080P"),
                      inputs=(TEXT, FIRST_FRAME, INPUT_LAST_FRAME),
                      neutral=frozenset({RESOLUTION, WATERMARK, LAST_FRAME}), own=_NEW_OWN,
                      default_duration=6, default_resolution="768P"),
    durations_at=_SIX_SECONDS_AT_1080P, image_only_resolutions=frozenset({"512P"}),
    last_frame_resolutions=("768P", "1080P"), fast_pretreatment=True)


def model_for(name: str) -> HailuoModel:
    return MODELS.get(name, GENERAL)
