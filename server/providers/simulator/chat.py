"""The simulator's chat completions, whole and streamed, shaped exactly like OpenAI's."""
from __future__ import annotations

import hashlib
import time
from typing import AsyncIterator

import orjson

from server.providers.interface import Upstream
from server.providers.simulator import tokens
from server.providers.simulator.answer import Answer, answer
from server.store.channels import Channel

FINGERPRINT = "st-ai-simulator"


def _id(body: dict) -> str:
    return "chatcmpl-sim" + hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def _usage(body: dict, reply: Answer, choices: int = 1) -> dict:
    prompt = tokens.prompt_tokens(body.get("messages") or [])
    # as OpenAI counts: every choice's tokens
    completion = choices * (tokens.count(reply.content or "") + tokens.count(reply.tool_name or "")
                            + tokens.count(reply.tool_arguments or ""))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_call(reply: Answer, call_id: str) -> dict:
    return {"id": call_id, "type": "function",
            "function": {"name": reply.tool_name, "arguments": reply.tool_arguments}}


class SimulatorChat:
    def __init__(self, upstream: Upstream) -> None:
        pass  # the simulator needs no HTTP

    async def complete(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        reply = answer(body)
        ident = _id(body)
        message: dict = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_name:
            message["tool_calls"] = [_tool_call(reply, "call_" + ident[-24:])]
        n = body.get("n") if isinstance(body.get("n"), int) and body["n"] > 0 else 1
        return {
            "id": ident, "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": i, "message": message, "logprobs": None,
                         "finish_reason": reply.finish_reason} for i in range(n)],
            "usage": _usage(body, reply, n), "system_fingerprint": FINGERPRINT,
        }

    async def stream(self, channel: Channel, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        reply = answer(body)
        ident = _id(body)
        created = int(time.time())

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {"id": ident, "object": "chat.completion.chunk", "created": created,
                    "model": body.get("model"), "system_fingerprint": FINGERPRINT,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        if reply.tool_name:
            call = _tool_call(reply, "call_" + ident[-24:])
            call["function"] = {"name": reply.tool_name, "arguments": ""}
            yield chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, **call}]})
            for piece in tokens.pieces(reply.tool_arguments or ""):
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        else:
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            for piece in tokens.pieces(reply.content or ""):
                yield chunk({"content": piece})
        yield chunk({}, reply.finish_reason)
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {"id": ident, "object": "chat.completion.chunk", "created": created,
                   "model": body.get("model"), "system_fingerprint": FINGERPRINT,
                   "choices": [], "usage": _usage(body, reply)}
