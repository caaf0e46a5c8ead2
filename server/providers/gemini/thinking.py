"""OpenAI's `reasoning_effort` as the Gemini API's `thinkingConfig`, in the form the model's
generation takes: Gemini 3 and later take a `thinkingLevel` (Gemini 3 Pro only "low" and
"high"; "minimal" not on Pro models), Gemini 2.5 a `thinkingBudget` in tokens (Pro models
cannot turn thinking off: 128 is their least). Older generations do not think, so nothing
is sent. Thought summaries are asked for whenever thinking is, so they reach the client as
`reasoning_content`. Pure functions."""
from __future__ import annotations

import re

from server.errors import invalid_request

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# Gemini 2.5 budgets, as Google's own OpenAI-compatible endpoint maps the efforts
BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
PRO_LEAST_BUDGET, PRO_MOST_BUDGET = 128, 32768
LEVELS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
          "xhigh": "high"}
VERSION = re.compile(r"gemini-(\d+)(?:\.(\d+))?")


def generation(model: str) -> tuple[int, int] | None:
    """(major, minor) of a Gemini model name; None for a name that carries none."""
    match = VERSION.search(model.lower())
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def thinking_config(effort: object, model: str) -> dict | None:
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise invalid_request(f"'reasoning_effort' must be one of {', '.join(EFFORTS)}.", "reasoning_effort",
                              "invalid_value")
    version = generation(model)
    pro = "-pro" in model.lower()
    if version is not None and version < (2, 5):
        return None
    if version is not None and version >= (3, 0):
        level = LEVELS[effort]
        if pro and level == "minimal":
            level = "low"
        if pro and version == (3, 0) and level == "medium":
            level = "high"
        return {"thinkingLevel": level, "includeThoughts": True}
    budget = BUDGETS[effort]
    if pro:
        budget = PRO_MOST_BUDGET if effort == "xhigh" else max(budget, PRO_LEAST_BUDGET)
    return {"thinkingBudget": budget, "includeThoughts": budget > 0}
