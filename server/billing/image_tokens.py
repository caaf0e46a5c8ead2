"""Prompt tokens of one input image, by OpenAI's documented formulas (vision guide, "Calculating
costs", as published in 2025), or a documented upper bound when the size is not known.

Tile models: fit the image in 2048×2048, scale it down so the short side is at most 768, then
base + per_tile × (number of 512-px tiles); detail "low" is the base alone. Patch models: 32-px
patches, at most 1536 (a larger image is scaled down to fit), times a per-model multiplier.
Nothing is upscaled, so for an unknown size the largest tile count is 2 × 4 (768 × 2048) and
the largest patch count 1536.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from server.billing.tokenizer import bare_model, is_other_family


@dataclass(frozen=True)
class TileRule:
    base: int
    per_tile: int


@dataclass(frozen=True)
class PatchRule:
    multiplier: Fraction


MAX_TILES = 8
MAX_PATCHES = 1536

# Longest matching prefix wins. gpt-4o-mini's counts are inflated so that its per-token price
# gives gpt-4o's image cost; usage reports those inflated numbers.
RULES: dict[str, TileRule | PatchRule] = {
    "gpt-4o-mini": TileRule(2833, 5667),
    "gpt-4o": TileRule(85, 170),
    "chatgpt-4o": TileRule(85, 170),
    "gpt-4.5": TileRule(85, 170),
    "gpt-4.1": TileRule(85, 170),
    "gpt-4-turbo": TileRule(85, 170),
    "gpt-4.1-mini": PatchRule(Fraction("1.62")),
    "gpt-4.1-nano": PatchRule(Fraction("2.46")),
    "gpt-5": TileRule(70, 140),
    "gpt-5-mini": PatchRule(Fraction("1.62")),
    "gpt-5-nano": PatchRule(Fraction("2.46")),
    "o1": TileRule(75, 150),
    "o3": TileRule(75, 150),
    "o4-mini": PatchRule(Fraction("1.72")),
    "computer-use": TileRule(65, 129),
}
# Unknown OpenAI-style names are counted like gpt-4o.
DEFAULT_RULE = TileRule(85, 170)

# Other vendors' families, per image whatever its size: above Anthropic's documented ~1,600
# tokens for a 1.15-megapixel image (and its larger limit for the newest high-resolution models,
# which could not be confirmed here) and Gemini 3's 1,120 at media_resolution "high".
OTHER_FAMILY_IMAGE_TOKENS = 5000


def rule_for(model: str) -> TileRule | PatchRule:
    name = bare_model(model)
    matches = [prefix for prefix in RULES if name.startswith(prefix)]
    return RULES[max(matches, key=len)] if matches else DEFAULT_RULE


def image_tokens(model: str, detail: str | None = None,
                 width: int | None = None, height: int | None = None) -> int:
    if is_other_family(model):
        return OTHER_FAMILY_IMAGE_TOKENS
    known = bool(width and height and width > 0 and height > 0)
    rule = rule_for(model)
    if isinstance(rule, PatchRule):
        patches = _patches(width, height) if known else MAX_PATCHES
        return math.ceil(patches * rule.multiplier)
    if detail == "low":
        return rule.base
    tiles = _tiles(width, height) if known else MAX_TILES
    return rule.base + rule.per_tile * tiles


def _tiles(width: int, height: int) -> int:
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return math.ceil(w / 512) * math.ceil(h / 512)


def _patches(width: int, height: int) -> int:
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= MAX_PATCHES:
        return patches
    # OpenAI scales the image down until its patch grid fits the cap
    shrink = math.sqrt(MAX_PATCHES * 32 * 32 / (width * height))
    w, h = width * shrink, height * shrink
    w_fit = w * (math.floor(w / 32) / (w / 32))
    h_fit = h * w_fit / w
    return min(MAX_PATCHES, math.ceil(w_fit / 32) * math.ceil(h_fit / 32))
