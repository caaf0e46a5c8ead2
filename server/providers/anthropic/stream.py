"""Anthropic's streaming events as OpenAI `chat.completion.chunk` dicts. Pure: the caller
reads the events off the wire and feeds them in one at a time.

The assistant role goes out with the first content, not at `message_start`: an upstream
that fails (an `error` event) before saying anything has then sent nothing, so the attempt
loop may still try another channel."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.providers.anthropic.answer import finish_reason, thinking_block, usage


class StreamError(Exception):
    """An `error` event: `error` is its error object."""

    def __init__(self, error: Any) -> None:
        super().__init__("upstream error event")
        self.error = error


@dataclass
class Translator:
    created: int
    include_usage: bool
    id: str = ""
    model: str = ""
    usage: dict = field(default_factory=dict)
    _calls: dict[int, int] = field(default_factory=dict)  # content block index -> tool call index
    _thinking: dict[int, dict] = field(default_factory=dict)  # content block index -> the block so far
    done: bool = False  # message_stop came: the stream ended as it should
    _spoke: bool = False

    def feed(self, event: dict) -> list[dict]:
        """The chunks `event` makes (often none). Raises StreamError on an `error` event,
        KeyError/TypeError on an event without the documented shape."""
        kind = event["type"]
        if kind == "message_start":
            message = event["message"]
            self.id, self.model = message["id"], message["model"]
            self.usage = dict(message.get("usage") or {})
        elif kind == "content_block_start":
            block = event["content_block"]
            if block["type"] == "tool_use":
                number = self._calls[event["index"]] = len(self._calls)
                return [self._delta({"tool_calls": [{"index": number, "id": block["id"], "type": "function",
                                                     "function": {"name": block["name"], "arguments": ""}}]})]
            if block["type"] in ("thinking", "redacted_thinking"):
                self._thinking[event["index"]] = dict(block)
            if block["type"] in ("text", "thinking") and block.get(block["type"]):
                return [self._delta(_text_delta(block["type"], block[block["type"]]))]
        elif kind == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                return [self._delta({"content": delta["text"]})]
            if delta["type"] == "thinking_delta":
                if (block := self._thinking.get(event["index"])) is not None:
                    block["thinking"] = block.get("thinking", "") + delta["thinking"]
                return [self._delta({"reasoning_content": delta["thinking"]})]
            if delta["type"] == "signature_delta" and event["index"] in self._thinking:
                self._thinking[event["index"]]["signature"] = delta["signature"]
            if delta["type"] == "input_json_delta" and event["index"] in self._calls:
                number = self._calls[event["index"]]
                return [self._delta({"tool_calls": [{"index": number,
                                                     "function": {"arguments": delta["partial_json"]}}]})]
        elif kind == "content_block_stop" and event["index"] in self._thinking:
            # the whole block once it is complete, for the client to send back with the turn
            return [self._delta({"thinking_blocks": [thinking_block(self._thinking.pop(event["index"]))]})]
        elif kind == "message_delta":
            # its usage counts are cumulative: they replace message_start's
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            reason = finish_reason(event["delta"].get("stop_reason"))
            if reason is not None:
                return [self._chunk([{"index": 0, "delta": self._opening({}), "finish_reason": reason}])]
        elif kind == "message_stop":
            self.done = True
            return [self._chunk([], totals=usage(self.usage))] if self.include_usage else []
        elif kind == "error":
            raise StreamError(event.get("error"))
        # ping, other blocks' stops, citation deltas, event types added later: nothing to say
        return []

    def _opening(self, delta: dict) -> dict:
        if self._spoke:
            return delta
        self._spoke = True
        return {"role": "assistant", **delta}

    def _delta(self, delta: dict) -> dict:
        return self._chunk([{"index": 0, "delta": self._opening(delta), "finish_reason": None}])

    def _chunk(self, choices: list[dict], totals: dict | None = None) -> dict:
        chunk: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                 "model": self.model, "choices": choices}
        if totals is not None:
            chunk["usage"] = totals
        return chunk


def _text_delta(kind: str, text: str) -> dict:
    return {"content": text} if kind == "text" else {"reasoning_content": text}
