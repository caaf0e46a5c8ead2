"""What each Claude model and API version takes, decided from the model's name.

Dated facts (checked 2026-11-29 against Anthropic's versioning, thinking, extended-thinking
and effort pages):
- `anthropic-version: 2026-10-21` (the current version; `2023-06-01` before it) removed
  `temperature`, `top_p` and `top_k`: a request that sends any of them gets a 400.
- On 2023-06-01, Claude Opus 4.7 and later models (every Claude 5 model too) refuse them
  as well; Opus 4.1 and the 4.5 / 4.6 models take `temperature` or `top_p` but not both.
- Thinking: Claude 3.7 up to the 4.5 models take only a token budget
  (`{"type": "enabled", "budget_tokens": N}`, N >= 1024 and below `max_tokens`); the 4.6
  models and everything after take adaptive thinking with `output_config.effort` (4.7 and
  later reject the budget form); Claude 3.5 and older do not think. Thinking takes no
  `temperature` and a `top_p` only between 0.95 and 1.
- Effort levels: low, medium, high, max; `xhigh` only on Opus 4.7 / 4.8 and the Claude 5
  Opus, Sonnet, Fable and Mythos models.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

CURRENT_VERSION = "2026-10-21"
# The first API version without sampling parameters (versions are dates, so they sort as text).
NO_SAMPLING_SINCE = "2026-10-21"

# claude-opus-4-7, claude-sonnet-4-5-20250929, claude-haiku-5-5, claude-3-7-sonnet-20250219
_NAMED = re.compile(r"claude-([a-z]+)-(\d+)(?:-(\d{1,2}))?(?:-|$)")
_NUMBERED = re.compile(r"claude-(\d+)(?:-(\d{1,2}))?-([a-z]+)")


@dataclass(frozen=True)
class Rules:
    sampling: str          # "all": temperature, top_p, top_k; "one": temperature or top_p; "none"
    thinking: str | None   # "budget", "adaptive", or None (the model does not think)
    xhigh: bool = False    # takes effort "xhigh"


def version_of(model: str) -> tuple[str, int, int] | None:
    """(family, major, minor) of a Claude model name, None for a name that is not one."""
    name = model.lower().rsplit("/", 1)[-1]
    start = name.find("claude-")
    if start < 0:
        return None
    name = name[start:]
    if name.startswith("claude-mythos-preview"):
        return ("mythos", 4, 7)  # released with Opus 4.7
    if match := _NAMED.match(name):
        family, major, minor = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        return family, major, minor
    if match := _NUMBERED.match(name):
        return match.group(3), int(match.group(1)), int(match.group(2) or 0)
    return None


def rules(model: str, api_version: str) -> Rules:
    version = version_of(model)
    if version is None:
        # An alias st-ai does not know: the current generation's rules, which send nothing
        # a current model refuses.
        version = ("opus", 5, 0)
    family, major, minor = version
    generation = (major, minor)
    if api_version >= NO_SAMPLING_SINCE or generation >= (4, 7):
        sampling = "none"
    elif generation >= (4, 1):
        sampling = "one"
    else:
        sampling = "all"
    if generation >= (4, 6):
        thinking = "adaptive"
    elif generation >= (3, 7):
        thinking = "budget"
    else:
        thinking = None
    xhigh = (family == "opus" and generation >= (4, 7)
             or family in ("sonnet", "fable", "mythos") and major >= 5)
    return Rules(sampling, thinking, xhigh)
