"""One Responses API request as the relay core carries it (server/core/exchange.py). Pure.

A channel whose upstream speaks the Responses API gets the client's body with the whole
conversation as `input` and `store: false` (st-ai keeps `previous_response_id` and stored
responses itself, on every upstream alike); any other gets a chat request
(request.chat_body) and its answer is translated (answer.py, stream.py). Either way the
answer carries st-ai's response id and creation time, chosen before relaying, so the
stored response, the answer and every event agree."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from server.apis.responses import answer, carry, history
from server.apis.responses.request import ResponsesRequest, chat_body
from server.apis.responses.stream import ResponseEvents
from server.errors import GatewayError, upstream_failed

API = "responses"
# what only st-ai reads: the chain is rebuilt here and the upstream stores nothing
NOT_SENT = frozenset({"previous_response_id", "store", "stream", "stream_options"})
# history items a chat request can carry again; a built-in tool's call items from a
# channel that ran it have their outcome in the message after them
TRANSLATABLE = history.HISTORY_OUTPUTS | {"function_call_output"}
ENCRYPTED_REASONING = "reasoning.encrypted_content"
ID_FREE = frozenset({"message", "function_call_output"})
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass
class ResponsesExchange:
    request: ResponsesRequest
    body: dict                # the client's body, as read
    history: list[dict]       # the stored turns `previous_response_id` continues, oldest first
    response_id: str
    created_at: int
    stream: bool = False      # answered as events (the RPC's kind, not the body's word)
    api: str = field(default=API, init=False)
    model: str = field(init=False)
    chat: dict = field(init=False)
    refusal: GatewayError | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.model = self.request.model
        earlier = [item for item in self.history if item.get("type") in TRANSLATABLE]
        try:
            self.chat = chat_body(self.request, history.conversation(earlier, [], self.request.input_items))
        except GatewayError as error:
            # only a channel that speaks the Responses API can take it; the chat form
            # still sizes the request for admission
            self.refusal, self.chat = error, self._estimate_body()

    def _estimate_body(self) -> dict:
        text = orjson.dumps([self.request.instructions, self.history, self.request.input_items]).decode()
        estimate: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": text}]}
        if "max_completion_tokens" in self.request.params:
            estimate["max_completion_tokens"] = self.request.params["max_completion_tokens"]
        elif isinstance(self.body.get("max_output_tokens"), int):
            estimate["max_completion_tokens"] = self.body["max_output_tokens"]
        return estimate

    # -- pass-through ---------------------------------------------------------------------

    def native_body(self, upstream_model: str) -> dict:
        sent = {k: v for k, v in self.body.items() if k not in NOT_SENT}
        items = [_sendable(item) for item in (*self.history, *self.request.input_items) if _resendable(item)]
        sent.update(model=upstream_model, input=items, store=False)
        if self.stream:
            sent["stream"] = True
        if self.body.get("reasoning") is not None or any(i.get("type") == "reasoning" for i in items):
            # unstored reasoning only goes back upstream with its encrypted state
            include = [v for v in self.body.get("include") or () if v != ENCRYPTED_REASONING]
            sent["include"] = [*include, ENCRYPTED_REASONING]
        return sent

    def native_answer(self, answer: dict) -> dict:
        return self._own(answer)

    def _own(self, response: dict) -> dict:
        """The upstream's response as st-ai's: its id, time, model name and chain."""
        return {**response, "id": self.response_id, "created_at": self.created_at, "model": self.model,
                "previous_response_id": self.request.previous_response_id, "store": self.request.store}

    def metered(self, answer: dict) -> dict:
        texts = _output_texts(answer.get("output"))
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(texts)}}],
                "usage": chat_usage(answer.get("usage"))}

    def native_events(self) -> "NativeEvents":
        return NativeEvents(self)

    # -- translation ----------------------------------------------------------------------

    def answer(self, completion: dict) -> dict:
        return answer.response(completion, self.request, self.response_id, self.created_at)

    def translated_events(self) -> "TranslatedEvents":
        return TranslatedEvents(ResponseEvents(answer.shell(self.request, self.response_id, self.created_at)))


@dataclass
class TranslatedEvents:
    """Chat chunks as Responses events: `response.created` and `response.in_progress` lead
    the first events the chunks make."""
    events: ResponseEvents
    _pending: list[dict] | None = None  # the opening events, until something follows them

    def _opening(self) -> list[dict]:
        if self._pending is None:
            self._pending = self.events.start()
        opening, self._pending = self._pending, []
        return opening

    def feed(self, item: dict) -> list[dict]:
        if self._pending is None:
            self._pending = self.events.start()
        made = self.events.feed(item)
        return self._opening() + made if made else []

    def metered(self, item: dict) -> dict | None:
        return item

    def finish(self, usage: dict) -> list[dict]:
        return self._opening() + self.events.finish(usage)

    def fail(self, error: GatewayError) -> list[dict]:
        return self._opening() + self.events.fail(error)


@dataclass
class NativeEvents:
    """An upstream's own Responses events, as st-ai's response: numbered again from 0 (the
    stream may end with st-ai's own events), every `response` snapshot made st-ai's."""
    exchange: ResponsesExchange
    _sequence: int = 0
    _response: dict | None = None  # the latest snapshot
    _items: dict[int, dict] = field(default_factory=dict)  # output_index -> the item as done
    _ended: bool = False

    def feed(self, item: dict) -> list[dict]:
        event = dict(item)
        if isinstance(event.get("response"), dict):
            event["response"] = self._response = self.exchange._own(event["response"])
        if event.get("type") == "response.output_item.done" and isinstance(event.get("item"), dict):
            self._items[event.get("output_index", len(self._items))] = event["item"]
        self._ended = self._ended or event.get("type") in TERMINAL
        return [self._numbered(event)]

    def metered(self, item: dict) -> dict | None:
        kind, delta = item.get("type"), item.get("delta")
        if kind in TERMINAL and isinstance(item.get("response"), dict):
            return {"choices": [], "usage": chat_usage(item["response"].get("usage"))}
        if not isinstance(delta, str) or not isinstance(kind, str):
            return None
        key = "reasoning_content" if kind.startswith("response.reasoning") else "content"
        return {"choices": [{"index": 0, "delta": {key: delta}}]}

    def finish(self, usage: dict) -> list[dict]:
        if self._ended:
            return []
        return self.fail(upstream_failed("The upstream's stream ended before its response was complete."))

    def fail(self, error: GatewayError) -> list[dict]:
        response = dict(self._response or self.exchange._own({"object": "response", "output": []}))
        response.update(status="failed", output=[self._items[i] for i in sorted(self._items)],
                        usage=answer.usage(chat_usage(response.get("usage"))),
                        error={"code": "server_error" if error.http_status >= 500 else "invalid_prompt",
                               "message": error.message})
        self._ended = True
        return [self._numbered({"type": "error", "code": error.code, "message": error.message,
                                "param": error.param}),
                self._numbered({"type": "response.failed", "response": response})]

    def _numbered(self, event: dict) -> dict:
        event["sequence_number"] = self._sequence
        self._sequence += 1
        return event


def chat_usage(usage: Any) -> dict | None:
    """A Responses API usage object as the chat usage it is billed as."""
    if not isinstance(usage, dict):
        return None
    given, made = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if given is None or made is None:
        return None
    details = usage.get("input_tokens_details") if isinstance(usage.get("input_tokens_details"), dict) else {}
    output = usage.get("output_tokens_details") if isinstance(usage.get("output_tokens_details"), dict) else {}
    return {"prompt_tokens": given, "completion_tokens": made,
            "total_tokens": _count(usage.get("total_tokens")) or given + made,
            "prompt_tokens_details": {"cached_tokens": _count(details.get("cached_tokens")) or 0,
                                      "cache_write_tokens": _count(details.get("cache_write_tokens")) or 0},
            "completion_tokens_details": {"reasoning_tokens": _count(output.get("reasoning_tokens")) or 0}}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _output_texts(output: Any) -> list[str]:
    """The text a native response generated (for counting when it gave no usage)."""
    texts: list[str] = []
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("arguments"), str):
            texts.append(item["arguments"])
        for part in (*(item.get("content") or ()), *(item.get("summary") or ())):
            if isinstance(part, dict):
                texts.extend(part[k] for k in ("text", "refusal") if isinstance(part.get(k), str))
    return texts


def _resendable(item: dict) -> bool:
    """Reasoning goes back to an upstream that stores nothing only with its own encrypted
    state; st-ai's carrier (carry.py) is for other upstreams."""
    if item.get("type") != "reasoning":
        return True
    state = item.get("encrypted_content")
    return isinstance(state, str) and bool(state) and not state.startswith(carry.PREFIX)


def _sendable(item: dict) -> dict:
    """An item as an upstream that stores nothing takes it: a message or a call's output
    goes without an id (st-ai's store gave input items theirs, and the input forms of
    these take none); other items keep theirs (reasoning state is bound to its id, a
    built-in tool's call item needs one)."""
    if item.get("type") not in ID_FREE or "id" not in item:
        return item
    return {k: v for k, v in item.items() if k != "id"}
