"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: it speaks the public
API's shapes (paths, bearer auth, JSON and SSE bodies, error objects), records every
request it receives, and can be told to pause mid-stream or fail.

It runs on its own thread and loop, so synchronous tests (and the openai SDK) can use
it as they would a remote service.
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class StreamPlan:
    """The chunks to stream; before chunk i (i > 0) the server waits for gates[i] if set."""
    chunks: list[dict]
    gates: dict[int, threading.Event] = field(default_factory=dict)
    sent: list[threading.Event] = field(default_factory=list)  # set after chunk i is flushed
    send_done: bool = True


class FakeOpenAI:
    def __init__(self, api_key: str = "sk-upstream-secret") -> None:
        self.api_key = api_key
        self.received: list[Received] = []
        self.completion: dict | None = None  # the non-streamed answer; default built from request
        self.stream_plan: StreamPlan | None = None
        self.fail_with: tuple[int, dict | bytes] | None = None  # (status, body) for every request
        self.delay: float = 0.0
        self.connection_closed = threading.Event()  # a stream's client went away mid-answer
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> "FakeOpenAI":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # OpenAI's behaviour ------------------------------------------------------------------

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return web.json_response({"error": {
            "message": "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}, status=401)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        self.received.append(Received(request.method, request.path, dict(request.headers), body))
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if self.fail_with is not None:
            status, payload = self.fail_with
            data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            return web.Response(status=status, body=data, content_type="application/json")
        if self.delay:
            await asyncio.sleep(self.delay)
        if body.get("stream"):
            return await self._stream(request, body)
        answer = self.completion or {
            "id": "chatcmpl-fake1", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fake.",
                                                  "refusal": None, "annotations": []},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
            "service_tier": "default", "system_fingerprint": "fp_fake",
        }
        return web.json_response(answer)

    def default_chunks(self, model: str, include_usage: bool) -> list[dict]:
        base = {"id": "chatcmpl-fake2", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "service_tier": "default", "system_fingerprint": "fp_fake"}
        chunks = [base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                                       "logprobs": None, "finish_reason": None}]}]
        for piece in ("Hel", "lo", "!"):
            chunks.append(base | {"choices": [{"index": 0, "delta": {"content": piece},
                                               "logprobs": None, "finish_reason": None}]})
        chunks.append(base | {"choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
        if include_usage:
            chunks.append(base | {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3,
                                                           "total_tokens": 12}})
        return chunks

    async def _stream(self, request: web.Request, body: dict) -> web.StreamResponse:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        plan = self.stream_plan or StreamPlan(self.default_chunks(body["model"], include_usage))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            for i, chunk in enumerate(plan.chunks):
                gate = plan.gates.get(i)
                if gate is not None:
                    while not gate.is_set():
                        await asyncio.sleep(0.01)
                        if request.transport is None or request.transport.is_closing():
                            raise ConnectionResetError
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                if i < len(plan.sent):
                    plan.sent[i].set()
            if plan.send_done:
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.connection_closed.set()
            raise
        return response

    async def _models(self, request: web.Request) -> web.Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        return web.json_response({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1686935002, "owned_by": "openai"}]})
