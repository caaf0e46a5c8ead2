"""A chat request's token counts for settlement: the upstream's usage when it gave one,
else st-ai's own count of what it relayed (marked as an estimate)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from server.billing.tokenizer import TokenTally, encoding_for
from server.store.quick_init import quick_init


@quick_init
@dataclass(frozen=True)
class TokenCounts:
    prompt: int
    cached: int        # of `prompt`: read from the upstream's prompt cache
    completion: int
    estimate: bool
    cache_write: int = 0  # of `prompt`: written to the upstream's prompt cache


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():  # gRPC Structs carry numbers as doubles
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def from_usage(usage: Any) -> TokenCounts | None:
    """OpenAI's usage object as counts, or None when it is missing or malformed. Tokens
    written to a prompt cache (Anthropic's cache creation) come as
    `prompt_tokens_details.cache_write_tokens`, every provider's the same way."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached = min(_count(details.get("cached_tokens")) or 0, prompt)
    written = min(_count(details.get("cache_write_tokens")) or 0, prompt - cached)
    return TokenCounts(prompt, cached, completion, False, written)


def counted(prompt_estimate: int, texts: Iterable[str], model: str) -> TokenCounts:
    """No usage from the upstream: the prompt as estimated before relaying, the completion
    counted from the text relayed."""
    tally = TokenTally(encoding_for(model))
    for text in texts:
        tally.add(text)
    return TokenCounts(prompt_estimate, 0, tally.total(), True)


def answer_texts(answer: dict) -> list[str]:
    """The generated text of a whole chat answer: contents, refusals and tool-call arguments."""
    texts: list[str] = []
    for choice in _items(answer.get("choices")):
        if isinstance(choice, dict):
            texts.extend(message_texts(choice.get("message") or choice.get("delta")))
    return texts


# a message with no other keys than these has only its content to count
_CONTENT_ONLY = frozenset({"role", "content"})


def _items(value: Any) -> list:
    """A list an upstream's answer should hold; anything else (a broken answer) holds nothing."""
    return value if isinstance(value, list) else []


def message_texts(message: Any) -> list[str]:
    if not isinstance(message, dict):
        return []
    if message.keys() <= _CONTENT_ONLY:  # most stream deltas: only their content can count
        content = message.get("content")
        return [content] if isinstance(content, str) else []
    texts = [message[k] for k in ("content", "refusal", "reasoning_content") if isinstance(message.get(k), str)]
    for call in _items(message.get("tool_calls")):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            texts.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
    return texts


# Relayed text is counted in batches of this many characters, so a long stream holds no
# more than this much text for its count.
COUNT_BATCH_CHARS = 64 * 1024


class StreamMeter:
    """What a stream has relayed so far, for settling it however it ends: the upstream's
    usage if one arrived, else a running count of the generated text."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._pending: list[str] = []
        self._pending_chars = 0
        self._counted = 0
        self.usage: Any = None
        self.content_sent = False

    def saw(self, chunk: dict) -> None:
        if usage := chunk.get("usage"):
            self.usage = usage
        for choice in _items(chunk.get("choices")):
            if isinstance(choice, dict):
                for text in message_texts(choice.get("delta")):
                    self._pending.append(text)
                    self._pending_chars += len(text)
        if self._pending_chars >= COUNT_BATCH_CHARS:
            self._count_pending()

    def _count_pending(self) -> None:
        if self._pending:
            self._counted += counted(0, self._pending, self._model).completion
        self._pending, self._pending_chars = [], 0

    def counts(self, prompt_estimate: Callable[[], int]) -> TokenCounts:
        """`prompt_estimate` is asked only when the upstream's usage is missing."""
        usage = from_usage(self.usage)
        if usage is not None:
            return usage
        self._count_pending()
        return TokenCounts(prompt_estimate(), 0, self._counted, True)
