"""A real Azure OpenAI resource on 127.0.0.1 for tests, speaking its public data-plane API:

- deployment URLs `/openai/deployments/{deployment}/chat/completions|images/generations|
  embeddings?api-version=V` (the version required and checked: missing is a 404, one the
  resource does not know a 400 "API version not supported"), and the v1 API
  `/openai/v1/...` (no dated version; the deployment named by the body's `model`);
- the `api-key` header (the v1 API also takes the key as a bearer token, as OpenAI's own
  client sends it); Azure's 401, 404 DeploymentNotFound and 400 OperationNotSupported;
- answers as Azure gives them: OpenAI's shapes plus `prompt_filter_results` and
  `content_filter_results`, the underlying model's name in `model`, streams that open
  with a chunk of prompt filter results only, usage with cached tokens;
- Azure's content filter: a prompt containing FILTERED_PROMPT is refused with a 400
  `content_filter` and its `innererror`; an answer that would contain FILTERED_ANSWER
  stops with finish_reason "content_filter".

What it answers follows from the request, like a model would: an echo of the user's
words; with tools, a call of each tool (parallel unless `parallel_tool_calls` is false);
after tool results, an answer quoting them; for images in the prompt, how many it saw;
cut at `max_tokens` with finish_reason "length". Every request is recorded whole.
Faults: tests/fakes/faults.py, keyed by path."""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.faults import Fault, Faults
from tests.fakes.openai_upstream import sample_png_bytes
from tests.fakes.threaded_server import ThreadedServer

API_VERSIONS = frozenset({"2024-02-01", "2024-06-01", "2024-10-21", "2024-12-01-preview", "2025-01-01-preview",
                          "2025-03-01-preview", "2025-04-01-preview"})
