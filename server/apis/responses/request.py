"""A Responses API request body (`POST /v1/responses`) read into a chat request. Pure.

`read_request` checks the body and keeps apart what the route needs (stream, store,
metadata, previous_response_id, the echo of the settings); `chat_body` turns the whole
item list (history.py joins a stored conversation in front) into the chat request every
channel type takes. What chat cannot say (built-in tools, file ids, background runs) is a
400 naming the field; what OpenAI documents as a hint is left out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.apis.responses import carry
from server.errors import GatewayError, invalid_request

# Tools only a provider runs itself: no chat upstream can take them.
BUILT_IN_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26",
    "file_search", "code_interpreter", "computer_use", "computer_use_preview", "computer",
    "image_generation", "mcp", "local_shell", "shell", "apply_patch", "tool_search",
})

# Fields read into the chat request or kept for the route.
TAKEN = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "max_output_tokens",
    "temperature", "top_p", "parallel_tool_calls", "metadata", "store", "previous_response_id", "stream",
    "user", "safety_identifier", "include",
})
# Fields OpenAI documents as hints or settings that change no answer here: accepted, not sent.
HINTS = frozenset({
    "prompt_cache_key", "prompt_cache_retention", "service_tier", "truncation", "stream_options",
    "max_tool_calls", "background",
})
# `include` values st-ai honours: its reasoning state always travels in encrypted_content.
INCLUDES = frozenset({"reasoning.encrypted_content"})

ROLES = ("user", "assistant", "system", "developer")
# checked here so the error names the Responses field, not the chat field it becomes
RANGES = {"max_output_tokens": (1, 2**31 - 1), "temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


@dataclass
class ResponsesRequest:
    model: str
    input_items: list[dict]  # the new input as items, for storing and for history
    params: dict  # the chat request's fields other than model and messages
    instructions: str | None
    stream: bool
    store: bool
    metadata: dict[str, str]
    previous_response_id: str | None
    echo: dict = field(default_factory=dict)  # the settings a `response` object repeats
    # what chat cannot say (a built-in tool...): a 400 when the request is translated
    untranslatable: GatewayError | None = None


def read_request(body: Any) -> ResponsesRequest:
    """What every route needs, checked now; what only a translation to chat needs is
    checked too, but its error waits in `untranslatable` for `chat_body`, since a channel
    that speaks the Responses API itself takes the body as it is."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("You must provide a model parameter.", "model", "missing_required_parameter")
    if "input" not in body:
        raise invalid_request("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    items = input_items(body["input"])
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid_request("'instructions' must be a string.", "instructions", "invalid_type")
    stream = _flag(body.get("stream", False), "stream")
    store = _flag(body.get("store", True), "store")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise invalid_request("'previous_response_id' must be a response id.", "previous_response_id",
                              "invalid_type")
    metadata = _metadata(body.get("metadata"))
    untranslatable: GatewayError | None = None
    try:
        params = _chat_params(body)
    except GatewayError as error:
        params, untranslatable = {}, error
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    echo = {
        "instructions": instructions, "tools": [_echoed_tool(t["function"]) for t in params.get("tools", [])],
        "tool_choice": body.get("tool_choice") or "auto",
        "text": _echoed_text(body.get("text")),
        "reasoning": {"effort": params.get("reasoning_effort"), "summary": reasoning.get("summary")},
        "max_output_tokens": params.get("max_completion_tokens"), "metadata": metadata,
        "previous_response_id": previous, "store": store,
        "temperature": params.get("temperature", 1.0), "top_p": params.get("top_p", 1.0),
        "parallel_tool_calls": params.get("parallel_tool_calls", True),
        "truncation": body.get("truncation") if body.get("truncation") in ("auto", "disabled") else "disabled",
        "user": params.get("user"), "background": False,
    }
    return ResponsesRequest(model, items, params, instructions, stream, store, metadata, previous, echo,
                            untranslatable)


def _chat_params(body: dict) -> dict:
    """The chat request's settings (all but model and messages) from the body."""
    for key in body:
        if key not in TAKEN and key not in HINTS:
            raise invalid_request(f"Unsupported parameter: '{str(key)[:60]}'.", str(key)[:60],
                                  "unsupported_parameter")
    if body.get("background") is True:
        raise invalid_request("Background responses are not supported.", "background", "unsupported_parameter")
    for entry in _list(body.get("include"), "include"):
        if entry not in INCLUDES:
            raise invalid_request(f"include value {str(entry)[:60]!r} is not supported.", "include",
                                  "unsupported_value")
    params: dict[str, Any] = {}
    tools = [_tool(tool, i) for i, tool in enumerate(_list(body.get("tools"), "tools"))]
    if tools:
        params["tools"] = tools
    if body.get("tool_choice") is not None:
        params["tool_choice"] = _tool_choice(body["tool_choice"])
    if (response_format := _text_format(body.get("text"))) is not None:
        params["response_format"] = response_format
    if (effort := _effort(body.get("reasoning"))) is not None:
        params["reasoning_effort"] = effort
    for source, target in (("max_output_tokens", "max_completion_tokens"), ("temperature", "temperature"),
                           ("top_p", "top_p")):
        if body.get(source) is not None:
            params[target] = _number(body[source], source, integer=source == "max_output_tokens")
            low, high = RANGES[source]
            if not low <= params[target] <= high:
                raise invalid_request(f"'{source}' must be between {low} and {high}; got {params[target]}.",
                                      source, "invalid_value")
    if body.get("parallel_tool_calls") is not None:
        params["parallel_tool_calls"] = _flag(body["parallel_tool_calls"], "parallel_tool_calls")
    user = body.get("user") if body.get("user") is not None else body.get("safety_identifier")
    if user is not None:
        if not isinstance(user, str):
            raise invalid_request("'user' must be a string.", "user", "invalid_type")
        params["user"] = user
    return params


def chat_body(request: ResponsesRequest, items: list[dict]) -> dict:
    """The chat request for the whole conversation `items` (history first, then the new input)."""
    if request.untranslatable is not None:
        raise request.untranslatable
    messages = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    messages.extend(chat_messages(items, first_new=len(items) - len(request.input_items)))
    if not messages:
        raise invalid_request("'input' must hold at least one message.", "input", "invalid_value")
    body = {"model": request.model, "messages": messages, **request.params}
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# -- input -> items ---------------------------------------------------------------------------

def input_items(value: Any) -> list[dict]:
    """The input as a list of typed items: a string is one user message."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list):
        raise invalid_request("'input' must be a string or a list of items.", "input", "invalid_type")
    items = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid_request("Each input item must be an object.", f"input[{i}]", "invalid_type")
        if "type" not in item and "role" in item:
            item = {"type": "message", **item}
        items.append(item)
    return items


def chat_messages(items: list[dict], first_new: int = 0) -> list[dict]:
    """Items as chat messages: a function call joins the assistant message before it (so a
    turn's text and its parallel calls are one message), a call's output is a tool
    message, st-ai's own reasoning state goes back beside the turn it came with. Items
    before `first_new` are stored history: errors in them name `previous_response_id`."""
    messages: list[dict] = []
    pending_blocks: list[dict] = []
    # a call's provider state may ride in a reasoning item after it (a stream learns it late)
    extras: dict[str, Any] = {}
    for item in items:
        if item.get("type") == "reasoning":
            extras.update(carry.unpack(item.get("encrypted_content"))[1])
    open_turn: dict | None = None  # the assistant message calls may still join
    for i, item in enumerate(items):
        kind = item.get("type")
        where = f"input[{i - first_new}]" if i >= first_new else "previous_response_id"
        if kind == "message":
            message = _message(item, where)
            if message["role"] == "assistant":
                if pending_blocks:
                    message["thinking_blocks"], pending_blocks = pending_blocks, []
                open_turn = message
            else:
                open_turn = None
            messages.append(message)
        elif kind == "function_call":
            call = _function_call(item, where, extras)
            if open_turn is None:
                open_turn = {"role": "assistant", "content": None}
                if pending_blocks:
                    open_turn["thinking_blocks"], pending_blocks = pending_blocks, []
                messages.append(open_turn)
            open_turn.setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            messages.append(_call_output(item, where))
            open_turn = None
        elif kind == "reasoning":
            pending_blocks.extend(carry.unpack(item.get("encrypted_content"))[0])
            open_turn = None
        elif kind == "item_reference":
            raise invalid_request("Item references are not supported; send the item itself.", where,
                                  "unsupported_value")
        else:
            raise invalid_request(f"Input items of type {str(kind)[:40]!r} are not supported.", f"{where}.type",
                                  "unsupported_value")
    return messages


def _message(item: dict, where: str) -> dict:
    role = item.get("role")
    if role not in ROLES:
        raise invalid_request(f"'{where}.role' must be one of {', '.join(ROLES)}.", f"{where}.role", "invalid_value")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise invalid_request(f"'{where}.content' must be a string or a list of parts.", f"{where}.content",
                              "invalid_type")
    parts = [_part(part, role, f"{where}.content[{j}]") for j, part in enumerate(content)]
    if role == "assistant":
        texts = [p["text"] for p in parts if p["type"] == "text"]
        refusals = [p["refusal"] for p in parts if p["type"] == "refusal"]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not refusals else None}
        if refusals:
            message["refusal"] = "".join(refusals)
        return message
    if role != "user" and any(p["type"] != "text" for p in parts):
        raise invalid_request(f"{role.capitalize()} messages may hold only text.", f"{where}.content",
                              "invalid_value")
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": role, "content": parts[0]["text"]}
    return {"role": role, "content": parts}


def _part(part: Any, role: str, where: str) -> dict:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        if not isinstance(part.get("text"), str):
            raise invalid_request("A text part needs its text.", f"{where}.text", "missing_required_parameter")
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and role == "assistant" and isinstance(part.get("refusal"), str):
        return {"type": "refusal", "refusal": part["refusal"]}
    if kind == "input_image" and role != "assistant":
        return _image(part, where)
    if kind == "input_file":
        raise invalid_request("File inputs are not supported; send text or images.", where, "unsupported_value")
    raise invalid_request(f"Content parts of type {str(kind)[:40]!r} are not supported here.", f"{where}.type",
                          "unsupported_value")


def _image(part: dict, where: str) -> dict:
    if part.get("file_id") is not None:
        raise invalid_request("Images by file id are not supported; give an image_url (a URL or a data URI).",
                              f"{where}.file_id", "unsupported_value")
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise invalid_request("An input_image part needs an image_url.", f"{where}.image_url",
                              "missing_required_parameter")
    image: dict[str, Any] = {"url": url}
    if part.get("detail") in ("low", "high", "auto"):
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _function_call(item: dict, where: str, extras: dict[str, Any]) -> dict:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments", "")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise invalid_request("A function_call item needs its call_id and name.", where, "missing_required_parameter")
    if not isinstance(arguments, str):
        raise invalid_request("A function_call's arguments must be a JSON string.", f"{where}.arguments",
                              "invalid_type")
    call: dict[str, Any] = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    if isinstance(extras.get(call_id), dict):
        call["extra_content"] = extras[call_id]
    return call


def _call_output(item: dict, where: str) -> dict:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str) or not call_id:
        raise invalid_request("A function_call_output item needs the call_id it answers.", f"{where}.call_id",
                              "missing_required_parameter")
    if isinstance(output, list):
        parts = [_part(part, "user", f"{where}.output[{j}]") for j, part in enumerate(output)]
        content: Any = parts
    elif isinstance(output, str):
        content = output
    else:
        raise invalid_request("A function_call_output's output must be a string or a list of parts.",
                              f"{where}.output", "invalid_type")
    return {"role": "tool", "tool_call_id": call_id, "content": content}


# -- settings -----------------------------------------------------------------------------

def _tool(tool: Any, i: int) -> dict:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        if kind in BUILT_IN_TOOLS:
            raise invalid_request(f"The built-in tool '{kind}' is not available through this gateway's "
                                  "translation; only function tools are.", f"tools[{i}].type", "unsupported_value")
        raise invalid_request(f"Tools of type {str(kind)[:40]!r} are not supported; only function tools are.",
                              f"tools[{i}].type", "unsupported_value")
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        raise invalid_request("A function tool needs a name.", f"tools[{i}].name", "missing_required_parameter")
    function: dict[str, Any] = {"name": tool["name"]}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    if isinstance(tool.get("parameters"), dict):
        function["parameters"] = tool["parameters"]
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _echoed_tool(function: dict) -> dict:
    return {"type": "function", "name": function["name"], "description": function.get("description"),
            "parameters": function.get("parameters"), "strict": function.get("strict")}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        if not isinstance(choice.get("name"), str) or not choice["name"]:
            raise invalid_request("A function tool_choice needs the function's name.", "tool_choice.name",
                                  "missing_required_parameter")
        return {"type": "function", "function": {"name": choice["name"]}}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise invalid_request(f"tool_choice {str(kind)[:40]!r} is not supported; use auto, none, required or "
                          "a function.", "tool_choice", "unsupported_value")


def _text_format(text: Any) -> dict | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise invalid_request("'text' must be an object.", "text", "invalid_type")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("name"), str) or not fmt["name"]:
            raise invalid_request("A json_schema format needs a name.", "text.format.name",
                                  "missing_required_parameter")
        if not isinstance(fmt.get("schema"), dict):
            raise invalid_request("A json_schema format needs a schema object.", "text.format.schema",
                                  "missing_required_parameter")
        schema: dict[str, Any] = {"name": fmt["name"], "schema": fmt["schema"]}
        for key, kind_of in (("strict", bool), ("description", str)):
            if isinstance(fmt.get(key), kind_of):
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    raise invalid_request("text.format.type must be text, json_object or json_schema.", "text.format.type",
                          "invalid_value")


def _echoed_text(text: Any) -> dict:
    fmt = text.get("format") if isinstance(text, dict) else None
    echoed: dict[str, Any] = {"format": fmt if isinstance(fmt, dict) else {"type": "text"}}
    if isinstance(text, dict) and text.get("verbosity") in ("low", "medium", "high"):
        echoed["verbosity"] = text["verbosity"]
    return echoed


def _effort(reasoning: Any) -> str | None:
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise invalid_request("'reasoning' must be an object.", "reasoning", "invalid_type")
    effort = reasoning.get("effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise invalid_request(f"reasoning.effort must be one of {', '.join(EFFORTS)}.", "reasoning.effort",
                              "invalid_value")
    return effort


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 16 or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in value.items()):
        raise invalid_request("'metadata' must be at most 16 string pairs (keys up to 64 characters, values up "
                              "to 512).", "metadata", "invalid_value")
    return dict(value)


def _list(value: Any, name: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_request(f"'{name}' must be a list.", name, "invalid_type")
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_request(f"'{name}' must be a boolean.", name, "invalid_type")
    return value


def _number(value: Any, name: str, integer: bool) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_request(f"'{name}' must be a number.", name, "invalid_type")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise invalid_request(f"'{name}' must be an integer.", name, "invalid_type")
        return int(value)
    return value
