"""A real Gemini API server on 127.0.0.1 for tests: `POST /{version}/models/{model}:generateContent`,
`:streamGenerateContent` (`?alt=sse` for Server-Sent Events, else one JSON array, as
Google does), `:batchEmbedContents` and `:countTokens`. It checks the key the way Google does
(`x-goog-api-key` or `?key=`: a missing one is 403 PERMISSION_DENIED, a wrong one 400
INVALID_ARGUMENT with the reason API_KEY_INVALID), refuses what the API refuses (unknown
fields, empty contents, roles other than user/model, parts with no data or two, JSON
Schema keywords the Schema object lacks, lower-case types, thinkingBudget and
thinkingLevel together, an unknown model or API version), answers with the `Reply` a test
set (candidates' parts, finish reasons, usage, a blocked prompt), streams it part by part
with the usage on every event and the finish reason on the last, and can be told to answer
the next calls with a Google error or to break a stream with an error event. Every request
is recorded.

It runs on its own thread and loop, like tests/fakes/veo.py, so the google-genai and
openai SDKs can call it synchronously."""
from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.faults import Faults
from tests.fakes.threaded_server import ThreadedServer

VERSIONS = ("v1", "v1beta", "v1alpha")
CHAT_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview", "gemini-3-flash-preview",
               "gemini-2.0-flash")
EMBEDDING_MODELS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}
REQUEST_FIELDS = {"contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig",
                  "cachedContent"}
GENERATION_FIELDS = {"stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "candidateCount",
                     "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty", "frequencyPenalty",
                     "responseLogprobs", "logprobs", "thinkingConfig", "responseModalities", "mediaResolution"}
THINKING_FIELDS = {"includeThoughts", "thinkingBudget", "thinkingLevel"}
THINKING_LEVELS = {"minimal", "low", "medium", "high"}
DATA_FIELDS = {"text", "inlineData", "functionCall", "functionResponse", "fileData", "executableCode",
               "codeExecutionResult"}
PART_FIELDS = DATA_FIELDS | {"thought", "thoughtSignature", "videoMetadata"}
SCHEMA_FIELDS = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
                 "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
                 "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"}
SCHEMA_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
CALLING_MODES = {"AUTO", "ANY", "NONE", "VALIDATED"}


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    """What the next generate call answers: each candidate's parts, in order."""
    candidates: list[list[dict]] = field(default_factory=lambda: [[{"text": "Hello from the fake Gemini."}]])
    finish: list[str] = field(default_factory=lambda: ["STOP"])
    usage: dict = field(default_factory=lambda: {"promptTokenCount": 11, "candidatesTokenCount": 7,
                                                 "totalTokenCount": 18})
    block_reason: str | None = None      # the prompt is blocked: no candidates, promptFeedback only

    @classmethod
    def text(cls, *texts: str, finish: str = "STOP", **usage: int) -> "Reply":
        return cls([[{"text": t} for t in texts]], [finish], {**cls().usage, **usage} if usage else cls().usage)


@dataclass(frozen=True)
class GoogleFault:
    status: int
    code: str
    message: str
    reason: str | None = None
    retry_delay: str | None = None     # e.g. "7s", sent as a RetryInfo detail

    def body(self) -> dict:
        details = []
        if self.reason:
            details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": self.reason,
                            "domain": "googleapis.com",
                            "metadata": {"service": "generativelanguage.googleapis.com"}})
        if self.retry_delay:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": self.retry_delay})
        error: dict = {"code": self.status, "message": self.message, "status": self.code}
        if details:
            error["details"] = details
        return {"error": error}


class Invalid(Exception):
    pass


def google_error(fault: GoogleFault) -> web.Response:
    return web.json_response(fault.body(), status=fault.status)


