"""A public model's price: what each kind of use costs, in micro-units.

Token prices are micro-units per 1M tokens ($0.01875 per 1M tokens is 18750). Image prices
are per image, keyed "SIZE:QUALITY" ("1024x1024:hd") or "SIZE" alone, the fallback for any
quality of that size. Video prices are per second, keyed by resolution: "WIDTHxHEIGHT"
(either orientation matches: "1280x720" also prices 720x1280), "Np" (the short side, so
"720p" prices 1280x720 and 720x1280), or "*" for every other resolution.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

DEFAULT_RESOLUTION = "*"
_SIZE = re.compile(r"([1-9][0-9]{0,4})x([1-9][0-9]{0,4})")
_QUALITY = re.compile(r"[a-z][a-z0-9_-]{0,31}")
SHORT_SIDE = re.compile(r"([1-9][0-9]{0,4})p")  # a resolution named by its short side
_MODEL = re.compile(r"[^\s\x00-\x1f\x7f]{1,200}")


class PriceError(ValueError):
    """A price or price key st-ai refuses; the message is one line."""


@dataclass(frozen=True)
class Origin:
    """Where an effective price comes from: the operator's table or st-ai's defaults."""
    kind: str  # "operator" | "default"
    source_url: str | None = None  # for defaults: the provider's pricing page
    checked: str | None = None     # for defaults: the date (YYYY-MM-DD) the price was read


OPERATOR = Origin("operator")


@dataclass(frozen=True)
class ModelPrice:
    model: str
    input: int | None = None         # per 1M prompt tokens that were not cached
    cached_input: int | None = None  # per 1M cached prompt tokens; unset: the input price
    output: int | None = None        # per 1M completion tokens
    cache_write: int | None = None   # per 1M tokens written to a prompt cache; unset: the input price
    per_image: dict[str, int] = field(default_factory=dict)
    per_second: dict[str, int] = field(default_factory=dict)
    per_request: int | None = None
    origin: Origin = OPERATOR

    @property
    def prices_tokens(self) -> bool:
        return self.input is not None or self.output is not None

    def merged(self, changes: "PriceChanges") -> "ModelPrice":
        """This price with `changes` applied: set fields replace, image and video keys merge."""
        scalars = {name: value for name, value in (
            ("input", changes.input), ("cached_input", changes.cached_input), ("output", changes.output),
            ("cache_write", changes.cache_write), ("per_request", changes.per_request)) if value is not None}
        return replace(self, **scalars, per_image={**self.per_image, **changes.per_image},
                       per_second={**self.per_second, **changes.per_second}, origin=OPERATOR)


@dataclass(frozen=True)
class PriceChanges:
    """What `st-ai price set` (or the admin API) asks to change; None leaves a field as it is."""
    input: int | None = None
    cached_input: int | None = None
    output: int | None = None
    cache_write: int | None = None
    per_image: dict[str, int] = field(default_factory=dict)
    per_second: dict[str, int] = field(default_factory=dict)
    per_request: int | None = None

    def empty(self) -> bool:
        return self == PriceChanges()


def check_model(name: str) -> str:
    if not _MODEL.fullmatch(name or ""):
        raise PriceError(f"{name!r} is not a model name (1-200 characters, no spaces)")
    return name


def parse_size(text: str) -> tuple[int, int]:
    match = _SIZE.fullmatch(text)
    if not match:
        raise PriceError(f"{text!r} is not a size: write WIDTHxHEIGHT, e.g. 1024x1024")
    return int(match[1]), int(match[2])


def image_key(text: str) -> str:
    """"1024x1024:HD" -> "1024x1024:hd"; a size alone prices every quality of that size."""
    size, sep, quality = text.strip().lower().partition(":")
    parse_size(size)
    if not sep:
        return size
    if not _QUALITY.fullmatch(quality):
        raise PriceError(f"{text!r}: the quality after ':' is a word such as hd, standard, low, high")
    return f"{size}:{quality}"


def resolution_key(text: str) -> str:
    """"1280X720" -> "1280x720", "720P" -> "720p", "*" stays: every other resolution."""
    key = text.strip().lower()
    if key == DEFAULT_RESOLUTION or SHORT_SIDE.fullmatch(key):
        return key
    try:
        parse_size(key)
    except PriceError:
        raise PriceError(f"{text!r} is not a resolution: write WIDTHxHEIGHT (1280x720), "
                         "the short side (720p) or * for any") from None
    return key
