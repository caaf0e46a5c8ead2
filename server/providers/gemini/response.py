"""A Gemini `GenerateContentResponse` as OpenAI's chat completion: text parts → `content`,
thought summaries → `reasoning_content`, function calls → `tool_calls` (ids generated
where Gemini gives none; thought signatures carried inside, see signatures.py), finish
reasons and usage mapped, a blocked prompt a 400 `content_filter`. Pure functions; what
the answer lacks or has in another shape raises (the caller reads inside
failures.reading, which makes that a retryable 502)."""
from __future__ import annotations

import secrets
from typing import Any, Callable

import orjson

from server.errors import GatewayError
from server.providers.gemini import signatures

FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                      "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"})
FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}

IdMaker = Callable[[], str]


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def finish_reason(reason: Any, called: bool) -> str | None:
    """OpenAI's finish_reason for a candidate's `finishReason` (None while it goes on)."""
    if not isinstance(reason, str) or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason in FILTERED:
        return "content_filter"
    if called:
        return "tool_calls"
    return FINISH.get(reason, "stop")


def blocked(answer: dict) -> GatewayError | None:
    """The error for a prompt Gemini refused to answer (`promptFeedback.blockReason`)."""
    feedback = answer.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if not reason or answer.get("candidates"):
        return None
    return GatewayError(400, f"Gemini refused the prompt ({reason}): its content filter blocked it.",
                        "content_filter")


def usage(meta: Any) -> dict | None:
    """`usageMetadata` as OpenAI's usage: thoughts are completion tokens, and reasoning tokens
    among them; cached content is part of the prompt, and counted as cached. None when it is
    missing or a count is not a count (st-ai then counts the request itself)."""
    if not isinstance(meta, dict):
        return None
    try:
        prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
        thoughts = _count(meta, "thoughtsTokenCount")
        completion = _count(meta, "candidatesTokenCount") + thoughts
        cached = _count(meta, "cachedContentTokenCount")
    except ValueError:
        return None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}


def _count(meta: dict, key: str) -> int:
    value = meta.get(key)
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"usageMetadata.{key} is not a count")
    return value


def tool_call(part: dict, make_id: IdMaker) -> dict:
    call = part["functionCall"]
    arguments = call.get("args") or {}
    if not isinstance(arguments, dict) or not isinstance(call["name"], str):
        raise TypeError("functionCall has no name or its args are not an object")
    given = call.get("id")
    return signatures.attach({"id": given if isinstance(given, str) and given else make_id(), "type": "function",
                              "function": {"name": call["name"], "arguments": orjson.dumps(arguments).decode()}},
                             part.get("thoughtSignature"))


def candidate_index(candidate: dict, position: int) -> int:
    index = candidate.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else position


def parts_of(candidate: dict) -> list[dict]:
    content = candidate.get("content") or {}
    parts = content.get("parts") or []
    if not isinstance(parts, list):
        raise TypeError("content.parts is not a list")
    return [p for p in parts if isinstance(p, dict)]


def to_openai(answer: dict, model: str, created: int, make_id: IdMaker = new_call_id) -> dict:
    error = blocked(answer)
    if error is not None:
        raise error
    choices = []
    for position, candidate in enumerate(answer.get("candidates") or []):
        texts, thoughts, calls = [], [], []
        for part in parts_of(candidate):
            if "functionCall" in part:
                calls.append(tool_call(part, make_id))
            elif isinstance(part.get("text"), str):
                (thoughts if part.get("thought") else texts).append(part["text"])
        message: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
        if thoughts:
            message["reasoning_content"] = "".join(thoughts)
        if calls:
            message["tool_calls"] = calls
        choices.append({"index": candidate_index(candidate, position), "message": message,
                        "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)) or "stop"})
    completion = {"id": completion_id(answer), "object": "chat.completion", "created": created, "model": model,
                  "choices": choices}
    counted = usage(answer.get("usageMetadata"))
    if counted is not None:
        completion["usage"] = counted
    return completion


def completion_id(answer: dict) -> str:
    given = answer.get("responseId")
    return f"chatcmpl-{given}" if isinstance(given, str) and given else "chatcmpl-" + secrets.token_hex(12)