class FakeGemini:
    def __init__(self, api_key: str = "AIzaSyFAKE0gemini0key0000000000000000001") -> None:
        self.api_key = api_key
        self.received: list[Received] = []
        self.faults = Faults()  # tests/fakes/faults.py: resets, delays, malformed bodies
        self.port = 0
        self._server = ThreadedServer(self._app, handler_cancellation=True)
        self.reset()

    def reset(self) -> None:
        self.received.clear()
        self.faults.clear()
        self.replies: list[Reply] = []           # answered in turn; the default Reply when none is left
        self.fail_next: list[GoogleFault] = []   # the next calls answer these errors
        self.fail_always: GoogleFault | None = None  # then every call answers this one
        self.stream_error_after: int | None = None  # a stream sends this many events, then an error event

    def start(self) -> "FakeGemini":
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls(self, method: str | None = None) -> list[Received]:
        return [r for r in self.received if method is None or r.path.endswith(":" + method)]

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self.faults.middleware])
        app.router.add_post("/{version}/models/{call}", self._call)
        return app

    # the gate every call passes ----------------------------------------------------------

    async def _call(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw
        self.received.append(Received(request.method, request.path, request.query_string, dict(request.headers), body))
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return google_error(GoogleFault(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers "
                                            "(callers without established identity). Please use API Key or other "
                                            "form of API consumer identity to call this API."))
        if key != self.api_key:
            return google_error(GoogleFault(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                            "API_KEY_INVALID"))
        version, call = request.match_info["version"], request.match_info["call"]
        model, _, method = call.partition(":")
        if version not in VERSIONS or method not in ("generateContent", "streamGenerateContent", "batchEmbedContents",
                                                     "countTokens"):
            return web.Response(status=404, text="<!DOCTYPE html><title>Error 404 (Not Found)!!1</title>",
                                content_type="text/html")
        known = EMBEDDING_MODELS if method == "batchEmbedContents" else CHAT_MODELS
        if model not in known:
            return google_error(GoogleFault(404, "NOT_FOUND", f"models/{model} is not found for API version "
                                            f"{version}, or is not supported for {method}. Call ListModels to see "
                                            "the list of available models and their supported methods."))
        if self.fail_next:
            return google_error(self.fail_next.pop(0))
        if self.fail_always is not None:
            return google_error(self.fail_always)
        if not isinstance(body, dict):
            return google_error(GoogleFault(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
        try:
            if method == "batchEmbedContents":
                return web.json_response(self._embed(model, body))
            if method == "countTokens":
                return web.json_response(_count(model, camel(body)))
            check_generate(camel(body))
        except Invalid as exc:
            return google_error(GoogleFault(400, "INVALID_ARGUMENT", str(exc)))
        reply = self.replies.pop(0) if self.replies else Reply()
        events = _events(reply, model)
        if method == "generateContent":
            return web.json_response(_whole(reply, model))
        if request.query.get("alt") != "sse":
            return web.json_response(events)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n, event in enumerate(events):
            if self.stream_error_after is not None and n == self.stream_error_after:
                error = GoogleFault(500, "INTERNAL", "An internal error has occurred.").body()
                await response.write(b"data: " + orjson.dumps(error) + b"\r\n\r\n")
                break
            await response.write(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
        await response.write_eof()
        return response

    # embeddings ---------------------------------------------------------------------------

    def _embed(self, model: str, body: dict) -> dict:
        unknown(body, {"requests"}, "")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise Invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
        if len(requests) > 100:
            raise Invalid("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
        out = []
        for i, item in enumerate(requests):
            unknown(item, {"model", "content", "taskType", "title", "outputDimensionality"}, f"requests[{i}]")
            if item.get("model") != f"models/{model}":
                raise Invalid(f"* BatchEmbedContentsRequest.requests[{i}].model: the model must match the "
                              "model of the batch")
            parts = (item.get("content") or {}).get("parts")
            if not isinstance(parts, list) or not parts or not all(isinstance(p.get("text"), str) for p in parts):
                raise Invalid(f"* BatchEmbedContentsRequest.requests[{i}].content: contents are not specified")
            size = item.get("outputDimensionality", EMBEDDING_MODELS[model])
            if not isinstance(size, int) or not 1 <= size <= EMBEDDING_MODELS[model]:
                raise Invalid(f"* BatchEmbedContentsRequest.requests[{i}].output_dimensionality: out of range")
            out.append({"values": vector("".join(p["text"] for p in parts), size)})
        return {"embeddings": out}


def _count(model: str, body: dict) -> dict:
    """`:countTokens`: `contents`, or a whole `generateContentRequest` (its system
    instruction and tools counted too), never both."""
    unknown(body, {"contents", "generateContentRequest"}, "")
    if ("contents" in body) == ("generateContentRequest" in body):
        raise Invalid("* CountTokensRequest: exactly one of contents and generate_content_request must be set")
    if "contents" in body:
        counted = {"contents": body["contents"]}
    else:
        counted = dict(body["generateContentRequest"])
        if counted.pop("model", None) != f"models/{model}":
            raise Invalid("* CountTokensRequest.generate_content_request.model: must name the model called")
    check_generate(counted)
    return {"totalTokens": tokens_in(counted),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens_in(counted)}]}


def tokens_in(request: dict) -> int:
    """The fake's token count: 2 per content, one per word of text, 258 per inline image
    (not any tokenizer, so a test can tell it from st-ai's own count)."""
    words = images = 0

    def walk(value: Any) -> None:
        nonlocal words, images
        if isinstance(value, dict):
            if "inlineData" in value:
                images += 1
            for key, item in value.items():
                if key == "text" and isinstance(item, str):
                    words += len(item.split())
                elif key in ("description", "name") and isinstance(item, str):
                    words += len(item.split())
                elif isinstance(item, (dict, list)):
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
    walk(request)
    return 2 * len(request.get("contents") or []) + words + 258 * images


def vector(text: str, size: int) -> list[float]:
    """A unit vector that depends on the text only, as a model's would."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] + 7 * i) % 251) / 125.0 - 1.0 for i in range(size)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


# what Google refuses ------------------------------------------------------------------------

def camel(value: Any) -> Any:
    """`value` with every key in lowerCamelCase: Google's JSON parser takes a field by its
    proto name (`include_thoughts`, as the google-genai SDK sends some) or its JSON name
    (`includeThoughts`) alike. For checking only; what was sent is recorded as it came."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def unknown(value: Any, allowed: set[str], where: str) -> None:
    if not isinstance(value, dict):
        raise Invalid(f"Invalid value at '{where}': an object is expected")
    for name in value:
        if name not in allowed:
            at = f" at '{where}'" if where else ""
            raise Invalid(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')


def check_generate(body: dict) -> None:
    unknown(body, REQUEST_FIELDS, "")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        check_content(content, f"contents[{i}]")
        if content.get("role") not in (None, "user", "model"):
            raise Invalid(f"Please use a valid role: user, model. (contents[{i}].role)")
    if "systemInstruction" in body:
        check_content(body["systemInstruction"], "system_instruction")
    for i, tool in enumerate(body.get("tools") or ()):
        unknown(tool, {"functionDeclarations", "googleSearch", "codeExecution", "urlContext"}, f"tools[{i}]")
        for j, declaration in enumerate(tool.get("functionDeclarations") or ()):
            where = f"tools[{i}].function_declarations[{j}]"
            unknown(declaration, {"name", "description", "parameters", "parametersJsonSchema", "response",
                                  "behavior"}, where)
            if not isinstance(declaration.get("name"), str) or not declaration["name"]:
                raise Invalid(f"* GenerateContentRequest.{where}.name: Name cannot be empty.")
            if "parameters" in declaration:
                check_schema(declaration["parameters"], f"{where}.parameters")
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig")
    if calling is not None:
        unknown(calling, {"mode", "allowedFunctionNames"}, "tool_config.function_calling_config")
        if calling.get("mode") not in CALLING_MODES:
            raise Invalid("Invalid value at 'tool_config.function_calling_config.mode'")
        if calling.get("allowedFunctionNames") and calling["mode"] != "ANY":
            raise Invalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
                          "only allowed when mode is ANY")
    config = body.get("generationConfig") or {}
    unknown(config, GENERATION_FIELDS, "generation_config")
    if "responseSchema" in config:
        check_schema(config["responseSchema"], "generation_config.response_schema")
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        unknown(thinking, THINKING_FIELDS, "generation_config.thinking_config")
        if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
            raise Invalid("You can only set only one of thinking budget and thinking level.")
        if "thinkingLevel" in thinking and thinking["thinkingLevel"] not in THINKING_LEVELS:
            raise Invalid("Invalid value at 'generation_config.thinking_config.thinking_level'")


def check_content(content: Any, where: str) -> None:
    unknown(content, {"role", "parts"}, where)
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise Invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
    for j, part in enumerate(parts):
        unknown(part, PART_FIELDS, f"{where}.parts[{j}]")
        data = [name for name in part if name in DATA_FIELDS]
        if len(data) != 1:
            raise Invalid(f"* GenerateContentRequest.{where}.parts[{j}].data: required oneof field 'data' must "
                          "have one initialized field")
        if "inlineData" in part:
            inline = part["inlineData"]
            unknown(inline, {"mimeType", "data"}, f"{where}.parts[{j}].inline_data")
            try:
                base64.b64decode(inline.get("data") or "", validate=True)
            except (binascii.Error, ValueError):
                raise Invalid(f"Invalid value at '{where}.parts[{j}].inline_data.data' (TYPE_BYTES)") from None
        if "functionCall" in part:
            unknown(part["functionCall"], {"name", "args", "id"}, f"{where}.parts[{j}].function_call")
        if "functionResponse" in part:
            unknown(part["functionResponse"], {"name", "response", "id"}, f"{where}.parts[{j}].function_response")
            if not isinstance(part["functionResponse"].get("response"), dict):
                raise Invalid(f"Invalid value at '{where}.parts[{j}].function_response.response' (Struct)")


def check_schema(schema: Any, where: str) -> None:
    unknown(schema, SCHEMA_FIELDS, where)
    if "type" in schema and schema["type"] not in SCHEMA_TYPES:
        raise Invalid(f"Invalid value at '{where}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta."
                      f"Type), \"{schema['type']}\"")
    if schema.get("type") == "OBJECT" and "properties" in schema and not schema["properties"]:
        raise Invalid(f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type")
    if "enum" in schema and (schema.get("type") != "STRING" or not all(isinstance(v, str) for v in schema["enum"])):
        raise Invalid(f"* GenerateContentRequest.{where}.enum: only allowed for STRING type")
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{where}.properties[{name}].value")
    if "items" in schema:
        check_schema(schema["items"], f"{where}.items")
    for k, sub in enumerate(schema.get("anyOf") or ()):
        check_schema(sub, f"{where}.any_of[{k}]")


# answers --------------------------------------------------------------------------------------

def _candidate(parts: list[dict], index: int, finish: str | None) -> dict:
    candidate: dict = {"content": {"role": "model", "parts": parts}, "index": index} if parts else {"index": index}
    if finish is not None:
        candidate["finishReason"] = finish
    return candidate


def _whole(reply: Reply, model: str) -> dict:
    answer: dict = {"usageMetadata": reply.usage, "modelVersion": model, "responseId": "fake-response-1"}
    if reply.block_reason:
        answer["promptFeedback"] = {"blockReason": reply.block_reason}
        return answer
    answer["candidates"] = [_candidate(parts, i, reply.finish[i]) for i, parts in enumerate(reply.candidates)]
    return answer


def _events(reply: Reply, model: str) -> list[dict]:
    """Each part in an event of its own; the usage so far on every event, the full usage and
    the finish reasons on the last one."""
    base = {"modelVersion": model, "responseId": "fake-response-1"}
    prompt_only = {"promptTokenCount": reply.usage.get("promptTokenCount", 0),
                   "totalTokenCount": reply.usage.get("promptTokenCount", 0)}
    if reply.block_reason:
        return [{"promptFeedback": {"blockReason": reply.block_reason}, "usageMetadata": prompt_only, **base}]
    length = max((len(parts) for parts in reply.candidates), default=0)
    events = []
    for k in range(max(length, 1)):
        last = k == max(length, 1) - 1
        candidates = [_candidate(parts[k:k + 1], i, reply.finish[i] if last else None)
                      for i, parts in enumerate(reply.candidates) if k < len(parts) or last]
        events.append({"candidates": candidates, "usageMetadata": reply.usage if last else prompt_only, **base})
    return events
