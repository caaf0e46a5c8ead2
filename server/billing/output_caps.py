"""How many tokens a model may generate when the request sets no limit.

Dated table, checked 2026-11-29 against the vendors' model pages and reference tables quoted
in public code (see the comment on each row). Where a family's members differ, the row takes
the largest, so a reservation is never short. The longest matching prefix wins.
"""
from __future__ import annotations

import re

from server.billing.tokenizer import bare_model

TABLE_DATE = "2026-11-29"

OUTPUT_CAPS: dict[str, int] = {
    # OpenAI model pages. gpt-5: 400k context, 272k input + 128k output (also in OpenAI's
    # community thread on the 272k input limit); gpt-5.x assumed the same (not confirmed).
    "gpt-5": 128_000,
    # gpt-4.1 / -mini / -nano: 32,768
    "gpt-4.1": 32_768,
    "gpt-4.5": 16_384,
    # gpt-4o and gpt-4o-mini: 16,384 (the 2024-05-13 snapshot: 4,096)
    "gpt-4o": 16_384,
    "chatgpt-4o": 16_384,
    # o1, o3, o3-mini, o3-pro, o4-mini: 100,000 (reasoning tokens included); o1-mini 65,536
    "o1": 100_000,
    "o1-mini": 65_536,
    "o3": 100_000,
    "o4": 100_000,
    # gpt-4-turbo and the 1106/0125 previews: 4,096; gpt-4 8k and 32k: their whole context
    "gpt-4-turbo": 4_096,
    "gpt-4-1106": 4_096,
    "gpt-4-0125": 4_096,
    "gpt-4-32k": 32_768,
    "gpt-4": 8_192,
    "gpt-3.5": 4_096,
    # Anthropic model pages: Opus 4 / 4.1 32,000; Sonnet 4 / 4.5, Haiku 4.5, Opus 4.5 and
    # Sonnet 3.7 64,000 (3.7's 128k needs a beta header); Opus 4.6+ and Sonnet 4.6: 128,000;
    # 3.5 Sonnet / Haiku: 8,192. Newer or unlisted Claude models: 128,000.
    "claude": 128_000,
    "claude-opus-4-0": 32_000,
    "claude-opus-4-2025": 32_000,
    "claude-opus-4-1": 32_000,
    "claude-opus-4-5": 64_000,
    "claude-sonnet-4-0": 64_000,
    "claude-sonnet-4-2025": 64_000,
    "claude-sonnet-4-5": 64_000,
    "claude-haiku-4-5": 64_000,
    "claude-3-7": 64_000,
    "claude-3-5": 8_192,
    "claude-3-": 4_096,
    # Google model pages: Gemini 2.5 and 3 models: 65,536; Gemini 2.0 Flash: 8,192
    "gemini": 65_536,
    "gemini-2.0": 8_192,
    "gemini-1.5": 8_192,
}

_VENDOR_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?(?:anthropic|google|openai|meta|mistral|amazon)\.")

# Anything else (self-hosted, aliases, simulator): a cap at the level of current models.
DEFAULT_OUTPUT_CAP = 32_768


def default_output_cap(model: str) -> int:
    # Bedrock-style ids ("us.anthropic.claude-3-5-sonnet-…") put region and vendor first
    name = _VENDOR_PREFIX.sub("", bare_model(model))
    matches = [prefix for prefix in OUTPUT_CAPS if name.startswith(prefix)]
    return OUTPUT_CAPS[max(matches, key=len)] if matches else DEFAULT_OUTPUT_CAP
