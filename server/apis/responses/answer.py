"""A chat completion as a Responses API `response` object. Pure.

The output items follow the chat message in the order OpenAI's models give them:
reasoning, the message, then one `function_call` item per tool call."""
from __future__ import annotations

import secrets
from typing import Any, Callable

from server.apis.responses import carry
from server.apis.responses.request import ResponsesRequest

IdMaker = Callable[[str], str]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def shell(request: ResponsesRequest, response_id: str, created_at: int) -> dict:
    """The response as it stands before any output: what `response.created` shows, and
    what the finished response fills in."""
    return {"id": response_id, "object": "response", "created_at": created_at, "status": "in_progress",
            "error": None, "incomplete_details": None, "model": request.model, "output": [], "usage": None,
            **request.echo}


def status(finish_reason: Any) -> tuple[str, dict | None]:
    """(status, incomplete_details) for a chat finish_reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage(chat_usage: Any) -> dict | None:
    if not isinstance(chat_usage, dict):
        return None
    prompt = chat_usage.get("prompt_tokens_details") or {}
    completion = chat_usage.get("completion_tokens_details") or {}
    given, made = _count(chat_usage.get("prompt_tokens")), _count(chat_usage.get("completion_tokens"))
    return {"input_tokens": given, "output_tokens": made,
            "total_tokens": _count(chat_usage.get("total_tokens")) or given + made,
            "input_tokens_details": {"cached_tokens": _count(prompt.get("cached_tokens")),
                                     "cache_write_tokens": _count(prompt.get("cache_write_tokens"))},
            "output_tokens_details": {"reasoning_tokens": _count(completion.get("reasoning_tokens"))}}


def reasoning_item(item_id: str, text: str, thinking_blocks: Any, extras: dict[str, Any]) -> dict:
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "status": "completed",
                            "summary": [{"type": "summary_text", "text": text}] if text else []}
    if (state := carry.pack(thinking_blocks, extras)) is not None:
        item["encrypted_content"] = state
    return item


def message_item(item_id: str, text: str | None, refusal: str | None, item_status: str) -> dict:
    content: list[dict] = []
    if text is not None:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": item_id, "type": "message", "role": "assistant", "status": item_status, "content": content}


def call_item(item_id: str, call_id: str, name: str, arguments: str, item_status: str = "completed") -> dict:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": item_status}


def call_extras(tool_calls: Any) -> dict[str, Any]:
    """Call id -> the provider state a tool call carries (Gemini's thought signature)."""
    return {call["id"]: call["extra_content"] for call in tool_calls or []
            if isinstance(call, dict) and isinstance(call.get("id"), str)
            and isinstance(call.get("extra_content"), dict)}


def output_items(message: dict, item_status: str, make_id: IdMaker = new_id) -> list[dict]:
    items: list[dict] = []
    calls = message.get("tool_calls") or []
    reasoning = message.get("reasoning_content")
    extras = call_extras(calls)
    if reasoning or message.get("thinking_blocks") or extras:
        items.append(reasoning_item(make_id("rs"), reasoning if isinstance(reasoning, str) else "",
                                    message.get("thinking_blocks"), extras))
    text, refusal = message.get("content"), message.get("refusal")
    if isinstance(text, list):  # content parts, as some upstreams answer
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if (isinstance(text, str) and text) or refusal or not calls:
        items.append(message_item(make_id("msg"), text if isinstance(text, str) else None, refusal, item_status))
    for call in calls:
        function = call.get("function") or {}
        items.append(call_item(make_id("fc"), call.get("id") or make_id("call"), function.get("name") or "",
                               function.get("arguments") or ""))
    return items


def response(completion: dict, request: ResponsesRequest, response_id: str, created_at: int,
             completed_at: int | None = None, make_id: IdMaker = new_id) -> dict:
    """The `response` object for a chat completion (its first choice: the Responses API
    has one)."""
    choice = (completion.get("choices") or [{}])[0]
    state, incomplete = status(choice.get("finish_reason"))
    answered = shell(request, response_id, created_at)
    answered.update(status=state, incomplete_details=incomplete,
                    output=output_items(choice.get("message") or {}, state, make_id),
                    usage=usage(completion.get("usage")))
    if state == "completed":
        answered["completed_at"] = completed_at if completed_at is not None else created_at
    return answered
