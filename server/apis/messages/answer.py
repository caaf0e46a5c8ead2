"""A chat completion as an Anthropic Message. Pure: no I/O.

Decisions where chat says less than a Message:
- the stop reason: chat's `stop` is `end_turn`, or `stop_sequence` when the choice names the
  stop string that matched (`stop_reason` as a string, as vLLM and the OpenAI-compatible
  servers built on it report it); chat has no other way to tell;
- a tool call whose arguments are not a JSON object: its input is `{}`, and its raw text
  goes in a text block just before it, so nothing the model wrote is lost and the client's
  tool is never called with something that is not an object;
- thinking: `thinking_blocks` (signed, from an Anthropic upstream) as they are; otherwise
  `reasoning_content` as one thinking block with an empty signature (no upstream signed it;
  the request side drops unsigned blocks sent back)."""
from __future__ import annotations

import secrets
from typing import Any

import orjson

from server.providers.anthropic.answer import FINISH_REASONS

# finish_reason -> stop_reason: the inverse of the anthropic channel's table, for the stop
# reasons chat can express (several Anthropic reasons share one finish reason: the first wins)
STOP_REASONS = {finish: stop for stop, finish in reversed(list(FINISH_REASONS.items()))}
STOP_REASONS["stop"] = "end_turn"
STOP_REASONS["function_call"] = "tool_use"


def message_id(chat_id: Any = None) -> str:
    """`msg_` ids as Anthropic's; a chat id is kept inside so logs can match the two."""
    if isinstance(chat_id, str) and chat_id.startswith("msg_"):
        return chat_id
    tail = chat_id if isinstance(chat_id, str) and chat_id else secrets.token_hex(12)
    return f"msg_{tail}"


def tool_use_id(call_id: Any) -> str:
    return call_id if isinstance(call_id, str) and call_id else f"toolu_{secrets.token_hex(12)}"


def stop(finish_reason: Any, matched: Any = None, called: bool = False) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a choice's finish_reason."""
    if finish_reason == "stop" and isinstance(matched, str) and matched:
        return "stop_sequence", matched
    if finish_reason is None:
        return ("tool_use" if called else "end_turn"), None
    return STOP_REASONS.get(finish_reason, "end_turn"), None


def usage(chat_usage: Any) -> dict:
    """Chat's usage as Anthropic's: input_tokens counts only the uncached input (chat's
    prompt tokens hold the cache reads and writes too)."""
    chat_usage = chat_usage if isinstance(chat_usage, dict) else {}
    details = chat_usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read, written = _count(details.get("cached_tokens")), _count(details.get("cache_write_tokens"))
    return {"input_tokens": max(_count(chat_usage.get("prompt_tokens")) - read - written, 0),
            "output_tokens": _count(chat_usage.get("completion_tokens")),
            "cache_read_input_tokens": read, "cache_creation_input_tokens": written}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def thinking_blocks(message: dict) -> list[dict]:
    blocks = message.get("thinking_blocks")
    if isinstance(blocks, list) and blocks:
        return [_thinking(block) for block in blocks if isinstance(block, dict)]
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        return [{"type": "thinking", "thinking": reasoning, "signature": ""}]
    return []


def _thinking(block: dict) -> dict:
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": str(block.get("data") or "")}
    return {"type": "thinking", "thinking": str(block.get("thinking") or ""),
            "signature": str(block.get("signature") or "")}


def tool_use_blocks(call: dict) -> list[dict]:
    """A chat tool call as a tool_use block (after a text block holding its arguments when
    they are not a JSON object)."""
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    raw = function.get("arguments")
    arguments = parse_arguments(raw)
    block = {"type": "tool_use", "id": tool_use_id(call.get("id")), "name": str(function.get("name") or ""),
             "input": arguments if arguments is not None else {}}
    if arguments is None:
        return [{"type": "text", "text": f"(tool call arguments that are not a JSON object: {raw})"}, block]
    return [block]


def parse_arguments(raw: Any) -> dict | None:
    """A tool call's arguments as an object; None when they are not one (empty text is {})."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def message(completion: dict, model: str | None = None) -> dict:
    """The Message for a chat completion's first choice. `model` is the name the client
    asked for (the completion's may be the upstream's)."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reply = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content = thinking_blocks(reply)
    text = reply.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    elif isinstance(reply.get("refusal"), str) and reply["refusal"]:
        content.append({"type": "text", "text": reply["refusal"]})
    calls = [call for call in reply.get("tool_calls") or [] if isinstance(call, dict)]
    for call in calls:
        content.extend(tool_use_blocks(call))
    stop_reason, stop_sequence = stop(choice.get("finish_reason"), choice.get("stop_reason"), bool(calls))
    return {"id": message_id(completion.get("id")), "type": "message", "role": "assistant",
            "model": model or str(completion.get("model") or ""), "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage(completion.get("usage"))}
