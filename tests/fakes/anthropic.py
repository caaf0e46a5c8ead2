"""A real Anthropic Messages API server on 127.0.0.1 for tests.

`POST /v1/messages` checks what Anthropic checks: the key (`x-api-key`, or the official
SDK's `Authorization: Bearer`), the `anthropic-version` header (2023-06-01 or
2026-10-21), and the body: `max_tokens` required, content blocks of the documented
types, every `tool_result` answering a `tool_use` of the turn before, the sampling
parameters and thinking forms each model and version takes (its own table below, kept
apart from st-ai's). It answers scripted replies whole or as the documented event stream
(`message_start`, `content_block_start`, `ping`, `content_block_delta` with text,
thinking, signature and input-JSON deltas, `content_block_stop`, `message_delta`,
`message_stop`), errors with Anthropic's error body, and an `error` event mid-stream on
request. Every request is recorded, headers and body, for the tests' assertions.

It runs on its own thread and loop, like tests/fakes/openai_upstream.py."""
from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.faults import Faults
from tests.fakes.threaded_server import ThreadedServer

KEY = "sk-ant-api03-fake-key-0123456789abcdef"
VERSIONS = ("2023-06-01", "2026-10-21")
# model -> (sampling it takes on 2023-06-01: all | one | none, thinking forms it takes)
MODELS: dict[str, tuple[str, frozenset[str]]] = {
    "claude-3-5-haiku-20241022": ("all", frozenset()),
    "claude-3-7-sonnet-20250219": ("all", frozenset({"enabled"})),
    "claude-sonnet-4-5-20250929": ("one", frozenset({"enabled"})),
    "claude-haiku-4-5": ("one", frozenset({"enabled"})),
    "claude-sonnet-4-6": ("one", frozenset({"enabled", "adaptive"})),
    "claude-opus-4-7": ("none", frozenset({"adaptive"})),
    "claude-opus-5-5": ("none", frozenset({"adaptive"})),
}
EFFORTS = {"low", "medium", "high", "max", "xhigh"}
BLOCK_TYPES = {"user": {"text", "image", "tool_result"},
               "assistant": {"text", "tool_use", "thinking", "redacted_thinking"}}
# what count_tokens takes (its API reference): no max_tokens, sampling, stop or stream
COUNTED_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config",
                  "cache_control", "mcp_servers", "context_management"}
STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error"}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: Any


@dataclass
class Reply:
    """A scripted answer: Anthropic content blocks (text, thinking, tool_use), its stop."""
    content: list[dict] = field(default_factory=lambda: [{"type": "text", "text": "Hello from Claude."}])
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    input_tokens: int = 21
    output_tokens: int = 9
    cache_read: int = 0
    cache_write: int = 0
    error_after: int | None = None   # streams only: an `error` event after this many events
    error_type: str = "overloaded_error"

    def usage(self, output_tokens: int | None = None) -> dict:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens if output_tokens is None
                else output_tokens, "cache_creation_input_tokens": self.cache_write,
                "cache_read_input_tokens": self.cache_read}


def input_tokens(body: dict) -> int:
    """The fake's own token count: 3 per message, one per word of the strings in the system,
    messages and tools (not roles, types, ids, signatures or data), 400 per image (not any tokenizer, so a test can tell this
    count from st-ai's)."""
    words = 0
    images = 0

    def walk(value: Any) -> None:
        nonlocal words, images
        if isinstance(value, str):
            words += len(value.split())
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            if value.get("type") == "image":
                images += 1
                return
            for key, item in value.items():
                if key not in ("role", "type", "id", "tool_use_id", "signature", "data"):
                    walk(item)
    for key in ("system", "messages", "tools"):
        walk(body.get(key))
    return 3 * len(body.get("messages") or []) + words + 400 * images


def text(words: str, **kwargs) -> Reply:
    return Reply([{"type": "text", "text": words}], **kwargs)


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message},
                         "request_id": "req_011Fake"})


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=error_body(STATUS_TYPES.get(self.status, "api_error"),
                                                                 self.message),
                            headers=self.headers, content_type="application/json")


