"""`streamGenerateContent?alt=sse` events as OpenAI `chat.completion.chunk`s. Each Gemini
event is a whole `GenerateContentResponse` holding what is new: text and thought parts
become `content` and `reasoning_content` deltas, a function call (Gemini sends each whole)
one `tool_calls` delta with its index, id and arguments, a candidate's `finishReason` a
finishing chunk. Gemini repeats `usageMetadata` on its events; the last one is sent as the
usage chunk after the last choice, when the request asked for it. Pure: one
translator per stream keeps the ids it made, so they stay the same for the whole stream."""
from __future__ import annotations

from dataclasses import dataclass, field

from server.providers.gemini.response import (IdMaker, blocked, candidate_index, finish_reason, new_call_id,
                                              parts_of, tool_call, usage)


@dataclass
class _Candidate:
    started: bool = False
    calls: int = 0
    finished: bool = False


@dataclass
class StreamTranslator:
    id: str
    model: str
    created: int
    include_usage: bool
    make_id: IdMaker = new_call_id
    _candidates: dict[int, _Candidate] = field(default_factory=dict)
    _usage: dict | None = None

    def event(self, answer: dict) -> list[dict]:
        """The chunks for one Gemini event."""
        if not self._candidates:
            error = blocked(answer)
            if error is not None:
                raise error
        if answer.get("usageMetadata") is not None:
            self._usage = usage(answer["usageMetadata"])
        chunks = []
        for position, candidate in enumerate(answer.get("candidates") or []):
            index = candidate_index(candidate, position)
            state = self._candidates.setdefault(index, _Candidate())
            delta: dict = {}
            if not state.started:
                delta["role"] = "assistant"
                state.started = True
            calls = []
            for part in parts_of(candidate):
                if "functionCall" in part:
                    call = tool_call(part, self.make_id)
                    calls.append({"index": state.calls, **call})
                    state.calls += 1
                elif isinstance(part.get("text"), str) and part["text"]:
                    key = "reasoning_content" if part.get("thought") else "content"
                    delta[key] = delta.get(key, "") + part["text"]
            if calls:
                delta["tool_calls"] = calls
            reason = finish_reason(candidate.get("finishReason"), state.calls > 0)
            news = any(key in delta for key in ("content", "reasoning_content", "tool_calls"))
            if news or ("role" in delta and reason is None):
                chunks.append(self._chunk(index, delta))
            if reason is not None and not state.finished:
                state.finished = True
                chunks.append(self._chunk(index, {} if news or "role" not in delta else delta, reason))
        return chunks

    def end(self) -> list[dict]:
        """What follows the last event: the usage chunk, when asked for and given."""
        if self.include_usage and self._usage is not None:
            return [{"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                     "choices": [], "usage": self._usage}]
        return []

    def _chunk(self, index: int, delta: dict, reason: str | None = None) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": index, "delta": delta, "finish_reason": reason}]}
