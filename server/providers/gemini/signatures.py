"""Thought signatures across tool round trips. A thinking Gemini model signs the function
calls it makes (`thoughtSignature` beside the `functionCall` part) and, from Gemini 3 on,
refuses a conversation that gives a call of the current turn back without its signature.

st-ai hands each signature to the client inside the tool call it belongs to, as Google's
own OpenAI-compatible endpoint does: `tool_calls[i].extra_content.google.thought_signature`.
Clients that send the assistant message back as they got it (the openai SDK does, and
gRPC keeps it in the tool call's `extra_json`) return it unchanged, and st-ai puts it
beside the call again. A call that comes back without one (a history written by hand or
by another model) gets the placeholder Google documents for that case on Gemini 3."""
from __future__ import annotations

from typing import Any

# Google's documented stand-in that tells Gemini 3 not to validate a missing signature.
PLACEHOLDER = "skip_thought_signature_validator"


def attach(tool_call: dict, signature: Any) -> dict:
    if isinstance(signature, str) and signature:
        tool_call["extra_content"] = {"google": {"thought_signature": signature}}
    return tool_call


def carried(tool_call: Any) -> str | None:
    """The signature a client gave back inside a tool call, if any."""
    extra = tool_call.get("extra_content") if isinstance(tool_call, dict) else None
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None
