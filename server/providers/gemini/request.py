"""An OpenAI chat request as a Gemini `generateContent` request. Pure: image URLs are left
as markers (server/providers/gemini/media.py fetches them), nothing is sent.

- system and developer messages → `systemInstruction`; assistant → role `model`; user
  and tool turns → role `user`; consecutive turns of one role are merged (the results of
  parallel calls must come back in one turn);
- tool calls → `functionCall` parts (their thought signatures put back beside them),
  tool results → `functionResponse` parts named after the call they answer;
- tools → `functionDeclarations` with their JSON Schema reduced to what Gemini takes,
  `tool_choice` → `toolConfig.functionCallingConfig`;
- sampling, limits, stop sequences, candidates, seed, penalties, `response_format`
  and `reasoning_effort` → `generationConfig`.
Ids of tool calls are never sent: Gemini pairs results with calls by name and order."""
from __future__ import annotations

from typing import Any

import orjson

from server.errors import invalid_request
from server.providers.gemini import media, schema, signatures, thinking

ROLES = {"user": "user", "assistant": "model", "tool": "user", "function": "user"}
CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def to_gemini(body: dict, model: str) -> dict:
    """`body`: the client's OpenAI request; `model`: the upstream model name."""
    system, contents = _conversation(body["messages"], model)
    if not contents:  # Gemini needs a turn to answer: a lone instruction becomes the user's
        contents, system = [{"role": "user", "parts": system}], []
    request: dict = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    tools = _tools(body.get("tools"))
    if tools:
        request["tools"] = [{"functionDeclarations": tools}]
    config = _tool_config(body.get("tool_choice"))
    if config and tools:
        request["toolConfig"] = {"functionCallingConfig": config}
    generation = _generation(body, model)
    if generation:
        request["generationConfig"] = generation
    return request


# -- messages -------------------------------------------------------------------------------

def _conversation(messages: list[dict], model: str) -> tuple[list[dict], list[dict]]:
    system: list[dict] = []
    turns: list[dict] = []
    names: dict[str, str] = {}  # tool call id -> function name, from earlier assistant turns
    new_generation = (thinking.generation(model) or (0, 0)) >= (3, 0)
    for i, message in enumerate(messages):
        role = message.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend({"text": t} for t in _texts(message.get("content"), f"{where}.content"))
            continue
        if role == "user":
            parts = _user_parts(message.get("content"), f"{where}.content")
        elif role == "assistant":
            parts = _assistant_parts(message, where, names, new_generation)
        elif role == "tool":
            name = names.get(message.get("tool_call_id"))
            if name is None:
                raise invalid_request(f"'{where}.tool_call_id' does not name a tool call of an earlier assistant "
                                      "message.", f"{where}.tool_call_id", "invalid_value")
            parts = [_function_response(name, message.get("content"), f"{where}.content")]
        else:  # the legacy `function` role names its function itself
            name = message.get("name")
            if not isinstance(name, str) or not name:
                raise invalid_request(f"'{where}.name' is required for a function message.", f"{where}.name",
                                      "missing_required_parameter")
            parts = [_function_response(name, message.get("content"), f"{where}.content")]
        if not parts:
            continue
        if turns and turns[-1]["role"] == ROLES[role]:
            turns[-1]["parts"].extend(parts)
        else:
            turns.append({"role": ROLES[role], "parts": parts})
    return system, turns


def _texts(content: Any, param: str) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        raise invalid_request(f"'{param}' must be a string or an array of content parts.", param, "invalid_type")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal") and isinstance(part.get(kind), str):
            if part[kind]:
                texts.append(part[kind])
        else:
            raise invalid_request(f"'{param}[{j}]' must be a text part here.", f"{param}[{j}]", "invalid_value")
    return texts


def _user_parts(content: Any, param: str) -> list[dict]:
    if isinstance(content, str) or content is None:
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise invalid_request(f"'{param}' must be a string or an array of content parts.", param, "invalid_type")
    parts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"{param}[{j}]"
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            value = part.get("image_url")
            parts.append(media.image(value.get("url") if isinstance(value, dict) else value, f"{where}.image_url.url"))
        elif kind == "input_audio":
            parts.append(media.audio(part.get("input_audio"), f"{where}.input_audio"))
        elif kind == "file":
            parts.append(media.file(part.get("file"), f"{where}.file"))
        else:
            raise invalid_request(f"'{where}.type' must be text, image_url, input_audio or file for a Gemini model.",
                                  f"{where}.type", "invalid_value")
    return parts


