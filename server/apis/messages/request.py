"""A Messages API request as an OpenAI chat request. Pure: no I/O.

What chat cannot say is a 400 naming the field (a PDF document, a server tool); what the
chat side has no use for is dropped (`top_k`, `cache_control`, citations settings).
`thinking` becomes `reasoning_effort`; the original stays in the Messages body, which is
what a pass-through to a channel speaking Messages sends, so the chat dict (which may go
to upstreams that refuse unknown fields) carries nothing but chat."""
from __future__ import annotations

from typing import Any

import orjson

from server.apis.messages.errors import missing
from server.errors import invalid_request
from server.providers.anthropic.request import BUDGETS

# Anthropic's effort levels are chat's reasoning_effort levels (adaptive thinking)
EFFORTS = ("low", "medium", "high", "xhigh", "max")
# Adaptive thinking with no effort set thinks at Anthropic's default effort.
ADAPTIVE_DEFAULT = "high"
# A budget's band: the largest effort whose budget (server/providers/anthropic/request.py)
# fits in it, so low/medium/high come back as the budget the anthropic channel sends for them.
BANDS = ("high", "medium", "low")


def chat_request(body: Any) -> dict:
    """The chat request for a Messages body (`model` stays the client's model name)."""
    chat = chat_messages(body)
    chat["max_tokens"] = _max_tokens(body.get("max_tokens"))
    if (stops := body.get("stop_sequences")) is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid_request("stop_sequences must be a list of strings.", "stop_sequences")
        if stops:
            chat["stop"] = stops
    for key in ("temperature", "top_p"):
        if (value := body.get(key)) is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise invalid_request(f"{key} must be a number.", key)
            chat[key] = value
    if (effort := reasoning_effort(body.get("thinking"), body.get("output_config"))) is not None:
        chat["reasoning_effort"] = effort
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str) and metadata["user_id"]:
        chat["user"] = metadata["user_id"]
    if body.get("stream") is True:
        # chat says its usage only when asked; the Messages stream always ends with it
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def check_envelope(body: Any, max_tokens: bool = True) -> dict:
    """What every Messages request needs, whoever serves it: a model, a non-empty list of
    messages, and (to create a message, not to count its tokens) max_tokens."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    model = body.get("model")
    if model is None:
        raise missing("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("model must be a non-empty string.", "model")
    messages = body.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("messages must be a non-empty list.", "messages")
    if max_tokens:
        _max_tokens(body.get("max_tokens"))
    return body


def chat_messages(body: Any) -> dict:
    """Model, messages and tools: what a request's input is made of (also what
    `count_tokens` counts, which takes no `max_tokens`)."""
    check_envelope(body, max_tokens=False)
    model, messages = body["model"], body["messages"]
    chat: dict[str, Any] = {"model": model, "messages": _system(body.get("system"))}
    for i, message in enumerate(messages):
        chat["messages"].extend(_message(message, i))
    if body.get("mcp_servers"):
        raise invalid_request("MCP servers are not available on this model.", "mcp_servers")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid_request("tools must be a list.", "tools")
        if tools:
            chat["tools"] = [_tool(tool, i) for i, tool in enumerate(tools)]
    if (choice := body.get("tool_choice")) is not None:
        chat.update(_tool_choice(choice))
    return chat


def reasoning_effort(thinking: Any, output_config: Any = None) -> str | None:
    """`thinking` as chat's reasoning_effort: a budget by its band, adaptive by its effort."""
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return None
    if kind == "enabled":
        if (budget := _positive_int(thinking.get("budget_tokens"))) is None:
            raise invalid_request("thinking.budget_tokens must be a positive integer.", "thinking.budget_tokens")
        return next((band for band in BANDS if budget >= BUDGETS[band]), "low")
    if kind == "adaptive":
        effort = output_config.get("effort") if isinstance(output_config, dict) else None
        return effort if effort in EFFORTS else ADAPTIVE_DEFAULT
    raise invalid_request("thinking.type must be enabled, adaptive or disabled.", "thinking.type")


def _max_tokens(value: Any) -> int:
    if value is None:
        raise missing("max_tokens")
    if (tokens := _positive_int(value)) is None:
        raise invalid_request("max_tokens must be a positive integer.", "max_tokens")
    return tokens


def _positive_int(value: Any) -> int | None:
    # a body that came over gRPC (google.protobuf.Struct) carries every number as a double
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# -- system and messages ---------------------------------------------------------------------

def _system(system: Any) -> list[dict]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        texts = [_text(block, f"system[{j}]") for j, block in enumerate(system)]
        return [{"role": "system", "content": [{"type": "text", "text": t} for t in texts if t]}] if any(texts) else []
    raise invalid_request("system must be a string or a list of text blocks.", "system")


def _message(message: Any, i: int) -> list[dict]:
    """One Messages turn as chat messages: a user turn's tool results become tool messages
    (before the rest of the turn, since chat wants them right after the calls)."""
    param = f"messages[{i}]"
    if not isinstance(message, dict):
        raise invalid_request("Each message must be an object.", param)
    role, content = message.get("role"), message.get("content")
    if role not in ("user", "assistant"):
        raise invalid_request("A message's role must be user or assistant.", f"{param}.role")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise invalid_request("A message's content must be a string or a list of content blocks.",
                              f"{param}.content")
    return _user(content, param) if role == "user" else [_assistant(content, param)]


