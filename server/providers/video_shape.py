"""What a video model accepts, and the one way a client's request is fitted to it.

Every video provider declares, per upstream model, a `VideoCapabilities`: the durations,
aspect ratios, resolutions or pixel sizes, frame rates and inputs it takes, and its own
parameters a client may pass in `metadata`. The fitting functions here map a request's
values to the nearest accepted ones (the task's `metadata` reports what was asked
upstream), so a documented example request (5.0 s, 1280x720, 30 fps) works on every model;
only an impossible value is a 400 naming the field. `GET /v1/models` lists the same
declarations, so a client can build a form without trial and error.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from server.errors import invalid_request

# `metadata` keys that mean the same on every type whose provider has the feature.
NEGATIVE_PROMPT = "negative_prompt"
LAST_FRAME = "last_frame"              # an image URL or base64
REFERENCE_IMAGES = "reference_images"  # a list of image URLs or base64
ASPECT_RATIO = "aspect_ratio"          # "16:9"
RESOLUTION = "resolution"              # "720p"
WATERMARK = "watermark"                # bool
AUDIO = "audio"                        # bool: generate a soundtrack
NEUTRAL_KEYS = frozenset({NEGATIVE_PROMPT, LAST_FRAME, REFERENCE_IMAGES, ASPECT_RATIO, RESOLUTION, WATERMARK,
                          AUDIO})

# The inputs a model can take, as `GET /v1/models` names them.
TEXT, FIRST_FRAME, INPUT_LAST_FRAME, REFERENCE = "text", "first_frame", "last_frame", "reference"

# Standard pixel heights of the resolution names providers use.
RESOLUTION_HEIGHTS = {"360p": 360, "480p": 480, "512p": 512, "540p": 540, "720p": 720, "768p": 768, "1080p": 1080,
                      "1440p": 1440, "2160p": 2160, "4k": 2160}


@dataclass(frozen=True)
class VideoCapabilities:
    """What one upstream video model takes. Empty tuples mean the API has no such knob."""
    durations: tuple[float, ...] = ()           # seconds it takes, in order
    aspect_ratios: tuple[str, ...] = ()          # "16:9", "9:16", "1:1"...
    resolutions: tuple[str, ...] = ()            # "720p", "1080p"...
    sizes: tuple[tuple[int, int], ...] = ()      # exact pixel sizes, where the API takes sizes
    fps: tuple[int, ...] = ()
    inputs: tuple[str, ...] = (TEXT,)            # TEXT, FIRST_FRAME, INPUT_LAST_FRAME, REFERENCE
    neutral: frozenset[str] = frozenset()        # which NEUTRAL_KEYS it has
    own: frozenset[str] = frozenset()            # the provider's own parameters it accepts in metadata
    default_duration: float | None = None
    default_aspect_ratio: str | None = None
    default_resolution: str | None = None
    # Where a model takes any value in a range rather than a list (the simulator draws any
    # size): (low, high), inclusive; `default_size` is used when no size is asked.
    side_range: tuple[int, int] | None = None   # width and height, in pixels
    fps_range: tuple[int, int] | None = None
    default_size: tuple[int, int] | None = None

    def listing(self) -> dict:
        """As `GET /v1/models` shows it."""
        shown: dict = {"inputs": list(self.inputs)}
        if self.durations:
            shown["durations"] = [_number(d) for d in self.durations]
        if self.aspect_ratios:
            shown["aspect_ratios"] = list(self.aspect_ratios)
        if self.resolutions:
            shown["resolutions"] = list(self.resolutions)
        if self.sizes:
            shown["sizes"] = [f"{w}x{h}" for w, h in self.sizes]
        if self.side_range:
            shown["side_range"] = {"min": self.side_range[0], "max": self.side_range[1]}
        if self.fps:
            shown["fps"] = list(self.fps)
        if self.fps_range:
            shown["fps_range"] = {"min": self.fps_range[0], "max": self.fps_range[1]}
        shown["metadata"] = sorted(self.neutral | self.own)
        return shown


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def nearest_duration(caps: VideoCapabilities, seconds: float | None, prefer_longer: bool = True) -> float | None:
    """The accepted duration nearest `seconds` (None: the model's default). On a tie the
    longer one wins unless `prefer_longer` is False (a provider billing per second)."""
    if seconds is None:
        return caps.default_duration
    if not math.isfinite(seconds) or seconds <= 0:
        raise invalid_request("The duration must be a positive number of seconds.", "duration")
    if not caps.durations:
        return None
    sign = -1 if prefer_longer else 1
    return min(caps.durations, key=lambda d: (abs(d - seconds), sign * d))


def _check_dimensions(width: int | None, height: int | None) -> None:
    for name, value in (("width", width), ("height", height)):
        if value is not None and value <= 0:
            raise invalid_request(f"The {name} must be a positive number of pixels.", name)


def _ratio_value(name: str) -> float:
    w, _, h = name.partition(":")
    return float(w) / float(h)


def _ratio_area(name: str) -> float:
    w, _, h = name.partition(":")
    return float(w) * float(h)


def nearest_aspect_ratio(caps: VideoCapabilities, width: int | None, height: int | None,
                         asked: str | None = None) -> str | None:
    """`asked` (metadata `aspect_ratio`) when the model takes it exactly, else the ratio
    nearest the width and height (compared in log space: 2:1 and 1:2 are equally far from
    1:1); the default when neither is given."""
    if not caps.aspect_ratios:
        return None
    if asked is not None:
        if asked in caps.aspect_ratios:
            return asked
        raise invalid_request(f"This model takes the aspect ratios {', '.join(caps.aspect_ratios)}.",
                              f"metadata.{ASPECT_RATIO}")
    _check_dimensions(width, height)
    if not width or not height:
        return caps.default_aspect_ratio or caps.aspect_ratios[0]
    wanted = math.log(width / height)
    # Ratios some APIs name in pixels ("1280:720", "1920:1080") can share a shape: then the
    # one nearest the asked pixel count wins.
    return min(caps.aspect_ratios, key=lambda name: (round(abs(math.log(_ratio_value(name)) - wanted), 12),
                                                     abs(math.log(_ratio_area(name) / (width * height)))))


def nearest_resolution(caps: VideoCapabilities, width: int | None, height: int | None,
                       asked: str | None = None) -> str | None:
    """`asked` (metadata `resolution`) when the model takes it, else the resolution whose
    height is nearest the shorter side asked; the default when no size is given."""
    if not caps.resolutions:
        return None
    if asked is not None:
        if asked.lower() in (r.lower() for r in caps.resolutions):
            return next(r for r in caps.resolutions if r.lower() == asked.lower())
        raise invalid_request(f"This model takes the resolutions {', '.join(caps.resolutions)}.",
                              f"metadata.{RESOLUTION}")
    _check_dimensions(width, height)
    sides = [v for v in (width, height) if v]
    if not sides:
        return caps.default_resolution or caps.resolutions[0]
    short = min(sides) if len(sides) == 2 else sides[0]
    known = [r for r in caps.resolutions if r.lower() in RESOLUTION_HEIGHTS]
    if not known:
        return caps.default_resolution or caps.resolutions[0]
    return min(known, key=lambda r: (abs(math.log(RESOLUTION_HEIGHTS[r.lower()] / short)),
                                     -RESOLUTION_HEIGHTS[r.lower()]))


def nearest_size(caps: VideoCapabilities, width: int | None, height: int | None) -> tuple[int, int] | None:
    """The accepted pixel size nearest in log scale in both dimensions (an omitted one does
    not count); ties go to the earlier size. With a `side_range`, each side is clamped into
    it (an omitted one taken from `default_size`). None when the model takes no sizes."""
    _check_dimensions(width, height)
    if caps.side_range:
        low, high = caps.side_range
        default = caps.default_size or (high, high)
        return (min(high, max(low, width or default[0])), min(high, max(low, height or default[1])))
    if not caps.sizes:
        return None
    if width is None and height is None:
        return caps.default_size if caps.default_size in caps.sizes else caps.sizes[0]

    def distance(size: tuple[int, int]) -> float:
        return sum(math.log(wanted / offered) ** 2 for wanted, offered in zip((width, height), size)
                   if wanted is not None)

    return min(caps.sizes, key=lambda size: (round(distance(size), 12), caps.sizes.index(size)))


def nearest_fps(caps: VideoCapabilities, fps: int | None) -> int | None:
    """The accepted frame rate nearest `fps` (None when not asked or not a knob)."""
    if fps is None or not (caps.fps or caps.fps_range):
        return None
    if fps <= 0:
        raise invalid_request("fps must be a positive number.", "fps")
    if caps.fps_range:
        return min(caps.fps_range[1], max(caps.fps_range[0], fps))
    return min(caps.fps, key=lambda f: (abs(f - fps), -f))


def _ratio_of(size: tuple[int, int]) -> float:
    return math.log(size[0] / size[1])


def with_aspect_ratio(caps: VideoCapabilities, asked: str) -> VideoCapabilities:
    """`caps` narrowed to the sizes of the aspect ratio asked (metadata `aspect_ratio`), for
    APIs that take pixel sizes: those within 5% of it, else the nearest. A ratio the model
    does not list is a 400 naming the key."""
    nearest_aspect_ratio(caps, None, None, asked)  # checks it is one the model lists
    if not caps.sizes:
        return caps
    wanted = math.log(_ratio_value(asked))
    close = tuple(s for s in caps.sizes if abs(_ratio_of(s) - wanted) <= math.log(1.05))
    if not close:
        close = (min(caps.sizes, key=lambda s: abs(_ratio_of(s) - wanted)),)
    default = caps.default_size if caps.default_size in close else None
    return dataclasses.replace(caps, sizes=close, default_size=default)


@dataclass(frozen=True)
class SplitMetadata:
    neutral: dict = field(default_factory=dict)  # NEUTRAL_KEYS the model has
    own: dict = field(default_factory=dict)      # the provider's own parameters


def split_metadata(caps: VideoCapabilities, metadata: dict, provider: str) -> SplitMetadata:
    """The client's `metadata`, checked: a neutral key the model has not, or any other key
    that is not one of the provider's own parameters, is a 400 naming it."""
    neutral, own = {}, {}
    for key, value in metadata.items():
        if key in NEUTRAL_KEYS:
            if key not in caps.neutral:
                raise invalid_request(f"metadata.{key} is not something this {provider} model offers.",
                                      f"metadata.{key}")
            neutral[key] = value
        elif key in caps.own:
            own[key] = value
        else:
            raise invalid_request(f"metadata.{key} is not a parameter of this {provider} model; it takes "
                                  f"{', '.join(sorted(caps.neutral | caps.own)) or 'none'}.", f"metadata.{key}")
    if LAST_FRAME in neutral and INPUT_LAST_FRAME not in caps.inputs:
        raise invalid_request(f"This {provider} model takes no last frame.", f"metadata.{LAST_FRAME}")
    return SplitMetadata(neutral, own)


def require_input(caps: VideoCapabilities, kind: str, provider: str, param: str) -> None:
    """A 400 when the request carries an input (e.g. a first frame) the model takes not."""
    if kind not in caps.inputs:
        raise invalid_request(f"This {provider} model takes no {kind.replace('_', ' ')} image.", param)
