"""Chat `chat.completion.chunk` dicts as the Responses API's typed stream events. Pure: the
caller feeds chunks in and writes out the events each call returns.

Events come in OpenAI's order: `response.created` and `response.in_progress` first; each
output item opens (`output_item.added`), streams its deltas and closes (`output_item.done`)
before the next kind begins (reasoning, then the message, then one `function_call` item
per tool call, parallel calls by their chat index); then `response.completed` (or
`response.incomplete`) with the whole response. A failure after the start is an `error`
event and `response.failed`. Every event has its `sequence_number`, from 0."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from server.apis.responses import answer, carry
from server.apis.responses.answer import IdMaker, new_id
from server.errors import GatewayError


@dataclass
class _Item:
    index: int  # output_index
    item: dict  # the item as it will be when done
    done: bool = False


@dataclass
class ResponseEvents:
    response: dict  # answer.shell(...): the response as it stands
    make_id: IdMaker = new_id
    _sequence: int = 0
    _items: list[_Item] = field(default_factory=list)
    _reasoning: _Item | None = None
    _message: _Item | None = None
    _text_index: int | None = None  # content_index of the open output_text part
    _refusal_index: int | None = None
    _calls: dict[int, _Item] = field(default_factory=dict)  # chat tool call index -> its item
    _thinking_blocks: list[dict] = field(default_factory=list)
    _extras: dict[str, Any] = field(default_factory=dict)
    _finish_reason: str | None = None
    _usage: dict | None = None

    def start(self) -> list[dict]:
        return [self._event("response.created", response=self._snapshot()),
                self._event("response.in_progress", response=self._snapshot())]

    def feed(self, chunk: dict) -> list[dict]:
        """The events one chat chunk makes (often none)."""
        events: list[dict] = []
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # the Responses API has one answer
            delta = choice.get("delta") or {}
            if isinstance(delta.get("thinking_blocks"), list):
                # a block with no text to show (redacted thinking) still needs a reasoning item
                # to travel in, placed before the content it came before
                events += self._open_reasoning()
                self._thinking_blocks.extend(b for b in delta["thinking_blocks"] if isinstance(b, dict))
            if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
                events += self._reason(delta["reasoning_content"])
            if isinstance(delta.get("content"), str) and delta["content"]:
                events += self._text(delta["content"])
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                events += self._refuse(delta["refusal"])
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    events += self._call(call)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return events

    def finish(self, usage: dict | None = None) -> list[dict]:
        """The closing events once the chat stream ended; `usage` stands in for a stream
        that gave none (st-ai's own count)."""
        state, incomplete = answer.status(self._finish_reason)
        events = self._close_reasoning() + self._close_message(state)
        for item in self._calls.values():
            events += self._close_call(item)
        if self._extras:
            # provider state that came with the calls (after any reasoning item closed), for
            # the client to send back with them
            carrier = self._open(answer.reasoning_item(self.make_id("rs"), "", [], self._extras))
            events += [self._added(carrier), self._done(carrier)]
        self.response.update(status=state, incomplete_details=incomplete, output=self._output(),
                             usage=answer.usage(self._usage if self._usage is not None else usage))
        if state == "completed":
            self.response["completed_at"] = int(time.time())
        kind = "response.completed" if state == "completed" else "response.incomplete"
        return events + [self._event(kind, response=self._snapshot())]

    def fail(self, error: GatewayError) -> list[dict]:
        """An `error` event and `response.failed` for a stream that broke after it began;
        the output so far goes with it, unfinished items marked incomplete."""
        for item in self._items:
            if not item.done:
                item.item["status"] = "incomplete"
        code = ("rate_limit_exceeded" if error.http_status == 429
                else "server_error" if error.http_status >= 500 else "invalid_prompt")
        self.response.update(status="failed", output=self._output(), usage=answer.usage(self._usage),
                             error={"code": code, "message": error.message})
        return [self._event("error", code=error.code, message=error.message, param=error.param),
                self._event("response.failed", response=self._snapshot())]

    # -- items ----------------------------------------------------------------------------

    def _open_reasoning(self) -> list[dict]:
        if self._reasoning is not None and not self._reasoning.done:
            return []
        events = self._close_message("completed")
        self._reasoning = self._open({"id": self.make_id("rs"), "type": "reasoning", "summary": [],
                                      "status": "in_progress"})
        return events + [self._added(self._reasoning)]

    def _reason(self, text: str) -> list[dict]:
        events = self._open_reasoning()
        item = self._reasoning
        assert item is not None
        if not item.item["summary"]:
            item.item["summary"].append({"type": "summary_text", "text": ""})
            events.append(self._event("response.reasoning_summary_part.added", **self._at(item),
                                      summary_index=0, part={"type": "summary_text", "text": ""}))
        item.item["summary"][0]["text"] += text
        return events + [self._event("response.reasoning_summary_text.delta", **self._at(item),
                                     summary_index=0, delta=text)]

    def _close_reasoning(self) -> list[dict]:
        item = self._reasoning
        if item is None or item.done:
            return []
        item.item["status"] = "completed"
        if (state := carry.pack(self._thinking_blocks, {})) is not None:
            item.item["encrypted_content"] = state
            self._thinking_blocks = []
        events = []
        if item.item["summary"]:
            text = item.item["summary"][0]["text"]
            events += [self._event("response.reasoning_summary_text.done", **self._at(item), summary_index=0,
                                   text=text),
                       self._event("response.reasoning_summary_part.done", **self._at(item), summary_index=0,
                                   part={"type": "summary_text", "text": text})]
        return events + [self._done(item)]

    def _open_message(self) -> list[dict]:
        if self._message is not None and not self._message.done:
            return []
        events = self._close_reasoning()
        self._message = self._open(answer.message_item(self.make_id("msg"), None, None, "in_progress"))
        self._text_index = self._refusal_index = None
        return events + [self._added(self._message)]

    def _text(self, text: str) -> list[dict]:
        events = self._open_message()
        message = self._message
        assert message is not None
        if self._text_index is None:
            self._text_index = len(message.item["content"])
            message.item["content"].append({"type": "output_text", "text": "", "annotations": [], "logprobs": []})
            events.append(self._event("response.content_part.added", **self._at(message),
                                      content_index=self._text_index,
                                      part={"type": "output_text", "text": "", "annotations": [], "logprobs": []}))
        message.item["content"][self._text_index]["text"] += text
        return events + [self._event("response.output_text.delta", **self._at(message),
                                     content_index=self._text_index, delta=text, logprobs=[])]

    def _refuse(self, text: str) -> list[dict]:
        events = self._open_message()
        message = self._message
        assert message is not None
        if self._refusal_index is None:
            self._refusal_index = len(message.item["content"])
            message.item["content"].append({"type": "refusal", "refusal": ""})
            events.append(self._event("response.content_part.added", **self._at(message),
                                      content_index=self._refusal_index, part={"type": "refusal", "refusal": ""}))
        message.item["content"][self._refusal_index]["refusal"] += text
        return events + [self._event("response.refusal.delta", **self._at(message),
                                     content_index=self._refusal_index, delta=text)]

    def _close_message(self, state: str) -> list[dict]:
        message = self._message
        if message is None or message.done:
            return []
        events = []
        for index, part in enumerate(message.item["content"]):
            if part["type"] == "output_text":
                events.append(self._event("response.output_text.done", **self._at(message), content_index=index,
                                          text=part["text"], logprobs=[]))
            else:
                events.append(self._event("response.refusal.done", **self._at(message), content_index=index,
                                          refusal=part["refusal"]))
            events.append(self._event("response.content_part.done", **self._at(message), content_index=index,
                                      part=dict(part)))
        message.item["status"] = state
        return events + [self._done(message)]

    def _call(self, call: dict) -> list[dict]:
        number = call.get("index", 0)
        function = call.get("function") or {}
        events: list[dict] = []
        item = self._calls.get(number)
        if item is None:
            events += self._close_reasoning() + self._close_message("completed")
            call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else self.make_id("call")
            item = self._calls[number] = self._open(answer.call_item(
                self.make_id("fc"), call_id, function.get("name") or "", "", "in_progress"))
            events.append(self._added(item))
        elif isinstance(function.get("name"), str) and not item.item["name"]:
            item.item["name"] = function["name"]
        if isinstance(call.get("extra_content"), dict):
            self._extras[item.item["call_id"]] = call["extra_content"]
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            item.item["arguments"] += piece
            events.append(self._event("response.function_call_arguments.delta", **self._at(item), delta=piece))
        return events

    def _close_call(self, item: _Item) -> list[dict]:
        if item.done:
            return []
        item.item["status"] = "completed"
        return [self._event("response.function_call_arguments.done", **self._at(item),
                            arguments=item.item["arguments"]),
                self._done(item)]

    # -- plumbing ---------------------------------------------------------------------------

    def _open(self, item: dict) -> _Item:
        opened = _Item(len(self._items), item)
        self._items.append(opened)
        return opened

    def _added(self, item: _Item) -> dict:
        return self._event("response.output_item.added", output_index=item.index, item=_copy(item.item))

    def _done(self, item: _Item) -> dict:
        item.done = True
        return self._event("response.output_item.done", output_index=item.index, item=_copy(item.item))

    @staticmethod
    def _at(item: _Item) -> dict:
        return {"item_id": item.item["id"], "output_index": item.index}

    def _output(self) -> list[dict]:
        return [_copy(item.item) for item in self._items]

    def _snapshot(self) -> dict:
        return _copy(self.response)

    def _event(self, kind: str, **fields: Any) -> dict:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event


def _copy(value: Any) -> Any:
    """A deep copy of plain JSON values: events must not change when the state goes on."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
