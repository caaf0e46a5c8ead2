"""Range and shape checks on an OpenAI chat request (a dict), shared by both transports.
Types were already checked where the JSON became a message (server/codec)."""
from __future__ import annotations

from server.errors import invalid_request

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
TOOL_CHOICE_MODES = {"none", "auto", "required"}

# field -> (lowest, highest) allowed, as OpenAI documents them
RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
    "n": (1, 128),
    "max_tokens": (1, 2**31 - 1),
    "max_completion_tokens": (1, 2**31 - 1),
    "top_logprobs": (0, 20),
}
_RANGE_KEYS = frozenset(RANGES)


def validate_chat(body: dict) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("You must provide a model parameter.", param="model", code="missing_required_parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty array.", param="messages",
                              code="missing_required_parameter" if messages is None else "invalid_value")
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise invalid_request(f"'messages[{i}].role' must be one of {', '.join(sorted(ROLES))}.",
                                  param=f"messages[{i}].role", code="invalid_value")
        if role in ("user", "system", "developer", "tool") and message.get("content") is None:
            raise invalid_request(f"'messages[{i}].content' is required for a {role} message.",
                                  param=f"messages[{i}].content", code="missing_required_parameter")
        if role == "tool" and not message.get("tool_call_id"):
            raise invalid_request(f"'messages[{i}].tool_call_id' is required for a tool message.",
                                  param=f"messages[{i}].tool_call_id", code="missing_required_parameter")
    # most requests set none or one of these: only those set are looked at, in RANGES' order
    present = _RANGE_KEYS.intersection(body)
    for field in (RANGES if len(present) > 1 else present):
        low, high = RANGES[field]
        value = body.get(field)
        if value is not None and not (low <= value <= high):
            raise invalid_request(f"'{field}' must be between {low} and {high}; got {value}.",
                                  param=field, code="invalid_value")
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in TOOL_CHOICE_MODES:
        raise invalid_request("'tool_choice' must be none, auto, required or a named function.",
                              param="tool_choice", code="invalid_value")
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") or {}
        if tool.get("type", "function") == "function" and not function.get("name"):
            raise invalid_request(f"'tools[{i}].function.name' is required.",
                                  param=f"tools[{i}].function.name", code="missing_required_parameter")
