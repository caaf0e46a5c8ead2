"""An OpenAI chat request as an Anthropic Messages request. Pure: no I/O.

What the model or API version would refuse is left out rather than sent to fail
(server/providers/anthropic/models.py says what each takes); what cannot be said to
Anthropic at all (several choices, audio) is a 400 naming the field."""
from __future__ import annotations

import re
from typing import Any

import orjson

from server.billing.output_caps import default_output_cap
from server.errors import invalid_request
from server.providers.anthropic.models import Rules

# reasoning_effort -> a thinking budget, for models that take one (at least 1024 tokens)
BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
MIN_BUDGET = 1024
# reasoning_effort -> output_config.effort, for models with adaptive thinking
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max"}
# With thinking on, top_p is taken only in this range.
THINKING_TOP_P = (0.95, 1.0)

# what `POST /v1/messages/count_tokens` takes of a Messages body (not max_tokens, sampling or stop)
COUNTED = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config",
                     "cache_control", "mcp_servers", "context_management"})
_DATA_URI = re.compile(r"data:(image/[A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)
_SYSTEM_ROLES = ("system", "developer")
_THINKING = ("thinking", "redacted_thinking")


def messages_request(body: dict, rules: Rules, stream: bool = False) -> dict:
    """The Messages API body for `body` (an OpenAI chat request with the upstream model name)."""
    model = body["model"]
    if isinstance(body.get("n"), (int, float)) and body["n"] > 1:
        raise invalid_request("This model answers one choice per request; `n` must be 1.", "n")
    system, turns = _conversation(body.get("messages") or [])
    max_tokens = _max_tokens(body, model)
    request: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system:
        request["system"] = system
    if (stop := _stop(body.get("stop"))) is not None:
        request["stop_sequences"] = stop
    tools = [_tool(tool, i) for i, tool in enumerate(body.get("tools") or [])]
    if tools:
        request["tools"] = tools
        if (choice := _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))) is not None:
            request["tool_choice"] = choice
    thinking = _thinking(body.get("reasoning_effort"), rules, max_tokens, request.get("tool_choice"), turns)
    request.update(thinking)
    request.update(_sampling(body, rules, thinking=bool(thinking)))
    if isinstance(body.get("user"), str) and body["user"]:
        request["metadata"] = {"user_id": body["user"]}
    if stream:
        request["stream"] = True
    return request


def _max_tokens(body: dict, model: str) -> int:
    """Anthropic requires `max_tokens`: the client's limit, else the model's own most."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default_output_cap(model)


def _sampling(body: dict, rules: Rules, thinking: bool) -> dict:
    if rules.sampling == "none":
        return {}
    temperature, top_p = _number(body.get("temperature")), _number(body.get("top_p"))
    if thinking:
        # thinking takes no temperature, and a top_p only near 1
        low, high = THINKING_TOP_P
        return {"top_p": top_p} if top_p is not None and low <= top_p <= high else {}
    taken: dict[str, float] = {}
    if temperature is not None:
        taken["temperature"] = min(max(temperature, 0.0), 1.0)  # OpenAI's 0..2 is Anthropic's 0..1
    if top_p is not None and (rules.sampling == "all" or temperature is None):
        taken["top_p"] = top_p
    return taken


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _stop(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value] if value.strip() else None
    if isinstance(value, list):
        stops = [s for s in value if isinstance(s, str) and s.strip()]
        return stops or None
    return None


def _thinking(effort: Any, rules: Rules, max_tokens: int, tool_choice: dict | None, turns: list[dict]) -> dict:
    """`reasoning_effort` as the thinking the model takes; nothing when the model does not
    think, when the client asked for none, when a tool is forced (thinking refuses forced
    tool use), or when the conversation continues a tool call whose thinking the client
    could not send back (Anthropic then requires that thinking first)."""
    if not isinstance(effort, str) or effort not in EFFORTS or rules.thinking is None:
        return {}
    if tool_choice is not None and tool_choice.get("type") in ("any", "tool"):
        return {}
    if _continues_tool_use(turns):
        return {}
    if rules.thinking == "adaptive":
        level = EFFORTS[effort]
        if level == "xhigh" and not rules.xhigh:
            level = "high"
        return {"thinking": {"type": "adaptive"}, "output_config": {"effort": level}}
    budget = min(BUDGETS.get(effort, BUDGETS["high"]), max_tokens - 1)
    if budget < MIN_BUDGET:
        return {}
    return {"thinking": {"type": "enabled", "budget_tokens": budget}}


def _continues_tool_use(turns: list[dict]) -> bool:
    """The last assistant turn called tools without its thinking blocks (the client did not
    send back `thinking_blocks`), and the conversation goes on from the calls' results."""
    for turn in reversed(turns):
        if turn["role"] == "assistant":
            blocks = turn["content"]
            called = any(block.get("type") == "tool_use" for block in blocks)
            return called and blocks[0].get("type") not in _THINKING
    return False