DEPLOYMENTS = {  # deployment name -> the model deployed
    "gpt4o-prod": "gpt-4o-2024-11-20",
    "gpt4o-mini": "gpt-4o-mini-2024-07-18",
    "o4-mini": "o4-mini-2025-04-16",
    "dalle3": "dall-e-3",
    "embed-small": "text-embedding-3-small",
    "embed-ada": "text-embedding-ada-002",
}
FILTERED_PROMPT = "forbidden-topic"
FILTERED_ANSWER = "forbidden-output"
REASONING_SINCE = "2024-12-01"  # reasoning models take dated api-versions from this one on
REASONING_TOKENS = {"minimal": 0, "low": 64, "medium": 192, "high": 512}
CACHE_MINIMUM, CACHE_STEP = 1024, 128  # OpenAI's prompt caching: from 1024 tokens, in steps of 128
DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
SAFE = {"filtered": False, "severity": "safe"}
CATEGORIES = ("hate", "self_harm", "sexual", "violence")


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def azure_error(status: int, code: str, message: str, **extra: Any) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def rate_limited(retry_ms: int = 6500) -> Fault:
    """Azure's 429 for a deployment past its tokens-per-minute quota."""
    seconds = -(-retry_ms // 1000)
    body = azure_error(429, "429", "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
                       f"2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please "
                       f"retry after {seconds} seconds.")
    return Fault("status", 429, orjson.dumps(body), {"retry-after": str(seconds), "retry-after-ms": str(retry_ms)})


def unavailable(status: int = 503) -> Fault:
    body = azure_error(status, "ServiceUnavailable" if status == 503 else "InternalServerError",
                       "The service is temporarily unable to process your request. Please try again later.")
    return Fault("status", status, orjson.dumps(body))


def filter_results(filtered: str | None = None) -> dict:
    return {name: ({"filtered": True, "severity": "high"} if name == filtered else SAFE) for name in CATEGORIES}


def _prompt_filter_results() -> list[dict]:
    return [{"prompt_index": 0, "content_filter_results": filter_results() | {
        "jailbreak": {"filtered": False, "detected": False}}}]


@dataclass
class Reply:
    """What the fake model answers to one request."""
    content: str | None = None
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def completion_tokens(self) -> int:
        words = len(self.content.split()) if self.content else 0
        return self.reasoning_tokens + words + sum(1 + len(c["function"]["arguments"]) // 4 for c in self.tool_calls)


class FakeAzureOpenAI:
    def __init__(self, api_key: str = "azure-key-0123456789abcdef") -> None:
        self.api_key = api_key
        self.received: list[Received] = []
        self.faults = Faults()
        self.files: dict[str, bytes] = {}
        self.connection_closed = threading.Event()
        self._prefixes: set[str] = set()  # prompts seen, for cached tokens
        self.port = 0
        self._server = ThreadedServer(self._app, handler_cancellation=True)

    def start(self) -> "FakeAzureOpenAI":
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def endpoint(self) -> str:
        """The resource endpoint, as an operator gives it to st-ai and to AzureOpenAI."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """An azure channel's base URL: the resource endpoint."""
        return self.endpoint

    @staticmethod
    def deployment_path(deployment: str, operation: str) -> str:
        return f"/openai/deployments/{deployment}/{operation}"

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self.faults.middleware], client_max_size=64 * 1024 * 1024)
        for operation, handler in (("chat/completions", self._chat), ("images/generations", self._images),
                                   ("embeddings", self._embeddings)):
            app.router.add_post(f"/openai/deployments/{{deployment}}/{operation}", handler)
            app.router.add_post(f"/openai/v1/{operation}", handler)
        app.router.add_get("/private/images/{name}", self._file)
        return app

    # -- what every call goes through ----------------------------------------------------

    async def _admit(self, request: web.Request, operation: str) -> tuple[dict, str, web.Response | None]:
        """(body, deployed model, refusal): recorded, authenticated, versioned, routed."""
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.received.append(Received(request.method, request.path, dict(request.query), dict(request.headers),
                                      body))
        v1 = request.path.startswith("/openai/v1/")
        version = request.query.get("api-version")
        if v1 and version is not None:
            return {}, "", web.json_response(azure_error(400, "BadRequest", "API version not supported"), status=400)
        if not v1 and version is None:
            return {}, "", web.json_response(azure_error(404, "404", "Resource not found"), status=404)
        if not v1 and version not in API_VERSIONS:
            return {}, "", web.json_response(azure_error(400, "BadRequest", "API version not supported"), status=400)
        keys = {request.headers.get("api-key")}
        if v1 and request.headers.get("Authorization", "").startswith("Bearer "):
            keys.add(request.headers["Authorization"][7:])
        if self.api_key not in keys:
            return {}, "", web.json_response(azure_error(
                401, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                "provide a valid key for an active subscription and use a correct regional API endpoint for your "
                "resource."), status=401)
        if not isinstance(body, dict):
            return {}, "", web.json_response(azure_error(400, "BadRequest", "The request body is not valid JSON."),
                                             status=400)
        deployment = body.get("model") if v1 else request.match_info["deployment"]
        model = DEPLOYMENTS.get(deployment) if isinstance(deployment, str) else None
        if model is None:
            return {}, "", web.json_response(azure_error(
                404, "DeploymentNotFound", "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again."), status=404)
        kind = "embedding" if "embedding" in model else "image" if "dall-e" in model else "chat"
        wanted = {"chat/completions": "chat", "images/generations": "image", "embeddings": "embedding"}[operation]
        if kind != wanted:
            name = {"chat": "chatCompletion", "image": "imagesGeneration", "embedding": "embeddings"}[wanted]
            return {}, "", web.json_response(azure_error(
                400, "OperationNotSupported", f"The {name} operation does not work with the specified model, "
                f"{model}. Please choose different model and try again."), status=400)
        return body, model, None

    # -- chat --------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, model, refused = await self._admit(request, "chat/completions")
        if refused is not None:
            return refused
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return web.json_response(azure_error(400, "BadRequest", "'messages' is a required property",
                                                 param="messages", type="invalid_request_error"), status=400)
        invalid = _invalid_images(messages)
        if invalid:
            return web.json_response({"error": {"message": invalid, "type": "invalid_request_error",
                                                 "param": None, "code": "BadRequest"}}, status=400)
        if FILTERED_PROMPT in _texts(messages):
            return web.json_response({"error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                           "management policy. Please modify your prompt and retry. To learn more about our content "
                           "filtering policies please read our documentation: "
                           "https://go.microsoft.com/fwlink/?linkid=2198766",
                "type": None, "param": "prompt", "code": "content_filter", "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation",
                               "content_filter_result": filter_results("violence") | {
                                   "jailbreak": {"filtered": False, "detected": False}}}}}, status=400)
        refused = _reasoning_refusal(request, body, model)
        if refused is not None:
            return refused
        reply = self._reply(body)
        if _reasons(model):
            reply.reasoning_tokens = REASONING_TOKENS.get(body.get("reasoning_effort"), REASONING_TOKENS["medium"])
        if body.get("stream"):
            return await self._stream(request, body, model, reply)
        message: dict = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        return web.json_response({
            "id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_azure01",
            "prompt_filter_results": _prompt_filter_results(),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason,
                         "content_filter_results": filter_results(
                             "violence" if reply.finish_reason == "content_filter" else None)}],
            "usage": _usage(reply)})

    def _reply(self, body: dict) -> Reply:
        messages = body["messages"]
        prompt = _prompt_tokens(body)
        reply = Reply(prompt_tokens=prompt, cached_tokens=self._cached(body))
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
        if last.get("role") == "tool":
            results = [_text(m.get("content")) for m in reversed(messages) if isinstance(m, dict)
                       and m.get("role") == "tool"]
            reply.content = "Tool results: " + "; ".join(reversed(results))
        elif tools and body.get("tool_choice") != "none":
            named = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else None
            if named is not None:
                tools = [t for t in tools if t["function"]["name"] == (named.get("function") or {}).get("name")]
            chosen = tools if body.get("parallel_tool_calls") is not False else tools[:1]
            reply.tool_calls = [{"id": f"call_{secrets.token_hex(12)}", "type": "function", "function": {
                "name": t["function"]["name"],
                "arguments": orjson.dumps(_example(t["function"].get("parameters") or {})).decode()}}
                for t in chosen]
            reply.finish_reason = "tool_calls"
        else:
            images = sum(1 for part in _parts(last.get("content")) if part.get("type") == "image_url")
            words = _text(last.get("content"))
            reply.content = f"I see {images} image{'s' if images != 1 else ''}. {words}" if images else \
                f"Echo: {words}"
        if reply.content and FILTERED_ANSWER in reply.content:
            reply.content = reply.content[:reply.content.index(FILTERED_ANSWER)].rstrip()
            reply.finish_reason = "content_filter"
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if reply.content and isinstance(limit, int) and len(reply.content.split()) > limit:
            reply.content = " ".join(reply.content.split()[:limit])
            reply.finish_reason = "length"
        return reply

    def _cached(self, body: dict) -> int:
        """Tokens of the prompt's beginning (all but its last message) seen before."""
        prefix = orjson.dumps([body["messages"][:-1], body.get("tools")]).decode()
        tokens = _prompt_tokens({"messages": body["messages"][:-1], "tools": body.get("tools")})
        seen = prefix in self._prefixes
        self._prefixes.add(prefix)
        return tokens // CACHE_STEP * CACHE_STEP if seen and tokens >= CACHE_MINIMUM else 0

    async def _stream(self, request: web.Request, body: dict, model: str, reply: Reply) -> web.StreamResponse:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, "system_fingerprint": "fp_azure01"}

        def choice(delta: dict, finish: str | None = None, filtered: dict | None = None) -> dict:
            return base | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish,
                                        "content_filter_results": filtered if filtered is not None else {}}]}

        chunks = [{"choices": [], "created": 0, "id": "", "model": "", "object": "",
                   "prompt_filter_results": _prompt_filter_results()},
                  choice({"role": "assistant", "content": "", "refusal": None})]
        for index, call in enumerate(reply.tool_calls):
            chunks.append(choice({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                                  "function": {"name": call["function"]["name"], "arguments": ""}}]}))
            arguments = call["function"]["arguments"]
            for at in range(0, len(arguments), 7):
                chunks.append(choice({"tool_calls": [{"index": index,
                                                      "function": {"arguments": arguments[at:at + 7]}}]}))
        for at, word in enumerate((reply.content or "").split(" ") if reply.content else ()):
            chunks.append(choice({"content": word if at == 0 else " " + word}, filtered=filter_results()))
        filtered = reply.finish_reason == "content_filter"
        chunks.append(choice({}, reply.finish_reason, filter_results("violence") if filtered else {}))
        if include_usage:
            chunks.append(base | {"choices": [], "usage": _usage(reply)})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            for chunk in chunks:
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:
            self.connection_closed.set()
            raise
        return response

    # -- images ------------------------------------------------------------------------

    async def _images(self, request: web.Request) -> web.Response:
        body, model, refused = await self._admit(request, "images/generations")
        if refused is not None:
            return refused
        prompt, n, fmt = body.get("prompt"), body.get("n", 1), body.get("response_format", "url")
        if not isinstance(prompt, str) or not prompt:
            return web.json_response(azure_error(400, "invalid_request_error", "'prompt' is a required property"),
                                     status=400)
        if n != 1:
            return web.json_response(azure_error(400, "invalid_value", "dall-e-3 supports only n=1.", param="n"),
                                     status=400)
        if fmt not in ("url", "b64_json"):
            return web.json_response(azure_error(400, "invalid_value", f"'{fmt}' is not one of ['url', 'b64_json'] "
                                                 "- 'response_format'", param="response_format"), status=400)
        if FILTERED_PROMPT in prompt:
            return web.json_response({"error": {
                "code": "content_policy_violation", "message": "Your request was rejected as a result of our "
                "safety system. Your prompt may contain text that is not allowed by our safety system.",
                "inner_error": {"code": "ResponsibleAIPolicyViolation",
                                "content_filter_results": filter_results("violence"),
                                "revised_prompt": None}}}, status=400)
        png = sample_png_bytes()
        image: dict = {"revised_prompt": f"A picture of {prompt}", "content_filter_results": filter_results(),
                       "prompt_filter_results": filter_results() | {"jailbreak": {"filtered": False,
                                                                                  "detected": False}}}
        if fmt == "b64_json":
            image["b64_json"] = base64.b64encode(png).decode()
        else:
            name = f"{secrets.token_hex(16)}.png"
            self.files[name] = png
            image["url"] = (f"http://127.0.0.1:{self.port}/private/images/{name}"
                            f"?se=2026-12-01T00%3A00%3A00Z&sig={secrets.token_hex(16)}")
        return web.json_response({"created": int(time.time()), "data": [image]})

    async def _file(self, request: web.Request) -> web.Response:
        png = self.files.get(request.match_info["name"])
        if png is None or "sig" not in request.query:
            return web.Response(status=404, text="BlobNotFound")
        return web.Response(body=png, content_type="image/png")

    # -- embeddings ----------------------------------------------------------------------

    async def _embeddings(self, request: web.Request) -> web.Response:
        body, model, refused = await self._admit(request, "embeddings")
        if refused is not None:
            return refused
        inputs = body.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and all(isinstance(t, int) for t in inputs)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or any(not x for x in inputs) or not all(
                isinstance(x, str) or (isinstance(x, list) and all(isinstance(t, int) for t in x)) for x in inputs):
            return web.json_response(azure_error(400, "invalid_request_error", "'input' is invalid: give a "
                                                 "non-empty string, or an array of them or of token arrays.",
                                                 param="input"), status=400)
        dimensions = body.get("dimensions")
        if dimensions is not None and model == "text-embedding-ada-002":
            return web.json_response(azure_error(400, "invalid_request_error", "This model does not support "
                                                 "specifying dimensions.", param="dimensions"), status=400)
        size = dimensions if isinstance(dimensions, int) and dimensions > 0 else DIMENSIONS[model]
        data, tokens = [], 0
        for index, item in enumerate(inputs):
            vector = _vector(item, size)
            tokens += len(item) if isinstance(item, list) else len(item.split())
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return web.json_response({"object": "list", "model": model, "data": data,
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


# -- the fake model's arithmetic ------------------------------------------------------------

def _parts(content: Any) -> list[dict]:
    return [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in _parts(content) if p.get("type") == "text")


def _texts(messages: list) -> str:
    return " ".join(_text(m.get("content")) for m in messages if isinstance(m, dict))


def _prompt_tokens(body: dict) -> int:
    tokens = 3
    for message in body["messages"]:
        if isinstance(message, dict):
            tokens += 4 + len(_text(message.get("content")).split())
            tokens += 85 * sum(1 for p in _parts(message.get("content")) if p.get("type") == "image_url")
    for tool in body.get("tools") or ():
        tokens += len(orjson.dumps(tool)) // 4
    return tokens


def _usage(reply: Reply) -> dict:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def _reasons(model: str) -> bool:
    return model.startswith(("o1", "o3", "o4"))


def _reasoning_refusal(request: web.Request, body: dict, model: str) -> web.Response | None:
    """What Azure refuses of a reasoning model: an api-version older than the model, and
    the sampling parameters it does not take."""
    if not _reasons(model):
        return None
    version = request.query.get("api-version")
    if version is not None and version[:10] < REASONING_SINCE:
        return web.json_response(azure_error(400, "BadRequest", "Model {modelName} is enabled only for api versions "
                                             "2024-12-01-preview and later"), status=400)
    if "max_tokens" in body:
        return web.json_response({"error": {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                       "'max_completion_tokens' instead.", "type": "invalid_request_error", "param": "max_tokens",
            "code": "unsupported_parameter"}}, status=400)
    if body.get("temperature", 1) != 1:
        return web.json_response({"error": {
            "message": f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. "
                       "Only the default (1) value is supported.",
            "type": "invalid_request_error", "param": "temperature",
            "code": "unsupported_value"}}, status=400)
    return None


DATA_URL = re.compile(r"data:image/(png|jpeg|gif|webp);base64,(.+)", re.S)


def _invalid_images(messages: list) -> str | None:
    """Azure checks each image it is given: a URL it can fetch, or a base64 data URL."""
    for message in messages:
        for part in _parts(message.get("content") if isinstance(message, dict) else None):
            if part.get("type") != "image_url":
                continue
            url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
            if not isinstance(url, str):
                return "Invalid image: image_url.url is required."
            if url.startswith("data:"):
                match = DATA_URL.fullmatch(url)
                try:
                    if match is None or not base64.b64decode(match.group(2), validate=True):
                        raise ValueError
                except (binascii.Error, ValueError):
                    return "Invalid image data."
            elif not url.startswith("https://"):
                return "Invalid image URL: only https URLs and base64 data URLs are taken."
    return None


def _example(schema: dict) -> Any:
    """A value that fits a JSON Schema: what the fake model calls a tool with."""
    kind = schema.get("type")
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _example(sub) for name, sub in properties.items()
                if name in (schema.get("required") or properties)}
    if kind == "array":
        return [_example(schema.get("items") or {"type": "string"})]
    return {"integer": 1, "number": 1.5, "boolean": True}.get(kind, "example")


def _vector(item: str | list[int], size: int) -> list[float]:
    """The same unit-length vector for the same input, every time."""
    seed = hashlib.sha256(orjson.dumps(item)).digest()
    raw = [((seed[i % 32] + i * 31) % 251) / 125.0 - 1.0 for i in range(size)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return [struct.unpack("<f", struct.pack("<f", x / norm))[0] for x in raw]
