"""What a chat answer holds for the next turn that a Responses client cannot see as such:
Anthropic's signed thinking blocks (`thinking_blocks`) and Gemini's thought signatures
(`tool_calls[i].extra_content`). They travel in the reasoning item's `encrypted_content`
(the field the Responses API gives opaque reasoning state), so a client that sends its
output items back, or a `previous_response_id`, returns them to the upstream that wants
them. Pure functions."""
from __future__ import annotations

import base64
from typing import Any

import orjson

# Marks state st-ai wrote; anything else in `encrypted_content` (OpenAI's own) is not ours to read.
PREFIX = "st-ai.1."


def pack(thinking_blocks: Any, extras: dict[str, Any]) -> str | None:
    """The opaque carrier for a turn, or None when it has nothing to carry."""
    state: dict[str, Any] = {}
    if isinstance(thinking_blocks, list) and thinking_blocks:
        state["thinking_blocks"] = thinking_blocks
    if extras:
        state["extras"] = extras
    if not state:
        return None
    return PREFIX + base64.urlsafe_b64encode(orjson.dumps(state)).decode()


def unpack(value: Any) -> tuple[list[dict], dict[str, Any]]:
    """(thinking blocks, call id -> extra_content) from a carrier; nothing from anything else."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return [], {}
    try:
        state = orjson.loads(base64.urlsafe_b64decode(value[len(PREFIX):].encode()))
    except (ValueError, orjson.JSONDecodeError):
        return [], {}
    if not isinstance(state, dict):
        return [], {}
    blocks = state.get("thinking_blocks")
    extras = state.get("extras")
    return ([b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else [],
            extras if isinstance(extras, dict) else {})