# -- messages ------------------------------------------------------------------------------

def _conversation(messages: list) -> tuple[list[dict], list[dict]]:
    """System and developer messages become `system` text blocks (in order, wherever they
    stood); the rest become user and assistant turns, consecutive same-role turns merged
    (a tool result is a user turn, so parallel results go back as one)."""
    system: list[dict] = []
    turns: list[dict] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_request("Each message must be an object.", f"messages[{i}]")
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            system.extend({"type": "text", "text": text} for text in _texts(message.get("content"), i))
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), i)
        elif role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message, i)
        elif role == "tool":
            role, blocks = "user", [_tool_result(message, i)]
        else:
            raise invalid_request(f"Messages with the role {str(role)[:40]!r} cannot be sent to this model.",
                                  f"messages[{i}].role")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _texts(content: Any, i: int) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    texts = []
    for j, part in enumerate(content if isinstance(content, list) else []):
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                texts.append(part["text"])
        else:
            raise invalid_request("System messages may hold only text.", f"messages[{i}].content[{j}]")
    return texts


def _user_blocks(content: Any, i: int) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(content if isinstance(content, list) else []):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"messages[{i}].content[{j}].image_url"))
        else:
            raise invalid_request(f"Content parts of type {str(kind)[:40]!r} cannot be sent to this model.",
                                  f"messages[{i}].content[{j}]")
    return blocks


def _image(image_url: Any, param: str) -> dict:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise invalid_request("An image part needs a URL.", param)
    if url.startswith("data:"):
        match = _DATA_URI.fullmatch(url)
        if match is None:
            raise invalid_request("An image data URI must be base64 data of an image type.", param)
        return {"type": "image", "source": {"type": "base64", "media_type": match.group(1),
                                            "data": match.group(2)}}
    if not url.startswith(("https://", "http://")):
        raise invalid_request("An image URL must be an http(s) URL or a data URI.", param)
    return {"type": "image", "source": {"type": "url", "url": url}}


def _assistant_blocks(message: dict, i: int) -> list[dict]:
    blocks = _thinking_blocks(message.get("thinking_blocks"), i)
    content = message.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            text = part.get("text") or part.get("refusal") if isinstance(part, dict) else None
            if isinstance(text, str) and text:
                blocks.append({"type": "text", "text": text})
            elif not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
                raise invalid_request("Assistant messages may hold only text and refusals.",
                                      f"messages[{i}].content[{j}]")
    for j, call in enumerate(message.get("tool_calls") or []):
        param = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) \
                or not isinstance(call.get("id"), str):
            raise invalid_request("A tool call needs an id and a function name.", param)
        blocks.append({"type": "tool_use", "id": call["id"], "name": function["name"],
                       "input": _arguments(function.get("arguments"), f"{param}.function.arguments")})
    return blocks


def _thinking_blocks(value: Any, i: int) -> list[dict]:
    """The turn's thinking as the client got it (`thinking_blocks`), sent back first."""
    blocks = []
    for j, block in enumerate(value if isinstance(value, list) else []):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "thinking" and isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str):
            blocks.append({"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]})
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": block["data"]})
        else:
            raise invalid_request("A thinking block needs its thinking and signature (or redacted data).",
                                  f"messages[{i}].thinking_blocks[{j}]")
    return blocks


def _arguments(arguments: Any, param: str) -> dict:
    if arguments is None or arguments == "":
        return {}
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise invalid_request("A tool call's arguments must be a JSON object.", param) from None
    if not isinstance(parsed, dict):
        raise invalid_request("A tool call's arguments must be a JSON object.", param)
    return parsed


def _tool_result(message: dict, i: int) -> dict:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid_request("A tool message needs the tool_call_id it answers.", f"messages[{i}].tool_call_id")
    content = message.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        if content:
            result["content"] = content
    elif isinstance(content, list):
        result["content"] = _user_blocks(content, i)
    return result


# -- tools ---------------------------------------------------------------------------------

def _tool(tool: Any, i: int) -> dict:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise invalid_request("Only function tools with a name can be sent to this model.", f"tools[{i}]")
    schema = function.get("parameters")
    if not isinstance(schema, dict) or not schema:
        schema = {"type": "object", "properties": {}}  # Anthropic requires an input schema
    elif "type" not in schema:
        schema = {"type": "object", **schema}  # ... of an object, which OpenAI's implies
    declared: dict[str, Any] = {"name": function["name"], "input_schema": schema}
    if isinstance(function.get("description"), str) and function["description"]:
        declared["description"] = function["description"]
    return declared


def _tool_choice(choice: Any, parallel: Any) -> dict | None:
    if choice is None:
        chosen: dict[str, Any] | None = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        chosen = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        chosen = {"type": "any"}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        chosen = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise invalid_request("tool_choice must be auto, none, required or a named function.", "tool_choice")
    if chosen is not None and parallel is False:
        chosen["disable_parallel_tool_use"] = True
    return chosen