def _user(blocks: list, param: str) -> list[dict]:
    results: list[dict] = []
    parts: list[dict] = []
    for j, block in enumerate(blocks):
        where = f"{param}.content[{j}]"
        kind = _kind(block, where)
        if kind == "tool_result":
            message, images = _tool_result(block, where)
            results.append(message)
            parts.extend(images)  # chat's tool messages hold text only: images follow as user content
        elif kind in ("text", "document"):
            parts.append({"type": "text", "text": _text(block, where)})
        elif kind == "image":
            parts.append(_image(block, where))
        else:
            raise invalid_request(f"Content blocks of type {kind[:40]!r} cannot be sent in a user message here.",
                                  where)
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _assistant(blocks: list, param: str) -> dict:
    texts: list[str] = []
    calls: list[dict] = []
    thinking: list[dict] = []
    for j, block in enumerate(blocks):
        where = f"{param}.content[{j}]"
        kind = _kind(block, where)
        if kind == "text":
            texts.append(_text(block, where))
        elif kind == "tool_use":
            calls.append(_tool_call(block, where))
        elif kind == "thinking":
            signature = block.get("signature")
            if not isinstance(block.get("thinking"), str) or not isinstance(signature, str):
                raise invalid_request("A thinking block needs its thinking and signature.", where)
            # An unsigned block came from an upstream that does not sign its thinking; no
            # upstream can verify it, and Anthropic refuses one with an empty signature.
            if signature:
                thinking.append({"type": "thinking", "thinking": block["thinking"], "signature": signature})
        elif kind == "redacted_thinking":
            if not isinstance(block.get("data"), str):
                raise invalid_request("A redacted_thinking block needs its data.", where)
            thinking.append({"type": "redacted_thinking", "data": block["data"]})
        else:
            raise invalid_request(f"Content blocks of type {kind[:40]!r} cannot be sent in an assistant message "
                                  "here.", where)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["thinking_blocks"] = thinking
    return message


def _kind(block: Any, where: str) -> str:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(kind, str):
        raise invalid_request("A content block must be an object with a type.", where)
    return kind


def _text(block: Any, where: str) -> str:
    """A text block's text, or a plain-text document's (its title first)."""
    kind = _kind(block, where)
    if kind == "text" and isinstance(block.get("text"), str):
        return block["text"]
    if kind == "document":
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
            title = block.get("title")
            return f"{title}\n\n{source['data']}" if isinstance(title, str) and title else source["data"]
        raise invalid_request("Only plain-text documents can be sent to this model; PDF and other document "
                              "sources cannot.", f"{where}.source")
    raise invalid_request("Expected a text block with its text.", where)


def _image(block: dict, where: str) -> dict:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source.get("media_type"), str) and isinstance(source.get("data"), str):
        return {"type": "image_url", "image_url": {"url": f"data:{source['media_type']};base64,{source['data']}"}}
    if kind == "url" and isinstance(source.get("url"), str) and source["url"].startswith(("https://", "http://")):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise invalid_request("An image's source must be base64 data with its media_type, or an http(s) URL.",
                          f"{where}.source")


def _tool_call(block: dict, where: str) -> dict:
    if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
        raise invalid_request("A tool_use block needs an id and a name.", where)
    arguments = block.get("input")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise invalid_request("A tool_use block's input must be an object.", f"{where}.input")
    return {"id": block["id"], "type": "function",
            "function": {"name": block["name"], "arguments": orjson.dumps(arguments).decode()}}


def _tool_result(block: dict, where: str) -> tuple[dict, list[dict]]:
    """The tool message, and the images the result held (sent after, as user content)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid_request("A tool_result block needs the tool_use_id it answers.", f"{where}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    images: list[dict] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, part in enumerate(content):
            inner = f"{where}.content[{k}]"
            if _kind(part, inner) == "image":
                images.append(_image(part, inner))
            else:
                texts.append(_text(part, inner))
    elif content is not None:
        raise invalid_request("A tool_result's content must be a string or a list of blocks.", f"{where}.content")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        # chat has no error flag on a tool message: the model reads it in the text
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


# -- tools ------------------------------------------------------------------------------------

def _tool(tool: Any, i: int) -> dict:
    where = f"tools[{i}]"
    if not isinstance(tool, dict):
        raise invalid_request("Each tool must be an object.", where)
    if tool.get("type", "custom") not in ("custom", None):
        raise invalid_request(f"The server tool {str(tool.get('type'))[:40]!r} is not available on this model; "
                              "only tools with an input_schema can be used.", f"{where}.type")
    name, schema = tool.get("name"), tool.get("input_schema")
    if not isinstance(name, str) or not name:
        raise invalid_request("A tool needs a name.", f"{where}.name")
    if not isinstance(schema, dict):
        raise invalid_request("A tool needs an input_schema object.", f"{where}.input_schema")
    function: dict[str, Any] = {"name": name, "parameters": schema}
    if isinstance(tool.get("description"), str) and tool["description"]:
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> dict:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        chat: dict[str, Any] = {"tool_choice": "auto"}
    elif kind == "any":
        chat = {"tool_choice": "required"}
    elif kind == "none":
        return {"tool_choice": "none"}
    elif kind == "tool" and isinstance(choice.get("name"), str) and choice["name"]:
        chat = {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    else:
        raise invalid_request("tool_choice.type must be auto, any, tool (with a name) or none.", "tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        chat["parallel_tool_calls"] = False
    return chat