def _assistant_parts(message: dict, where: str, names: dict[str, str], new_generation: bool) -> list[dict]:
    parts: list[dict] = [{"text": t} for t in _texts(message.get("content"), f"{where}.content")]
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise invalid_request(f"'{where}.tool_calls' must be an array.", f"{where}.tool_calls", "invalid_type")
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise invalid_request(f"'{where}.tool_calls[{j}].function.name' is required.",
                                  f"{where}.tool_calls[{j}].function.name", "missing_required_parameter")
        if isinstance(call.get("id"), str):
            names[call["id"]] = name
        part: dict = {"functionCall": {"name": name, "args": _arguments(function.get("arguments"),
                                                                        f"{where}.tool_calls[{j}].function.arguments")}}
        signature = signatures.carried(call)
        if signature is None and new_generation and j == 0:
            signature = signatures.PLACEHOLDER  # Gemini 3 wants the first call of a turn signed
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("name"), str):
        parts.append({"functionCall": {"name": legacy["name"], "args": _arguments(
            legacy.get("arguments"), f"{where}.function_call.arguments")}})
    return parts


def _arguments(raw: Any, param: str) -> dict:
    if raw is None or raw == "":
        return {}
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise invalid_request(f"'{param}' must be a JSON object.", param, "invalid_value")
    return args


def _function_response(name: str, content: Any, param: str) -> dict:
    text = "".join(_texts(content, param))
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    # Gemini takes an object; anything else is the function's "output", as its docs name it.
    return {"functionResponse": {"name": name, "response": value if isinstance(value, dict) else {"output": value}}}


# -- tools ------------------------------------------------------------------------------------

def _tools(tools: Any) -> list[dict]:
    declarations = []
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise invalid_request(f"'tools[{i}].type' must be function for a Gemini model.", f"tools[{i}].type",
                                  "invalid_value")
        function = tool.get("function") or {}
        declaration: dict = {"name": function.get("name")}
        if isinstance(function.get("description"), str):
            declaration["description"] = function["description"]
        parameters = schema.parameters(function.get("parameters"))
        if parameters is not None:
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return declarations


def _tool_config(choice: Any) -> dict | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"mode": CHOICE_MODES[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise invalid_request("'tool_choice' must be none, auto, required or a named function.", "tool_choice",
                              "invalid_value")
    return {"mode": "ANY", "allowedFunctionNames": [name]}


# -- generation config ----------------------------------------------------------------------

def _generation(body: dict, model: str) -> dict:
    config: dict = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("n", "candidateCount"),
                         ("seed", "seed"), ("presence_penalty", "presencePenalty"),
                         ("frequency_penalty", "frequencyPenalty")):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    for penalty in ("presencePenalty", "frequencyPenalty"):
        # several Gemini models refuse a penalty outright; a zero one asks for nothing, so it is not sent
        if config.get(penalty) == 0:
            del config[penalty]
    most = body.get("max_completion_tokens") or body.get("max_tokens")
    if most is not None:
        config["maxOutputTokens"] = most
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = stop
    config.update(_response_format(body.get("response_format")))
    thought = thinking.thinking_config(body.get("reasoning_effort"), model)
    if thought is not None:
        config["thinkingConfig"] = thought
    return config


def _response_format(value: Any) -> dict:
    kind = value.get("type") if isinstance(value, dict) else None
    if value is None or kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = value.get("json_schema")
        given = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(given, dict):
            raise invalid_request("'response_format.json_schema.schema' is required.", "response_format.json_schema",
                                  "missing_required_parameter")
        return {"responseMimeType": "application/json", "responseSchema": schema.reduce(given)}
    raise invalid_request("'response_format.type' must be text, json_object or json_schema.", "response_format.type",
                          "invalid_value")
