"""What the simulator says: a pure function of the request."""
from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from server.providers.simulator import tokens


@dataclass(frozen=True)
class Answer:
    content: str | None
    tool_name: str | None = None
    tool_arguments: str | None = None
    finish_reason: str = "stop"


# The reply quotes the prompt; a long prompt is quoted only this far, so the answer (and
# the work of streaming it) stays small whatever the size of the request.
MAX_QUOTED_CHARS = 2000


def _quoted(text: str) -> str:
    return text if len(text) <= MAX_QUOTED_CHARS else text[:MAX_QUOTED_CHARS - 1] + "\u2026"


def _last_capitalised(text: str) -> str | None:
    last = None
    for last in re.finditer(r"\b[A-Z][\w-]*", text):
        pass
    return last.group(0) if last else None


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _images_of(content: object) -> list[str]:
    if not isinstance(content, list):
        return []
    urls = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url") or ""
            urls.append("an inline base64 image" if url.startswith("data:") else url)
    return urls


def _chosen_tool(body: dict) -> dict | None:
    tools = [t.get("function") for t in body.get("tools") or [] if isinstance(t, dict) and t.get("function")]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == wanted), None)
    return tools[0]


def _arguments(schema: dict, text: str) -> dict:
    """Arguments that satisfy the tool's JSON Schema, filled from the user's words."""
    # The schema is whatever the client sent: anything not shaped like JSON Schema is ignored.
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    required = required if isinstance(required, list) and required else list(properties)
    subject = _last_capitalised(text) or text[:200].strip()[:60]
    args: dict = {}
    for name in required:
        if not isinstance(name, str):
            continue
        prop = properties.get(name)
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type", "string")
        if isinstance(prop.get("enum"), list) and prop["enum"]:
            args[name] = prop["enum"][0]
        elif kind in ("integer", "number"):
            args[name] = tokens.count(text)
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = []
        elif kind == "object":
            args[name] = {}
        else:
            args[name] = subject
    return args


def answer(body: dict) -> Answer:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        called = {c.get("id"): (c.get("function") or {}).get("name")
                  for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []}
        name = called.get(last.get("tool_call_id")) or "the tool"
        content = f"The tool {name} returned: {_quoted(_text_of(last.get('content')))}"
    else:
        tool = _chosen_tool(body) if last.get("role") == "user" else None
        text = _text_of(last.get("content"))
        if tool is not None:
            args = _arguments(tool.get("parameters") or {}, text)
            return Answer(None, tool.get("name"), orjson.dumps(args).decode(), "tool_calls")
        content = f"Simulated reply to: {_quoted(text)}" if text else "Simulated reply."
        images = _images_of(last.get("content"))
        if images:
            content += f" (I was shown {len(images)} image(s): {', '.join(images)}.)"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and tokens.count(content) > limit:
        kept, seen = [], 0
        for piece in tokens.pieces(content):
            seen += tokens.count(piece)
            if seen > limit:
                break
            kept.append(piece)
        return Answer("".join(kept).rstrip(), finish_reason="length")
    return Answer(content)
