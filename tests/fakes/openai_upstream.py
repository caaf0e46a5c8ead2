"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: it speaks the public
API's shapes (paths, bearer auth, JSON and SSE bodies, error objects), records every
request it receives, and can be told to pause mid-stream or fail.

Besides chat it serves OpenAI's Responses API (`POST /v1/responses`, plain and streamed,
tests/fakes/openai_responses.py; `responses_api=False` makes a server without it, a 404), the Embeddings API (`POST /v1/embeddings`: float or base64
vectors, `dimensions`, usage counted with cl100k as OpenAI counts), the Images API
(`POST /v1/images/generations`, with the URLs it hands out served at its own
`/files/...`) and the asynchronous Videos API (create as
JSON or multipart, retrieve, list, content, delete, remix); `VideoPlan` says how a
video's retrievals walk queued -> in_progress -> completed or fail.

It runs on its own thread and loop, so synchronous tests (and the openai SDK) can use
it as they would a remote service.
"""
from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import math
import re
import secrets
import struct
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import web

from tests.fakes import openai_responses
from tests.fakes.faults import Faults
from tests.fakes.threaded_server import ThreadedServer


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


@dataclass
class VideoPlan:
    """How a video created while this plan is set behaves when retrieved (each video keeps
    a copy). Retrieval k (1-based) answers queued at k == 1 (when there are 3 or more
    steps), in_progress with rising progress before `polls_to_finish`, completed from
    then on; or, with `seconds_to_finish`, by the time since creation instead."""
    polls_to_finish: int = 3
    seconds_to_finish: float | None = None
    fail_at_poll: int | None = None             # from this retrieval on: failed with `failure`
    failure: tuple[str, str] = ("internal_error", "Video generation failed.")
    never_finish: bool = False                  # stays in_progress forever
    rate_limited_polls: int = 0                 # the first N retrievals answer 429

    @classmethod
    def moderated(cls, at_poll: int = 2) -> "VideoPlan":
        return cls(fail_at_poll=at_poll, failure=(
            "moderation_blocked", "Your request was blocked by our moderation system."))


@dataclass
class FakeVideo:
    object: dict                                # the Video object as retrieved
    plan: VideoPlan
    created: float = field(default_factory=time.monotonic)
    polls: int = 0
    rate_limited: int = 0


VIDEO_SECONDS = ("4", "8", "12")
VIDEO_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
SORA_2_SIZES = ("720x1280", "1280x720")       # sora-2 (not pro) renders 720p only
# A real 1x1 lossless WebP: OpenAI's thumbnails are WebP.
THUMBNAIL_WEBP = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")


# The embedding models and their native dimensions.
EMBEDDING_MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def _embedding_inputs(given: Any) -> list | None:
    """The inputs as OpenAI reads them (a text, texts, token ids, arrays of token ids), or
    None for what it refuses: empty input, an empty string, more than 2048 items."""
    def is_id(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if isinstance(given, str):
        return [given] if given else None
    if not isinstance(given, list) or not given or len(given) > 2048:
        return None
    if all(is_id(v) for v in given):
        return [given]
    if all(isinstance(v, str) and v for v in given):
        return given
    if all(isinstance(v, list) and v and all(is_id(i) for i in v) for v in given):
        return given
    return None


def fake_embedding(item: str | list[int], dimensions: int) -> list[float]:
    """A unit vector drawn from the input, as float32 values (what OpenAI's float answers
    hold); a shortened one is normalised again, as text-embedding-3's are."""
    seed = hashlib.sha256(item.encode() if isinstance(item, str) else repr(item).encode()).digest()
    raw = [((seed[i % 32] ^ (i * 131 % 256)) - 127.5) / 128 for i in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return array.array("f", [v / norm for v in raw]).tolist()


def embedding_base64(vector: list[float]) -> str:
    packed = array.array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def embedding_tokens(inputs: list) -> int:
    import toktok  # OpenAI's embedding models count with cl100k_base

    texts = [i for i in inputs if isinstance(i, str)]
    counted = sum(toktok.batch_count(texts, "cl100k_base", threads=1)) if texts else 0
    return counted + sum(len(i) for i in inputs if isinstance(i, list))


def _error(status: int, message: str, param: str | None = None, code: str | None = None,
           type: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": type, "param": param, "code": code}},
                             status=status)


def _tiny_png(width: int, height: int) -> bytes:
    """A valid grey PNG, for when the shared sample media cannot be made."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def sample_png_bytes(width: int = 64, height: int = 64) -> bytes:
    try:
        from tests.fakes.sample_media import sample_png
        return sample_png("fake openai image", width, height)
    except ImportError:  # the simulator's media module is optional here
        return _tiny_png(width, height)


def sample_mp4_bytes() -> bytes:
    try:
        from tests.fakes.sample_media import sample_mp4
        return sample_mp4("fake openai video")
    except ImportError:
        return b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2000


class FakeOpenAI:
    def __init__(self, api_key: str = "sk-upstream-secret", responses_api: bool = True) -> None:
        self.api_key = api_key
        # serves OpenAI's Responses API (tests/fakes/openai_responses.py); without it, a 404 as
        # from a compatible server that has only chat
        self.responses_api = responses_api
        self.response_output: list[dict] | None = None  # the Responses API's output items; default from the request
        self.responses_error_after: int | None = None  # a Responses stream sends this many events, then `error`
        self.received: list[Received] = []
        self.completion: dict | None = None  # the non-streamed answer; default built from request
        self.stream_plan: StreamPlan | None = None
        self.fail_with: tuple[int, dict | bytes] | None = None  # (status, body) for every request
        self.delay: float = 0.0
        # images: answer a moderation refusal (400 moderation_blocked) instead
        self.block_images: bool = False
        self.files: dict[str, tuple[bytes, str]] = {}  # what /files/{name} serves: (bytes, type)
        # videos
        self.video_plan = VideoPlan()
        self.videos: dict[str, FakeVideo] = {}
        self.video_content: bytes | None = None  # the MP4 served; default: sample media
        # embeddings: False answers without `usage`, as some OpenAI-compatible servers do
        self.embeddings_usage: bool = True
        self.connection_closed = threading.Event()  # a stream's client went away mid-answer
        self.faults = Faults()  # tests/fakes/faults.py: what goes wrong, per path
        self.port = 0
        self._server = ThreadedServer(self._app, handler_cancellation=True)

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> "FakeOpenAI":
        self.port = self._server.start()
        return self

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self.faults.middleware])
        app.router.add_post("/v1/chat/completions", self._chat)
        if self.responses_api:
            app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_post("/v1/videos", self._create_video)
        app.router.add_get("/v1/videos", self._list_videos)
        app.router.add_get("/v1/videos/{video_id}", self._retrieve_video)
        app.router.add_delete("/v1/videos/{video_id}", self._delete_video)
        app.router.add_get("/v1/videos/{video_id}/content", self._video_content)
        app.router.add_post("/v1/videos/{video_id}/remix", self._remix_video)
        return app

    def stop(self) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def video_received(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/v1/videos")]

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
        if body.get("model") in EMBEDDING_MODELS:
            return _error(404, "This is not a chat model and thus not supported in the v1/chat/completions "
                          "endpoint. Did you mean to use v1/completions?", "model")
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

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body, bad = await self._json_body(request)
        if bad is not None or (refused := self._refuse(request, body)) is not None:
            return bad or refused
        if (wrong := openai_responses.refusal(body)) is not None:
            status, message, param, code = wrong
            return _error(status, message, param, code)
        items = self.response_output or openai_responses.output(body)
        finished = openai_responses.response(body, items)
        if not body.get("stream"):
            return web.json_response(finished)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        for i, event in enumerate(openai_responses.events(finished)):
            if i == self.responses_error_after:  # OpenAI's in-band failure, which ends the stream
                event = {"type": "error", "code": "server_error", "param": None, "sequence_number": i,
                         "message": "The server had an error while processing your request."}
            await response.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")
            if event["type"] == "error":
                break
        await response.write_eof()
        return response

    async def _models(self, request: web.Request) -> web.Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        return web.json_response({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1686935002, "owned_by": "openai"}]})

    # Embeddings API -----------------------------------------------------------------------

    async def _embeddings(self, request: web.Request) -> web.Response:
        body, bad = await self._json_body(request)
        if (refused := self._refuse(request, body)) is not None:
            return refused
        if bad is not None or not isinstance(body, dict):
            return bad or _error(400, "The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "you must provide a model parameter")
        if model not in EMBEDDING_MODELS:
            return _error(404, f"The model `{model}` does not exist or you do not have access to it.", None,
                          "model_not_found")
        inputs = _embedding_inputs(body.get("input"))
        if inputs is None:
            return _error(400, "'$.input' is invalid. Please check the API reference: "
                          "https://platform.openai.com/docs/api-reference.")
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            return _error(400, f"Invalid value for 'encoding_format': '{fmt}'. Supported values are: "
                          "'float' and 'base64'.", "encoding_format", "invalid_value")
        native = EMBEDDING_MODELS[model]
        dimensions = body.get("dimensions", native)
        if "dimensions" in body and model == "text-embedding-ada-002":
            return _error(400, "This model does not support specifying dimensions.")
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= native:
            return _error(400, f"Invalid value for 'dimensions' = {dimensions}. Must be between 1 and {native}.",
                          "dimensions", "invalid_value")
        data = []
        for index, item in enumerate(inputs):
            vector = fake_embedding(item, dimensions)
            data.append({"object": "embedding", "index": index,
                         "embedding": embedding_base64(vector) if fmt == "base64" else vector})
        answer: dict = {"object": "list", "data": data, "model": model}
        if self.embeddings_usage:
            tokens = embedding_tokens(inputs)
            answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response(answer)

    # Images API ---------------------------------------------------------------------------

    def _refuse(self, request: web.Request, body: Any) -> web.Response | None:
        """What every API call goes through: recorded, authenticated, `fail_with`."""
        self.received.append(Received(request.method, request.path, dict(request.headers), body))
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if self.fail_with is not None:
            status, payload = self.fail_with
            data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            return web.Response(status=status, body=data, content_type="application/json")
        return None

    async def _json_body(self, request: web.Request) -> tuple[Any, web.Response | None]:
        try:
            return orjson.loads(await request.read()), None
        except orjson.JSONDecodeError:
            return None, _error(400, "We could not parse the JSON body of your request.")

    async def _images(self, request: web.Request) -> web.Response:
        body, bad = await self._json_body(request)
        if (refused := self._refuse(request, body)) is not None:
            return refused
        if bad is not None or not isinstance(body, dict):
            return bad or _error(400, "The request body must be a JSON object.")
        prompt, n, model = body.get("prompt"), body.get("n", 1), body.get("model") or "dall-e-2"
        fmt = body.get("response_format")
        if not isinstance(prompt, str) or not prompt:
            return _error(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
        if not isinstance(n, int) or isinstance(n, bool):
            return _error(400, f"Invalid type for 'n': expected an integer, but got {type(n).__name__} instead.",
                          "n", "invalid_type")
        if n < 1:
            return _error(400, "Invalid 'n': integer below minimum value. "
                          f"Expected a value >= 1, but got {n} instead.", "n", "integer_below_min_value")
        if n > 10 or (model == "dall-e-3" and n > 1):
            limit = 1 if model == "dall-e-3" else 10
            return _error(400, "Invalid 'n': integer above maximum value. "
                          f"Expected a value <= {limit}, but got {n} instead.", "n", "integer_above_max_value")
        gpt_image = model.startswith("gpt-image")
        if fmt is not None and gpt_image:  # gpt-image models always answer base64
            return _error(400, "Unknown parameter: 'response_format'.", "response_format", "unknown_parameter")
        if fmt not in (None, "url", "b64_json"):
            return _error(400, f"Invalid value: '{fmt}'. Supported values are: 'url' and 'b64_json'.",
                          "response_format", "invalid_value")
        if self.block_images:
            return web.json_response({"error": {
                "message": "Your request was rejected as a result of our safety system.",
                "type": "image_generation_user_error", "param": None, "code": "moderation_blocked"}}, status=400)
        png = sample_png_bytes()
        data = []
        for _ in range(n):
            if gpt_image or fmt == "b64_json":
                data.append({"b64_json": base64.b64encode(png).decode("ascii")})
            else:
                name = f"img-{secrets.token_hex(12)}.png"
                self.files[name] = (png, "image/png")
                data.append({"url": f"http://127.0.0.1:{self.port}/files/{name}"})
            if model == "dall-e-3":
                data[-1]["revised_prompt"] = f"A picture of {prompt}"
        answer: dict = {"created": int(time.time()), "data": data}
        if gpt_image:
            answer |= {"background": "opaque", "output_format": "png", "quality": "high", "size": "1024x1024",
                       "usage": {"input_tokens": 50, "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
                                 "output_tokens": 4160 * n, "total_tokens": 50 + 4160 * n}}
        return web.json_response(answer)

    async def _file(self, request: web.Request) -> web.Response:
        # Like OpenAI's signed blob URLs: no API key needed.
        found = self.files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404, text="BlobNotFound")
        return web.Response(body=found[0], content_type=found[1])

    # Videos API ---------------------------------------------------------------------------

    async def _video_form(self, request: web.Request) -> tuple[dict, web.Response | None]:
        """The create body as clients send it: JSON (the spec's JSON body, older SDKs), or
        multipart as the current SDK always does: text fields, lists as `key[]`, and
        `input_reference` as a file part (recorded as {filename, content_type, data})."""
        if not request.content_type.startswith("multipart/"):
            body, bad = await self._json_body(request)
            if bad is None and not isinstance(body, dict):
                bad = _error(400, "The request body must be a JSON object.")
            return (body if isinstance(body, dict) else {}), bad
        form: dict = {}
        async for part in await request.multipart():
            if part.filename is not None:
                form[part.name] = {"filename": part.filename,
                                   "content_type": part.headers.get("Content-Type", ""),
                                   "data": bytes(await part.read())}
            elif part.name.endswith("[]"):
                form.setdefault(part.name[:-2], []).append(await part.text())
            else:
                form[part.name] = await part.text()
        return form, None

    def _check_video(self, body: dict) -> web.Response | None:
        prompt, model = body.get("prompt"), body.get("model", "sora-2")
        if not isinstance(prompt, str) or not prompt:
            return _error(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
        if not isinstance(model, str) or not model.startswith("sora-"):
            return _error(400, f"Invalid value: '{model}'. Supported values are: 'sora-2' and 'sora-2-pro'.",
                          "model", "invalid_value")
        for key, allowed in (("seconds", VIDEO_SECONDS), ("size", VIDEO_SIZES)):
            value = body.get(key, allowed[0])
            if not isinstance(value, str):
                return _error(400, f"Invalid type for '{key}': expected one of {', '.join(allowed)}, "
                              f"but got {type(value).__name__} instead.", key, "invalid_type")
            if value not in allowed:
                return _error(400, f"Invalid value: '{value}'. Supported values are: "
                              + ", ".join(f"'{a}'" for a in allowed) + ".", key, "invalid_value")
        if not model.startswith("sora-2-pro") and body.get("size", "720x1280") not in SORA_2_SIZES:
            return _error(400, f"The size '{body['size']}' is not supported by {model}.", "size", "invalid_value")
        return self._check_reference(body.get("input_reference"))

    @staticmethod
    def _check_reference(reference: Any) -> web.Response | None:
        if reference is None:
            return None
        if isinstance(reference, dict) and "data" in reference:  # an uploaded file
            data = reference["data"]
            if not (data.startswith(b"\x89PNG") or data.startswith(b"\xff\xd8\xff")
                    or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")):
                return _error(400, "Invalid file format. Supported formats are: image/jpeg, image/png, image/webp.",
                              "input_reference", "invalid_value")
            return None
        if isinstance(reference, dict) and len(reference) == 1 and isinstance(
                reference.get("image_url") or reference.get("file_id"), str):
            url = reference.get("image_url")
            if url is not None and not re.match(r"(https?://|data:image/[\w.+-]+;base64,)", url):
                return _error(400, "input_reference.image_url must be a URL or a base64 data URL.",
                              "input_reference.image_url", "invalid_value")
            return None
        return _error(400, "input_reference must be a file or an object with exactly one of image_url or file_id.",
                      "input_reference", "invalid_value")

    def _new_video(self, body: dict, remixed_from: str | None = None) -> dict:
        video_id = "video_" + secrets.token_hex(24)
        video = {"id": video_id, "object": "video", "model": body.get("model", "sora-2"), "status": "queued",
                 "progress": 0, "created_at": int(time.time()), "completed_at": None, "expires_at": None,
                 "seconds": body.get("seconds", "4"), "size": body.get("size", "720x1280"),
                 "remixed_from_video_id": remixed_from, "error": None, "prompt": body["prompt"]}
        self.videos[video_id] = FakeVideo(video, replace(self.video_plan))
        return dict(video)

    async def _create_video(self, request: web.Request) -> web.Response:
        body, bad = await self._video_form(request)
        if (refused := self._refuse(request, body)) is not None:
            return refused
        if bad is not None:
            return bad
        return self._check_video(body) or web.json_response(self._new_video(body))

    def _advance(self, video: FakeVideo) -> None:
        """One retrieval's worth of progress, per the video's plan."""
        plan, state = video.plan, video.object
        if state["status"] in ("completed", "failed"):
            return
        video.polls += 1
        if plan.fail_at_poll is not None and video.polls >= plan.fail_at_poll:
            state |= {"status": "failed", "error": {"code": plan.failure[0], "message": plan.failure[1]}}
            return
        if plan.seconds_to_finish is not None:
            fraction = (time.monotonic() - video.created) / plan.seconds_to_finish
            fraction = 0.0 if fraction < 0.1 else fraction  # queued for the first tenth
        else:
            steps = max(plan.polls_to_finish, 1)
            fraction = 0.0 if video.polls == 1 and steps >= 3 else video.polls / steps
        if plan.never_finish:
            fraction = min(fraction, 0.99)
        if fraction >= 1:
            now = int(time.time())
            state |= {"status": "completed", "progress": 100, "completed_at": now, "expires_at": now + 3600}
        elif fraction > 0:
            state |= {"status": "in_progress", "progress": max(state["progress"], min(99, int(fraction * 100)))}

    def _video(self, request: web.Request) -> tuple[FakeVideo | None, web.Response | None]:
        video_id = request.match_info["video_id"]
        video = self.videos.get(video_id)
        if video is None:
            return None, _error(404, f"Video with id '{video_id}' not found.", None, "video_not_found")
        return video, None

    async def _retrieve_video(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request, None)) is not None:
            return refused
        video, missing = self._video(request)
        if missing is not None:
            return missing
        if video.rate_limited < video.plan.rate_limited_polls:
            video.rate_limited += 1
            return _error(429, "Rate limit reached for requests. Please try again in 1s.", None,
                          "rate_limit_exceeded", "requests")
        self._advance(video)
        return web.json_response(video.object, headers={"openai-poll-after-ms": "1000"})

    async def _list_videos(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request, None)) is not None:
            return refused
        items = [v.object for v in self.videos.values()]
        if request.query.get("order", "desc") == "desc":
            items.reverse()
        if "after" in request.query:
            ids = [v["id"] for v in items]
            items = items[ids.index(request.query["after"]) + 1:] if request.query["after"] in ids else []
        limit = int(request.query.get("limit", 20))
        page = items[:limit]
        return web.json_response({"object": "list", "data": page, "has_more": len(items) > limit,
                                  "first_id": page[0]["id"] if page else None,
                                  "last_id": page[-1]["id"] if page else None})

    async def _delete_video(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request, None)) is not None:
            return refused
        video, missing = self._video(request)
        if missing is not None:
            return missing
        del self.videos[video.object["id"]]
        return web.json_response({"id": video.object["id"], "object": "video.deleted", "deleted": True})

    async def _video_content(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request, dict(request.query))) is not None:
            return refused
        video, missing = self._video(request)
        if missing is not None:
            return missing
        variant = request.query.get("variant", "video")
        if variant not in ("video", "thumbnail", "spritesheet"):
            return _error(400, f"Invalid value: '{variant}'. Supported values are: 'video', 'thumbnail' and "
                          "'spritesheet'.", "variant", "invalid_value")
        if video.object["status"] != "completed":
            # OpenAI's exact status for this is not documented; a conflict is the closest meaning.
            return _error(409, "Video is not ready yet; wait until its status is completed.", None,
                          "video_not_ready")
        if variant == "video":
            return web.Response(body=self.video_content or sample_mp4_bytes(), content_type="video/mp4")
        if variant == "thumbnail":
            return web.Response(body=THUMBNAIL_WEBP, content_type="image/webp")
        return web.Response(body=sample_png_bytes(), content_type="image/png")

    async def _remix_video(self, request: web.Request) -> web.Response:
        body, bad = await self._json_body(request)
        if (refused := self._refuse(request, body)) is not None:
            return refused
        if bad is not None:
            return bad
        source, missing = self._video(request)
        if missing is not None:
            return missing
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str) or not prompt:
            return _error(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
        if source.object["status"] != "completed":
            return _error(409, "Only a completed video can be remixed.", None, "video_not_ready")
        original = source.object
        return web.json_response(self._new_video(
            {"model": original["model"], "seconds": original["seconds"], "size": original["size"],
             "prompt": prompt}, remixed_from=original["id"]))