class FakeAnthropic:
    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.faults = Faults()
        self.received: list[Received] = []
        self._replies: deque[Reply] = deque()
        self._errors: deque[Refused] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadedServer(self._app)
        self.port = 0

    # -- test side -------------------------------------------------------------------

    def start(self) -> "FakeAnthropic":
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    base_url = url  # the name the other fakes use

    def script(self, *replies: Reply) -> None:
        """The next requests' answers, one each (then the default text answer)."""
        with self._lock:
            self._replies.extend(replies)

    def fail(self, status: int, message: str = "Something went wrong.", retry_after: str | None = None) -> None:
        """The next request is answered with this error (Anthropic's type for the status)."""
        with self._lock:
            self._errors.append(Refused(status, message, {"retry-after": retry_after} if retry_after else None))

    def reset(self) -> None:
        with self._lock:
            self._replies.clear()
            self._errors.clear()
            self.received.clear()
        self.faults.clear()

    def last(self) -> Received:
        with self._lock:
            return self.received[-1]

    # -- server side -----------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self.faults.middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        return app

    async def _count_tokens(self, request: web.Request) -> web.Response:
        """`POST /v1/messages/count_tokens`: the body of a message without what only
        creating one takes; answers `{"input_tokens": N}` (see `input_tokens`)."""
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        with self._lock:
            self.received.append(Received(request.method, request.path,
                                          {k.lower(): v for k, v in request.headers.items()}, body))
            planned_error = self._errors.popleft() if self._errors else None
        try:
            self._check_auth(request)
            if planned_error is not None:
                raise planned_error
            if not isinstance(body, dict):
                raise Refused(400, "The request body is not valid JSON.")
            if body.get("model") not in MODELS:
                raise Refused(404, f"model: {body.get('model')}")
            for name in body:
                if name not in COUNTED_FIELDS:
                    raise Refused(400, f"{name}: Extra inputs are not permitted")
            _check_messages(body.get("messages"))
            _check_tools(body)
        except Refused as refused:
            return refused.response()
        return web.json_response({"input_tokens": input_tokens(body)})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        with self._lock:
            self.received.append(Received(request.method, request.path,
                                          {k.lower(): v for k, v in request.headers.items()}, body))
            planned_error = self._errors.popleft() if self._errors else None
            reply = self._replies.popleft() if self._replies else Reply()
        try:
            self._check_auth(request)
            if planned_error is not None:
                raise planned_error
            _check_body(body, request.headers.get("anthropic-version", ""))
        except Refused as refused:
            return refused.response()
        message_id = f"msg_fake{next(self._ids):06d}"
        if body.get("stream"):
            return await _stream(request, body, reply, message_id)
        return web.json_response({"id": message_id, "type": "message", "role": "assistant", "model": body["model"],
                                  "content": reply.content, "stop_reason": reply.stop_reason,
                                  "stop_sequence": reply.stop_sequence, "usage": reply.usage()})

    def _check_auth(self, request: web.Request) -> None:
        given = request.headers.get("x-api-key")
        if given is None and request.headers.get("authorization", "").startswith("Bearer "):
            given = request.headers["authorization"][len("Bearer "):]
        if given != self.key:
            raise Refused(401, "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if version is None:
            raise Refused(400, "anthropic-version: header is required")
        if version not in VERSIONS:
            raise Refused(400, f"anthropic-version: invalid version {version!r}")


def _check_body(body: Any, version: str) -> None:
    if not isinstance(body, dict):
        raise Refused(400, "The request body is not valid JSON.")
    model = body.get("model")
    if model not in MODELS:
        raise Refused(404, f"model: {model}")
    sampling, thinking_forms = MODELS[model]
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise Refused(400, "max_tokens: Field required")
    given = [name for name in ("temperature", "top_p", "top_k") if name in body]
    if given and (version >= "2026-10-21" or sampling == "none"):
        raise Refused(400, f"{given[0]}: Extra inputs are not permitted")
    if sampling == "one" and "temperature" in body and "top_p" in body:
        raise Refused(400, "`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    if not 0 <= body.get("temperature", 0) <= 1:
        raise Refused(400, "temperature: Input should be less than or equal to 1")
    _check_thinking(body, thinking_forms, max_tokens)
    _check_messages(body.get("messages"))
    if body.get("thinking", {}).get("type") in ("enabled", "adaptive"):
        _check_thinking_leads_a_tool_turn(body["messages"])
    _check_tools(body)
    if "system" in body and not (isinstance(body["system"], str) or all(
            isinstance(b, dict) and b.get("type") == "text" and b.get("text") for b in body["system"])):
        raise Refused(400, "system: text content blocks must be non-empty")


def _check_thinking(body: dict, forms: frozenset[str], max_tokens: int) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        if "output_config" in body and body["output_config"].get("effort") not in EFFORTS:
            raise Refused(400, "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
        return
    kind = thinking.get("type")
    if kind not in forms:
        raise Refused(400, f'"thinking.type.{kind}" is not supported for this model.')
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024 or budget >= max_tokens:
            raise Refused(400, "thinking.budget_tokens: must be at least 1024 and less than max_tokens")
    if "temperature" in body or "top_k" in body:
        raise Refused(400, "temperature may only be set to 1 when thinking is enabled.")
    if not 0.95 <= body.get("top_p", 1) <= 1:
        raise Refused(400, "top_p must be between 0.95 and 1 when thinking is enabled.")
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise Refused(400, "Thinking may not be enabled when tool_choice forces tool use.")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Refused(400, "messages: at least one message is required")
    called: set[str] = set()
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in BLOCK_TYPES:
            raise Refused(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if isinstance(content, str):
            blocks = [{"type": "text", "text": content}]
        elif isinstance(content, list) and content:
            blocks = content
        else:
            raise Refused(400, f"messages.{i}.content: must be a string or a non-empty list")
        answered = set()
        for j, block in enumerate(blocks):
            kind = block.get("type")
            if kind not in BLOCK_TYPES[role]:
                raise Refused(400, f"messages.{i}.content.{j}.type: {kind!r} is not allowed in a {role} turn")
            if kind == "text" and not block.get("text"):
                raise Refused(400, f"messages.{i}.content.{j}.text: text content blocks must be non-empty")
            if kind == "image":
                _check_image(block.get("source"), f"messages.{i}.content.{j}.source")
            if kind == "tool_use" and not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)
                                           and isinstance(block.get("input"), dict)):
                raise Refused(400, f"messages.{i}.content.{j}: tool_use needs id, name and an input object")
            if kind == "tool_result":
                if block.get("tool_use_id") not in called:
                    raise Refused(400, f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                                       "blocks; each must have a corresponding `tool_use` block in the previous message.")
                answered.add(block["tool_use_id"])
        called = {b["id"] for b in blocks if b.get("type") == "tool_use"} if role == "assistant" else set()


def _check_thinking_leads_a_tool_turn(messages: list) -> None:
    """With thinking on, the assistant turn whose tool calls the conversation continues
    from must start with its thinking, as Anthropic returned it."""
    assistants = [m for m in messages if m["role"] == "assistant"]
    if not assistants or isinstance(assistants[-1]["content"], str):
        return
    blocks = assistants[-1]["content"]
    if any(b.get("type") == "tool_use" for b in blocks) and blocks[0].get("type") not in ("thinking",
                                                                                          "redacted_thinking"):
        raise Refused(400, f"messages.{messages.index(assistants[-1])}.content.0.type: Expected `thinking` or "
                           f"`redacted_thinking`, but found `{blocks[0].get('type')}`. When `thinking` is enabled, a "
                           "final `assistant` message must start with a thinking block.")


def _check_image(source: Any, where: str) -> None:
    if not isinstance(source, dict):
        raise Refused(400, f"{where}: Field required")
    if source.get("type") == "base64":
        if source.get("media_type") not in ("image/jpeg", "image/png", "image/gif", "image/webp") \
                or not source.get("data"):
            raise Refused(400, f"{where}: base64 images need a supported media_type and data")
    elif source.get("type") == "url":
        if not str(source.get("url", "")).startswith(("https://", "http://")):
            raise Refused(400, f"{where}.url: must be a URL")
    else:
        raise Refused(400, f"{where}.type: Input should be 'base64', 'url' or 'file'")


def _check_tools(body: dict) -> None:
    names = set()
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
            raise Refused(400, f"tools.{i}: name and input_schema are required")
        names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not names:
        raise Refused(400, "tool_choice may only be specified while providing tools.")
    if choice.get("type") not in ("auto", "any", "tool", "none"):
        raise Refused(400, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if choice["type"] == "tool" and choice.get("name") not in names:
        raise Refused(400, "tool_choice.name: no tool with this name")


# -- streaming -------------------------------------------------------------------------

def _pieces(value: str, size: int = 6) -> list[str]:
    return [value[i:i + size] for i in range(0, len(value), size)] or [""]


def _events(body: dict, reply: Reply, message_id: str) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = [("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": body["model"], "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": reply.usage(output_tokens=1)}})]
    for index, block in enumerate(reply.content):
        kind = block["type"]
        start = {"text": {"type": "text", "text": ""}, "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                 "tool_use": {**block, "input": {}}}[kind]
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        if kind == "text":
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        elif kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "EqQBCgIYAhIM1gbcDa9GJwZA")})
        else:
            arguments = orjson.dumps(block["input"]).decode()
            middle = len(arguments) // 2
            deltas = [{"type": "input_json_delta", "partial_json": arguments[:middle]},
                      {"type": "input_json_delta", "partial_json": arguments[middle:]}]
        events.extend(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
                      for d in deltas)
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
                                     "usage": reply.usage()}))
    events.append(("message_stop", {"type": "message_stop"}))
    if reply.error_after is not None:
        events = events[:reply.error_after] + [("error", {"type": "error", "error": {
            "type": reply.error_type, "message": "Overloaded" if reply.error_type == "overloaded_error"
            else "An internal error occurred."}})]
    return events


async def _stream(request: web.Request, body: dict, reply: Reply, message_id: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache", "request-id": "req_011Fake"})
    await response.prepare(request)
    for name, data in _events(body, reply, message_id):
        await response.write(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")
    await response.write_eof()
    return response
