"""Token counting for the simulator: words and punctuation marks each count one,
images a flat 85 (OpenAI's low-detail price), plus OpenAI's per-message overhead."""
from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
PER_MESSAGE = 3
PER_REPLY = 3
PER_IMAGE = 85


_WORD_REST = re.compile(r"\w*", re.UNICODE)
# Long texts are counted a window at a time, so a 30 MB prompt costs a window's list
# of tokens, not millions of strings at once.
_WINDOW = 1 << 20


def count(text: str) -> int:
    if len(text) <= _WINDOW:
        return len(_TOKEN.findall(text))
    total, start = 0, 0
    while start < len(text):
        # end the window after a whole word, so no token is cut in two
        end = _WORD_REST.match(text, min(start + _WINDOW, len(text))).end()
        total += len(_TOKEN.findall(text, start, end))
        start = end
    return total


def pieces(text: str) -> list[str]:
    """`text` cut into stream deltas, one token each with its following spaces."""
    return re.findall(r"\w+\s*|[^\w\s]\s*|\s+", text, re.UNICODE)


def prompt_tokens(messages: list[dict]) -> int:
    total = PER_REPLY
    for message in messages:
        total += PER_MESSAGE + count(str(message.get("role", "")))
        content = message.get("content")
        if isinstance(content, str):
            total += count(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "image_url":
                    total += PER_IMAGE
                elif isinstance(part.get("text"), str):
                    total += count(part["text"])
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += count(str(function.get("name", ""))) + count(str(function.get("arguments", "")))
    return total
