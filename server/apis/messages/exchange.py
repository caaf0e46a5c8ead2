"""One Messages API request as the relay core carries it (server/core/exchange.py): passed
through to a channel that speaks the Messages API (Anthropic's), translated to and from
chat for every other. Pure: no I/O.

What only the translation refuses (a PDF document, a server tool, a block type chat has
no form for) is held back as the exchange's `refusal`: an Anthropic channel still gets
the request and judges it itself. What no channel could take (no model, no messages, no
max_tokens) is refused at once, on every route."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from server.apis.messages import answer as answers
from server.apis.messages.errors import error_body
from server.apis.messages.request import chat_request, check_envelope
from server.apis.messages.stream import PING, Translator
from server.errors import GatewayError
from server.providers.anthropic.answer import usage as chat_usage

API = "messages"
# block fields whose strings are not text the model reads (base64 data, signatures)
UNREAD = frozenset({"data", "signature", "media_type", "type", "id", "tool_use_id", "cache_control", "role"})


@dataclass
class MessagesExchange:
    body: dict                      # the client's Messages body, as it came
    chat: dict                      # as chat completions (an estimate's stand-in when `refusal` is set)
    refusal: GatewayError | None = None
    api: str = API

    @property
    def model(self) -> str:
        return self.body["model"]

    def native_body(self, upstream_model: str) -> dict:
        return self.body if upstream_model == self.model else {**self.body, "model": upstream_model}

    def answer(self, completion: dict) -> dict:
        return answers.message(completion, self.model)

    def native_answer(self, answer: dict) -> dict:
        # the client hears the model it named, not the operator's upstream name for it
        return {**answer, "model": self.model}

    def metered(self, answer: dict) -> dict:
        return {"choices": [{"index": 0, "message": _texts(answer.get("content"))}],
                "usage": chat_usage(answer.get("usage"))}

    def translated_events(self) -> "TranslatedEvents":
        # message_start says 0 input tokens: counting them would cost a tokenizer run per
        # request (the relay reserves by a byte bound, server/billing/estimate.Prompt), and
        # message_delta carries the real figures, which the SDK keeps
        return TranslatedEvents(Translator(self.model))

    def native_events(self) -> "NativeEvents":
        return NativeEvents(self.model)


def exchange(body: Any) -> MessagesExchange:
    """The exchange for a create body; a 400 for what no channel could take."""
    check_envelope(body)
    try:
        return MessagesExchange(body, chat_request(body))
    except GatewayError as refusal:
        return MessagesExchange(body, estimate_chat(body), refusal)


def estimate_chat(body: dict) -> dict:
    """A chat body as large as a Messages body the translation refused, for the relay's
    quota reservation and estimates: every text in it as one user message."""
    texts: list[str] = []
    for key in ("system", "messages", "tools"):
        _strings(body.get(key), texts)
    return {"model": body["model"], "max_tokens": body["max_tokens"],
            "messages": [{"role": "user", "content": "\n".join(texts)}]}


def _strings(value: Any, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, list):
        for item in value:
            _strings(item, into)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in UNREAD:
                _strings(item, into)


def _texts(blocks: Any) -> dict:
    """A Message's content as a chat message, for counting what it generated."""
    message: dict[str, Any] = {"content": "", "reasoning_content": "", "tool_calls": []}
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            message["content"] += block["text"]
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            message["reasoning_content"] += block["thinking"]
        elif kind in ("tool_use", "server_tool_use"):
            message["tool_calls"].append({"function": {"name": str(block.get("name") or ""),
                                                       "arguments": _json_text(block.get("input"))}})
    return message


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return ""


class TranslatedEvents:
    """Chat chunks as Messages events, with a `ping` after `message_start` as Anthropic sends."""

    def __init__(self, translator: Translator) -> None:
        self._translator = translator

    def feed(self, item: dict) -> list[dict]:
        return _pinged([data for _, data in self._translator.feed(item)])

    def metered(self, item: dict) -> dict:
        return item

    def finish(self, usage: dict) -> list[dict]:
        return _pinged([data for _, data in self._translator.finish(usage)])

    def fail(self, error: GatewayError) -> list[dict]:
        return [data for _, data in self._translator.fail(error)]


def _pinged(events: list[dict]) -> list[dict]:
    if events and events[0].get("type") == "message_start":
        return [events[0], PING[1], *events[1:]]
    return events


# events a native stream holds back until the first one that says something: an upstream
# that fails right after them has sent the client nothing, so another channel may answer
PREAMBLE = frozenset({"message_start", "ping"})


class NativeEvents:
    """An Anthropic channel's own events, passed through; billed from their usage
    (message_start's, then message_delta's cumulative counts) and their text."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._held: list[dict] | None = []  # None once the preamble went out
        self._usage: dict = {}

    def feed(self, item: dict) -> list[dict]:
        if item.get("type") == "message_start" and isinstance(item.get("message"), dict):
            item = {**item, "message": {**item["message"], "model": self._model}}
        if self._held is None:
            return [item]
        self._held.append(item)
        if item.get("type") in PREAMBLE:
            return []
        held, self._held = self._held, None
        return held

    def metered(self, item: dict) -> dict | None:
        kind = item.get("type")
        if kind == "message_start":
            message = item.get("message")
            self._count(message.get("usage") if isinstance(message, dict) else None)
            return None  # billed at message_delta: its counts are the whole answer's
        if kind == "message_delta":
            self._count(item.get("usage"))
            return {"choices": [], "usage": chat_usage(self._usage)}
        if kind == "content_block_start":
            block = item.get("content_block")
            if isinstance(block, dict) and block.get("type") in ("tool_use", "server_tool_use"):
                return _chunk({"tool_calls": [{"function": {"name": str(block.get("name") or "")}}]})
            return _chunk(_texts([block]) if isinstance(block, dict) else {})
        if kind == "content_block_delta":
            delta = item.get("delta") if isinstance(item.get("delta"), dict) else {}
            if delta.get("type") == "text_delta":
                return _chunk({"content": delta.get("text")})
            if delta.get("type") == "thinking_delta":
                return _chunk({"reasoning_content": delta.get("thinking")})
            if delta.get("type") == "input_json_delta":
                return _chunk({"tool_calls": [{"function": {"arguments": delta.get("partial_json")}}]})
        return None

    def _count(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def finish(self, usage: dict) -> list[dict]:
        return self._flush()  # the upstream's own message_delta and message_stop went through

    def fail(self, error: GatewayError) -> list[dict]:
        return self._flush() + [error_body(error)]

    def _flush(self) -> list[dict]:
        held, self._held = self._held or [], None
        return held


def _chunk(delta: dict) -> dict:
    return {"choices": [{"index": 0, "delta": delta}]}
