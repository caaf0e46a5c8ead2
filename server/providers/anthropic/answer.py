"""An Anthropic Message as an OpenAI chat completion, and Anthropic's usage as OpenAI's.
Pure: no I/O."""
from __future__ import annotations

from typing import Any

import orjson

# stop_reason -> finish_reason. pause_turn (a long server-tool turn paused) ends this answer
# as it stands; the model's context window running out is a length stop like max_tokens.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage(raw: Any) -> dict:
    """Anthropic's usage in OpenAI's shape: every input token (uncached, read from the
    prompt cache, written to it) is a prompt token; cache reads are `cached_tokens`, cache
    writes `cache_write_tokens` (priced at the cache-write price)."""
    raw = raw if isinstance(raw, dict) else {}
    read, written = _count(raw.get("cache_read_input_tokens")), _count(raw.get("cache_creation_input_tokens"))
    prompt = _count(raw.get("input_tokens")) + read + written
    completion = _count(raw.get("output_tokens"))
    shaped: dict[str, Any] = {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
    }
    details = raw.get("output_tokens_details")
    if isinstance(details, dict) and "thinking_tokens" in details:
        shaped["completion_tokens_details"] = {"reasoning_tokens": _count(details["thinking_tokens"])}
    return shaped


def tool_call(block: dict, index: int | None = None) -> dict:
    call = {"id": block["id"], "type": "function",
            "function": {"name": block["name"], "arguments": orjson.dumps(block.get("input") or {}).decode()}}
    return call if index is None else {"index": index, **call}


def thinking_block(block: dict) -> dict:
    """A thinking block as the client keeps it (`thinking_blocks`, as LiteLLM names them) and
    sends back with the turn, signature included: Anthropic wants it back before a tool
    call's results."""
    if block["type"] == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block["data"]}
    return {"type": "thinking", "thinking": block["thinking"], "signature": block.get("signature") or ""}


def completion(message: dict, created: int) -> dict:
    """A whole Message as a `chat.completion`. Raises KeyError/TypeError on a message
    without the documented shape (the caller reads it inside failures.reading)."""
    texts: list[str] = []
    thinking: list[dict] = []
    calls: list[dict] = []
    for block in message["content"]:
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(thinking_block(block))
        elif kind == "tool_use":
            calls.append(tool_call(block))
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thought := "".join(b.get("thinking", "") for b in thinking):
        reply["reasoning_content"] = thought
    if thinking:
        reply["thinking_blocks"] = thinking
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message["id"], "object": "chat.completion", "created": created, "model": message["model"],
        "choices": [{"index": 0, "message": reply, "finish_reason": finish_reason(message.get("stop_reason"))}],
        "usage": usage(message.get("usage")),
    }
