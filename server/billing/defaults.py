"""st-ai's dated default prices, each with the provider page it was read from and the date.

Only prices read on the provider's own pages are listed; the operator overrides any of them
(`st-ai price set`) and prices every other model. Amounts are written as decimal text, in
USD, per 1M tokens (token prices), per image or per second of video.
"""
from __future__ import annotations

from server.billing.money import parse_amount
from server.billing.prices import ModelPrice, Origin, image_key, resolution_key

CHECKED = "2026-11-29"
ANTHROPIC_PRICING = "https://platform.claude.com/docs/en/docs/about-claude/pricing"


def _price(model: str, source_url: str, *, input: str | None = None, cached_input: str | None = None,
           output: str | None = None, cache_write: str | None = None,
           per_image: dict[str, str] | None = None, per_second: dict[str, str] | None = None,
           per_request: str | None = None, checked: str = CHECKED) -> ModelPrice:
    def amount(text: str | None) -> int | None:
        return None if text is None else parse_amount(text)

    return ModelPrice(
        model=model, input=amount(input), cached_input=amount(cached_input), output=amount(output),
        cache_write=amount(cache_write),
        per_image={image_key(k): parse_amount(v) for k, v in (per_image or {}).items()},
        per_second={resolution_key(k): parse_amount(v) for k, v in (per_second or {}).items()},
        per_request=amount(per_request), origin=Origin("default", source_url, checked))


# Anthropic: "5m cache writes" is the cache-write price (st-ai's default cache TTL);
# "cache hits and refreshes" is the cached-input price.
DEFAULT_PRICES: tuple[ModelPrice, ...] = (
    _price("claude-opus-5-5", "https://platform.claude.com/docs/zh-CN/models/opus-5-5/overview",
           input="4", cache_write="5", cached_input="0.20", output="20"),
    _price("claude-opus-5", "https://platform.claude.com/docs/en/models/opus-5/overview",
           input="5", cache_write="6.25", cached_input="0.50", output="25"),
    _price("claude-sonnet-5-5", "https://platform.claude.com/docs/zh-CN/models/sonnet-5-5/overview",
           input="2", cache_write="2.50", cached_input="0.20", output="10"),
    _price("claude-sonnet-5", "https://platform.claude.com/docs/zh-CN/models/sonnet-5/overview",
           input="2", cache_write="2.50", cached_input="0.20", output="10"),
    _price("claude-haiku-4-5", ANTHROPIC_PRICING,
           input="1", cache_write="1.25", cached_input="0.10", output="5"),
)
