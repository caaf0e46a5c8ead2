"""`POST /v1/messages/count_tokens` answered locally, for channels without such an endpoint:
the request's input (system, messages, tools) counted the way quota is reserved for it
(server/billing/estimate.py, whose tokenizer scales the `claude` family), so the count is
never below what the upstream will report. Pure: no I/O."""
from __future__ import annotations

from typing import Any

from server.apis.messages.request import chat_messages
from server.billing.estimate import prompt_tokens


def count_tokens(body: Any, model: str | None = None) -> dict:
    """`{"input_tokens": N}` for a count_tokens body (a Messages body without max_tokens).
    `model` is the upstream model the count stands for (the client's name when None)."""
    chat = chat_messages(body)
    return {"input_tokens": prompt_tokens(chat, model or chat["model"])}
