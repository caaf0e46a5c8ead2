"""Token counts with OpenAI's BPE encodings: offline, and bounded in time and memory.

toktok-rs compiles cl100k_base and o200k_base into its extension module (ids identical to
tiktoken's, which tests/test_billing_estimate.py checks), so nothing is fetched at run time;
tiktoken itself downloads its encoding files on first use.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import toktok

O200K = "o200k_base"
CL100K = "cl100k_base"

# Text counted exactly per request. Past it each string costs its UTF-8 length: byte-level BPE
# splits the bytes into tokens of at least one byte each, so a token count never exceeds the byte
# count. 256 KiB keeps the worst case (base64-like text, the slowest input for BPE) near 40 ms.
EXACT_BYTES = 256 * 1024

# Non-ASCII strings past the budget are measured in slices, so a 30 MB string never gets a 30 MB
# (or larger) encoded copy just to learn its length.
_SLICE_CHARS = 1 << 20


@dataclass(frozen=True)
class Encoding:
    """The encoding to count with, and how far to scale its count for a family it only
    approximates: as (numerator, denominator), so money never meets a float."""
    name: str
    scale: tuple[int, int] = (1, 1)


# Families with a tokenizer of their own. No offline tokenizer ships for most of them, so they
# are counted with o200k and scaled by 3/2: Claude's tokenizers make roughly 1.2–1.35× the
# tokens of cl100k on English (more on code and non-Latin text), and o200k makes fewer tokens
# than cl100k; Gemini's, Llama's, Qwen's and Mistral's vocabularies are of o200k's size or
# smaller. 3/2 covers those ratios with room; it is a safety margin, not a measurement.
OTHER_FAMILIES = ("claude", "gemini", "gemma", "llama", "mistral", "mixtral", "codestral",
                  "ministral", "qwen", "deepseek", "grok", "command", "kimi", "moonshot",
                  "glm", "ernie", "yi-", "phi-", "nova", "doubao", "hunyuan", "minimax")
OTHER_SCALE = (3, 2)


def bare_model(model: str) -> str:
    """'openai/gpt-4o', 'models/gemini-2.5-pro' and 'GPT-4o' all name the same model."""
    return model.rsplit("/", 1)[-1].strip().lower()


def is_other_family(model: str) -> bool:
    name = bare_model(model)
    return any(family in name for family in OTHER_FAMILIES)


@functools.lru_cache(maxsize=1024)  # asked for every request; a gateway serves a few models
def encoding_for(model: str) -> Encoding:
    """gpt-4o, gpt-4.1, gpt-4.5, gpt-5, the o-series and unknown names: o200k; gpt-3.5 and
    gpt-4 (8k/32k/turbo): cl100k; other vendors' families: o200k scaled by OTHER_SCALE."""
    name = bare_model(model)
    if is_other_family(name):
        return Encoding(O200K, OTHER_SCALE)
    if name.startswith(("gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada")):
        return Encoding(CL100K)
    if name.startswith("gpt-4") and not name.startswith(("gpt-4o", "gpt-4.")):
        return Encoding(CL100K)
    return Encoding(O200K)


def utf8_length(text: str) -> int:
    if text.isascii():  # O(1) in CPython: the string records it
        return len(text)
    return sum(len(text[i:i + _SLICE_CHARS].encode("utf-8", "surrogatepass"))
               for i in range(0, len(text), _SLICE_CHARS))


class TokenTally:
    """Adds up the tokens of many strings of one request: exactly while the exact budget
    lasts, by the byte bound after it. Strings are counted in one batch at the end."""

    def __init__(self, encoding: Encoding, exact_bytes: int = EXACT_BYTES) -> None:
        self._encoding = encoding
        self._exact_left = exact_bytes
        self._exact: list[str] = []
        self._bound = 0

    def add(self, text: str) -> None:
        if not text:
            return
        if len(text) > self._exact_left:  # every character is at least one byte
            self._bound += utf8_length(text)
            return
        size = utf8_length(text)
        if size > self._exact_left:
            self._bound += size
            return
        self._exact_left -= size
        self._exact.append(_encodable(text))

    @property
    def exact_left(self) -> int:
        return self._exact_left

    def add_bound(self, tokens: int) -> None:
        """Tokens already bounded by the caller (from a byte count)."""
        self._bound += tokens

    def add_json(self, data: bytes) -> None:
        """Serialized JSON (tool definitions, schemas): counted as the text it is."""
        if len(data) > self._exact_left:
            self._bound += len(data)
            return
        self._exact_left -= len(data)
        self._exact.append(data.decode("utf-8", "replace"))

    def total(self) -> int:
        exact = sum(toktok.batch_count(self._exact, self._encoding.name, threads=1)) if self._exact else 0
        numerator, denominator = self._encoding.scale
        return -(-(exact + self._bound) * numerator // denominator)


def _encodable(text: str) -> str:
    # JSON may carry lone surrogates; the tokenizer needs valid UTF-8. Each one becomes U+FFFD
    # (3 bytes), which counts at least as many tokens as the byte it would be upstream.
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
