"""Worst-case size of a chat request before it is relayed, for reserving quota: the prompt
tokens it can cost and the output tokens it may generate. Pure: no I/O, no clock.

The prompt count follows OpenAI's rendering (the cookbook's "How to count tokens with
tiktoken", which matches the API's usage on its examples): every message costs a few tokens of
framing, every reply is primed with three; text is counted with the model family's encoding.
Tool definitions and schemas are rendered by OpenAI in a compact TypeScript-like form; they are
counted here as their JSON, which spells out every key, quote and brace of that form and more.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from server.billing.image_size import data_url_dimensions
from server.billing.image_tokens import image_tokens
from server.billing.output_caps import default_output_cap
from server.billing.tokenizer import EXACT_BYTES, TokenTally, encoding_for, is_other_family, utf8_length

# <|start|>{role}<|message|>…<|end|>: 3 for current models, 4 for the first gpt-3.5 snapshot
PER_MESSAGE = 4
PER_NAME = 1
REPLY_PRIMING = 3
# a tool call in an assistant message: its framing beyond the id, name and arguments text
PER_TOOL_CALL = 8
# per function definition, and the "namespace functions { … }" around them all; the cookbook
# measures 7–10 and 12
PER_TOOL = 12
TOOLS_WRAPPER = 16
RESPONSE_FORMAT_WRAPPER = 16
# Other vendors put a system prompt of their own before tool definitions: Anthropic documents
# 346 tokens for its current models (313 with tool_choice any/tool).
OTHER_FAMILY_TOOL_PROMPT = 500

IMAGE_PART_TYPES = ("image_url", "input_image")


def prompt_tokens(body: dict[str, Any], model: str, *, exact_bytes: int = EXACT_BYTES) -> int:
    """Prompt tokens of an OpenAI chat request, never below what the upstream will report.

    Counts exactly up to `exact_bytes` of text and by the byte bound past it, so a 30 MB body
    costs milliseconds. Images count by OpenAI's per-image formula, at the worst size when
    a link carries no dimensions (inline images are measured from their header). `model` is
    the upstream model the request will reach.
    """
    tally = TokenTally(encoding_for(model), exact_bytes)
    fixed = REPLY_PRIMING
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        fixed += PER_MESSAGE
        if isinstance(message, dict):
            if message.get("name"):
                fixed += PER_NAME
            calls = message.get("tool_calls")
            fixed += PER_TOOL_CALL * len(calls) if isinstance(calls, list) else 0
        fixed += _add_strings(message, tally, model)
    definitions = [t for key in ("tools", "functions") if isinstance(body.get(key), list) for t in body[key]]
    if definitions:
        fixed += TOOLS_WRAPPER + PER_TOOL * len(definitions)
        fixed += OTHER_FAMILY_TOOL_PROMPT if is_other_family(model) else 0
        for definition in definitions:
            _add_json(definition, tally)
    for key in ("response_format", "tool_choice", "function_call"):
        value = body.get(key)
        if isinstance(value, dict):
            fixed += RESPONSE_FORMAT_WRAPPER
            _add_json(value, tally)
    return tally.total() + fixed


@dataclass
class Prompt:
    """A chat request's prompt tokens before it is relayed, known two ways. `bound` takes no
    tokenizer (every token is at least one byte of text): enough to reserve quota and
    tokens-per-minute with, as a reservation must only never be below the truth. `exact()`
    counts with the model's encoding when asked: when the bound was refused (a reservation
    is never refused for the bound's slack), or when the upstream reported no usage and the
    prompt is billed at st-ai's count. A gateway whose upstreams report usage then never
    loads an encoding (tens of MB each) nor spends the time to run it."""
    body: dict[str, Any]
    model: str  # the upstream model the request will reach
    bound: int = field(init=False)
    _exact: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.bound = prompt_tokens(self.body, self.model, exact_bytes=0)

    def exact(self) -> int:
        if self._exact is None:
            self._exact = prompt_tokens(self.body, self.model)
        return self._exact


def max_output_tokens(body: dict[str, Any], model: str) -> int:
    """The most output tokens the request can be billed for: its own limit
    (`max_completion_tokens`, or the legacy `max_tokens`; the larger if both are set) or the
    model's default cap, for each of its `n` choices."""
    asked = [v for v in (_positive_int(body.get("max_completion_tokens")),
                         _positive_int(body.get("max_tokens"))) if v]
    per_choice = max(asked) if asked else default_output_cap(model)
    return per_choice * (_positive_int(body.get("n")) or 1)


def _add_strings(value: Any, tally: TokenTally, model: str) -> int:
    """Adds every string under `value` to the tally; returns the tokens of the images met.

    Walks with an explicit stack: a deeply nested body must not exhaust the recursion limit.
    """
    images = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            tally.add(item)
        elif isinstance(item, dict):
            if item.get("type") in IMAGE_PART_TYPES:
                images += _image_part(item, model)
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return images


def _image_part(part: dict[str, Any], model: str) -> int:
    # The URL or base64 data is not text the model reads; the image costs what its formula
    # says, at its real size when the data is inline, at the worst size when it is a link.
    image = part.get("image_url")
    detail = image.get("detail") if isinstance(image, dict) else part.get("detail")
    url = image.get("url") if isinstance(image, dict) else image
    size = data_url_dimensions(url) if isinstance(url, str) else None
    detail = detail if isinstance(detail, str) else None
    if size is None:
        return image_tokens(model, detail)
    # A JPEG's EXIF orientation may turn it a quarter, and patch fitting is not symmetric
    width, height = size
    return max(image_tokens(model, detail, width, height), image_tokens(model, detail, height, width))


def _add_json(value: Any, tally: TokenTally) -> None:
    """A schema is counted as its JSON while that fits the exact budget. A larger one is
    bounded by the bytes of any rendering of it, without serializing it first."""
    size = _rendered_size_bound(value)
    if size <= tally.exact_left:
        tally.add_json(orjson.dumps(value, default=str))
    else:
        tally.add_bound(size)


# Bytes a rendering adds around each key or item: quotes, colon, comma, newline, indentation,
# "// " before a description, "?" on an optional property, the type's name.
PER_ENTRY_BYTES = 24


def _rendered_size_bound(value: Any) -> int:
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += utf8_length(item)
        elif isinstance(item, dict):
            size += PER_ENTRY_BYTES * len(item) + sum(utf8_length(str(key)) for key in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            size += PER_ENTRY_BYTES * len(item)
            stack.extend(item)
        else:
            size += len(str(item))
    return size


def _positive_int(value: Any) -> int:
    # gRPC clients' numbers arrive as doubles (google.protobuf.Struct)
    if isinstance(value, bool):
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else 0
