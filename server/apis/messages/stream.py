"""Chat chunks as the Messages API's stream events. Pure: the route feeds the relay's
`chat.completion.chunk` dicts in one at a time and writes each (event name, data) pair out
as an SSE event.

The sequence is Anthropic's: `message_start`; per content block `content_block_start`, its
deltas, `content_block_stop` (one block open at a time, indexes from 0); `message_delta`
with the stop reason and usage; `message_stop`. Chat says its usage only at the end, so
`message_start` carries the input tokens the route estimated (0 when it gives none) and
`message_delta.usage` the real figures, which replace them (Anthropic's usage counts there
are cumulative, and its SDK overwrites with them).

`message_start` goes out with the relay's first chunk (`feed` starts the stream), not
before: until then the relay may still fall over to another channel, and a failure is a
plain error answer (`errors.error_response`), not an event. `ping` is the route's:
Anthropic sends one after `message_start` and then while the stream is idle; the route
writes `PING` after the first events and whenever nothing was written for a few seconds
(a timer beside the relay's stream, never a chunk from it).

A tool call's arguments pass through as `input_json_delta`s as they arrive (Anthropic's own
events do the same): arguments that do not end as a JSON object are the SDK's to report, as
they would be from Anthropic."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.apis.messages.answer import message_id, stop, tool_use_id, usage
from server.apis.messages.errors import error_event
from server.errors import GatewayError

Event = tuple[str, dict]
PING: Event = ("ping", {"type": "ping"})


@dataclass
class Translator:
    model: str                 # the model name the client asked for
    input_tokens: int = 0      # the route's estimate, for message_start
    id: str = ""
    _started: bool = False
    _finished: bool = False
    _blocks: int = 0           # content blocks started so far
    _open: str | None = None   # "text", "thinking" or "tool_use": the open block's kind
    _calls: dict[int, int] = field(default_factory=dict)  # chat tool call index -> block index
    _finish_reason: str | None = None
    _matched: str | None = None
    _usage: dict = field(default_factory=dict)

    def start(self, chat_id: Any = None) -> list[Event]:
        """`message_start`, once (the first chunk starts it when the route did not)."""
        if self._started:
            return []
        self._started = True
        self.id = message_id(chat_id)
        return [("message_start", {"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0}}})]

    def feed(self, chunk: dict) -> list[Event]:
        if self._finished:
            return []
        events = self.start(chunk.get("id"))
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            events += self._delta(delta)
            if choice.get("finish_reason") is not None:
                self._finish_reason = choice["finish_reason"]
                if isinstance(choice.get("stop_reason"), str):
                    self._matched = choice["stop_reason"]
        return events

    def finish(self, usage: dict | None = None) -> list[Event]:
        """The end: the open block's stop, `message_delta` and `message_stop`. `usage`: the
        chat usage the request is billed at, when the route has it (else the stream's own)."""
        if self._finished:
            return []
        if usage:
            self._usage = usage
        events = self.start() + self._close()
        self._finished = True
        stop_reason, stop_sequence = stop(self._finish_reason, self._matched, bool(self._calls))
        events.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                                         "usage": self._final_usage()}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _final_usage(self) -> dict:
        # Without chat's usage the input figures stay message_start's estimate (the SDK
        # keeps a figure message_delta leaves out); the output is then unknown: 0.
        return usage(self._usage) if self._usage else {"output_tokens": 0}

    def fail(self, error: GatewayError) -> list[Event]:
        """A failure once the stream has begun: an `error` event, after which it ends."""
        self._finished = True
        return [error_event(error)]

    # -- blocks -----------------------------------------------------------------------------

    def _delta(self, delta: dict) -> list[Event]:
        events: list[Event] = []
        if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
            events += self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            events.append(self._block_delta({"type": "thinking_delta", "thinking": delta["reasoning_content"]}))
        for block in delta.get("thinking_blocks") or []:
            if isinstance(block, dict):
                events += self._whole_thinking(block)
        for key in ("content", "refusal"):  # a refusal is text, as in a whole answer
            if isinstance(delta.get(key), str) and delta[key]:
                events += self._open_block("text", {"type": "text", "text": ""})
                events.append(self._block_delta({"type": "text_delta", "text": delta[key]}))
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                events += self._tool_call(call)
        return events

    def _whole_thinking(self, block: dict) -> list[Event]:
        """A finished thinking block (the anthropic channel sends one, signed, when the
        upstream's block stops): its signature closes the block its deltas built."""
        if block.get("type") == "redacted_thinking":
            events = self._close() + self._open_block("redacted_thinking", {
                "type": "redacted_thinking", "data": str(block.get("data") or "")})
            return events + self._close()
        events: list[Event] = []
        if self._open != "thinking":
            events += self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if block.get("thinking"):
                events.append(self._block_delta({"type": "thinking_delta", "thinking": str(block["thinking"])}))
        if block.get("signature"):
            events.append(self._block_delta({"type": "signature_delta", "signature": str(block["signature"])}))
        return events + self._close()

    def _tool_call(self, call: dict) -> list[Event]:
        index = call.get("index", 0)
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        events: list[Event] = []
        if index not in self._calls:
            events += self._open_block("tool_use", {"type": "tool_use", "id": tool_use_id(call.get("id")),
                                                    "name": str(function.get("name") or ""), "input": {}})
            self._calls[index] = self._blocks - 1
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # calls come one after another in chat streams; a late fragment of an earlier
            # call still goes to its own block, by index
            events.append(("content_block_delta", {"type": "content_block_delta", "index": self._calls[index],
                                                   "delta": {"type": "input_json_delta",
                                                             "partial_json": arguments}}))
        return events

    def _open_block(self, kind: str, block: dict) -> list[Event]:
        if self._open == kind and kind != "tool_use":
            return []
        events = self._close()
        self._open = kind
        self._blocks += 1
        return events + [("content_block_start", {"type": "content_block_start", "index": self._blocks - 1,
                                                  "content_block": block})]

    def _block_delta(self, delta: dict) -> Event:
        return ("content_block_delta", {"type": "content_block_delta", "index": self._blocks - 1, "delta": delta})

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._blocks - 1})]
