"""What the fake OpenAI server (tests/fakes/openai_upstream.py) answers on its Responses API
(`POST /v1/responses`): a `response` object, or the same as the typed events OpenAI
streams, in OpenAI's order with their sequence numbers. It refuses what OpenAI refuses
of a request that stores nothing: a `previous_response_id` (there is nothing to continue)
and a reasoning item sent back without its encrypted content.

The answer follows the request: a function tool is called (its arguments drawn from its
JSON Schema) unless the input ends with a call's output, which the answer then repeats;
a `text.format` json_schema gets a JSON text that fits the schema; a built-in web_search
tool makes a `web_search_call` item first; `reasoning` makes a reasoning item (with
encrypted content when `include` asks for it). `Responses.output` replaces all that."""
from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import orjson

WORDS_PER_DELTA = 2


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def refusal(body: Any) -> tuple[int, str, str | None, str | None] | None:
    """(status, message, param, code) for a request OpenAI refuses, else None."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return 400, "Missing required parameter: 'model'.", "model", "missing_required_parameter"
    if "input" not in body:
        return 400, "Missing required parameter: 'input'.", "input", "missing_required_parameter"
    stored = body.get("store", True)
    if body.get("previous_response_id") is not None and not stored:
        return 400, f"Previous response with id '{body['previous_response_id']}' not found.", \
            "previous_response_id", "previous_response_not_found"
    for i, item in enumerate(body["input"] if isinstance(body["input"], list) else []):
        if isinstance(item, dict) and item.get("type") == "reasoning" and not stored \
                and not item.get("encrypted_content"):
            return 404, (f"Item with id '{item.get('id')}' not found. Items are not persisted when `store` is "
                         "set to false. Try again with `store` set to true, or remove this item from your input."), \
                f"input[{i}]", None
    return None


def _sample(schema: Any) -> Any:
    """A value that fits a (simple) JSON Schema."""
    if not isinstance(schema, dict):
        return "text"
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {name: _sample(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_sample(schema.get("items"))]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, "Paris")


def _texts(value: Any) -> str:
    if isinstance(value, str):
        return value
    parts = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            parts.append(_texts(item.get("content")) if "content" in item else str(item.get("text") or ""))
    return " ".join(parts)


def output(body: dict) -> list[dict]:
    """The output items for a request (see the module's doc)."""
    items: list[dict] = []
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    given = body["input"] if isinstance(body["input"], list) else []
    last = given[-1] if given else {}
    if body.get("reasoning") is not None:
        reasoning = {"id": _id("rs"), "type": "reasoning",
                     "summary": [{"type": "summary_text", "text": "Thinking it through."}]}
        if "reasoning.encrypted_content" in (body.get("include") or []):
            reasoning["encrypted_content"] = "gAAAAA" + base64.b64encode(secrets.token_bytes(24)).decode()
        items.append(reasoning)
    if any(t.get("type", "").startswith("web_search") for t in tools):
        items.append({"id": _id("ws"), "type": "web_search_call", "status": "completed",
                      "action": {"type": "search", "query": _texts(body["input"])[:60]}})
    functions = [t for t in tools if t.get("type") == "function"]
    if functions and body.get("tool_choice") != "none" and not (isinstance(last, dict)
                                                                 and last.get("type") == "function_call_output"):
        tool = functions[0]
        items.append({"id": _id("fc"), "type": "function_call", "status": "completed", "call_id": _id("call"),
                      "name": tool["name"], "arguments": orjson.dumps(_sample(tool.get("parameters"))).decode()})
        return items
    text_format = (body.get("text") or {}).get("format") or {}
    if text_format.get("type") == "json_schema":
        text = orjson.dumps(_sample(text_format.get("schema"))).decode()
    elif isinstance(last, dict) and last.get("type") == "function_call_output":
        text = f"The tool said: {_texts(last.get('output'))}"
    else:
        text = "Hello from the fake Responses API."
    items.append({"id": _id("msg"), "type": "message", "status": "completed", "role": "assistant",
                  "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
    return items


def response(body: dict, items: list[dict], status: str = "completed") -> dict:
    made = sum(len(_texts([{"content": i.get("content")}]).split()) + len(i.get("arguments", "")) // 4
               for i in items) + 1
    given = len(orjson.dumps(body.get("input"))) // 4 + 1
    reasoning = 7 if any(i["type"] == "reasoning" for i in items) else 0
    answered = {
        "id": _id("resp"), "object": "response", "created_at": int(time.time()), "status": status,
        "background": False, "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"], "output": items, "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None, "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"),
                                                    "summary": None},
        "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}}, "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [], "top_p": body.get("top_p", 1.0), "truncation": "disabled",
        "usage": {"input_tokens": given, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": made + reasoning, "output_tokens_details": {"reasoning_tokens": reasoning},
                  "total_tokens": given + made + reasoning},
        "user": None, "metadata": body.get("metadata") or {},
    }
    if status == "completed":
        answered["completed_at"] = answered["created_at"]
    return answered


def events(finished: dict) -> list[dict]:
    """The stream of events that ends in `finished`, numbered from 0."""
    made: list[dict] = []

    def add(kind: str, **fields: Any) -> None:
        made.append({"type": kind, "sequence_number": len(made), **fields})

    start = {**finished, "status": "in_progress", "output": [], "usage": None}
    start.pop("completed_at", None)
    add("response.created", response=start)
    add("response.in_progress", response=start)
    for index, item in enumerate(finished["output"]):
        at = {"item_id": item["id"], "output_index": index}
        kind = item["type"]
        if kind == "message":
            add("response.output_item.added", output_index=index, item={**item, "status": "in_progress",
                                                                          "content": []})
            text = item["content"][0]["text"]
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            add("response.content_part.added", **at, content_index=0, part=empty)
            words = text.split(" ")
            for i in range(0, len(words), WORDS_PER_DELTA):
                piece = " ".join(words[i:i + WORDS_PER_DELTA]) + (" " if i + WORDS_PER_DELTA < len(words) else "")
                add("response.output_text.delta", **at, content_index=0, delta=piece, logprobs=[])
            add("response.output_text.done", **at, content_index=0, text=text, logprobs=[])
            add("response.content_part.done", **at, content_index=0, part=item["content"][0])
        elif kind == "function_call":
            add("response.output_item.added", output_index=index, item={**item, "status": "in_progress",
                                                                          "arguments": ""})
            arguments = item["arguments"]
            for i in range(0, len(arguments), 8):
                add("response.function_call_arguments.delta", **at, delta=arguments[i:i + 8])
            add("response.function_call_arguments.done", **at, arguments=arguments)
        elif kind == "reasoning":
            add("response.output_item.added", output_index=index, item={**item, "summary": []})
            summary = item["summary"][0]
            add("response.reasoning_summary_part.added", **at, summary_index=0, part={"type": "summary_text",
                                                                                      "text": ""})
            add("response.reasoning_summary_text.delta", **at, summary_index=0, delta=summary["text"])
            add("response.reasoning_summary_text.done", **at, summary_index=0, text=summary["text"])
            add("response.reasoning_summary_part.done", **at, summary_index=0, part=summary)
        elif kind == "web_search_call":
            add("response.output_item.added", output_index=index, item={**item, "status": "in_progress"})
            for step in ("in_progress", "searching", "completed"):
                add(f"response.web_search_call.{step}", **at)
        add("response.output_item.done", output_index=index, item=item)
    add("response.completed", response=finished)
    return made
