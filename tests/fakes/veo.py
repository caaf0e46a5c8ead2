"""A real Gemini-API (Veo) HTTP server on 127.0.0.1 for tests. It checks the API key
the way Google does (`x-goog-api-key` or `?key=`; a missing one is 403 PERMISSION_DENIED,
a wrong one 400 INVALID_ARGUMENT with the reason API_KEY_INVALID), validates
`models/{model}:predictLongRunning` bodies per model (the Gemini API takes inline image
bytes only, no seed, fps or audio), answers long-running operations that are done after
a number of polls, and serves the finished file only to the key holder at
`/v1beta/files/{id}:download?alt=media`, which redirects to a signed storage URL (public,
like Google's). It can be told to fail an operation, filter the result for safety (no
samples, a filtered count and reasons), never finish, rate limit, or answer the next
calls with a given error. Every request is recorded.

It runs on its own thread and loop, like tests/fakes/kling.py."""
from __future__ import annotations

import base64
import binascii
import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from server.media_types import image_type
from tests.fakes.faults import Faults
from tests.fakes.sample_media import sample_mp4
from tests.fakes.threaded_server import ThreadedServer

VEO_3_1 = {"durations": {4, 6, 8}, "resolutions": {"720p", "1080p", "4k"}, "last_frame": True, "references": True,
           "enhance": False}
VEO_3_1_LITE = {**VEO_3_1, "resolutions": {"720p", "1080p"}, "references": False}
VEO_3 = {"durations": {4, 6, 8}, "resolutions": {"720p", "1080p"}, "last_frame": False, "references": False,
         "enhance": False}
VEO_2 = {"durations": {5, 6, 7, 8}, "resolutions": set(), "last_frame": False, "references": False, "enhance": True}
MODELS = {"veo-3.1-generate-preview": VEO_3_1, "veo-3.1-fast-generate-preview": VEO_3_1,
          "veo-3.1-generate-001": VEO_3_1, "veo-3.1-fast-generate-001": VEO_3_1,
          "veo-3.1-lite-generate-preview": VEO_3_1_LITE, "veo-3.1-lite-generate-001": VEO_3_1_LITE,
          "veo-3.0-generate-001": VEO_3, "veo-3.0-fast-generate-001": VEO_3, "veo-2.0-generate-001": VEO_2}
INSTANCE_FIELDS = {"prompt", "image", "lastFrame", "referenceImages", "video"}
PARAMETER_FIELDS = {"aspectRatio", "durationSeconds", "resolution", "negativePrompt", "personGeneration",
                    "sampleCount", "enhancePrompt"}
# Google's words for a safety-filtered result, as raiMediaFilteredReasons carries them.
SAFETY_REASON = ("Veo could not generate 1 videos based on the prompt provided. You will not be charged for this "
                 "request. Try rephrasing the prompt. Support codes: 42237218")
RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class Operation:
    model: str
    op_id: str
    body: dict
    polls: int = 0
    done: bool = False
    file_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def name(self) -> str:
        return f"models/{self.model}/operations/{self.op_id}"


def google_error(status: int, code: str, message: str, reason: str | None = None) -> web.Response:
    error: dict = {"code": status, "message": message, "status": code}
    if reason is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]
    return web.json_response({"error": error}, status=status)


class FakeVeo:
    def __init__(self, api_key: str = "AIzaSyFAKE0veo0key000000000000000000001") -> None:
        self.api_key = api_key
        self.received: list[Received] = []
        self.operations: dict[str, Operation] = {}
        self.video = sample_mp4("fake veo video")
        self.signature = secrets.token_hex(8)
        self._ids = itertools.count(1)
        self.port = 0
        self.faults = Faults()  # tests/fakes/faults.py: what goes wrong, per path
        self._server = ThreadedServer(self._app)
        self.reset()

    def reset(self) -> None:
        self.received.clear()
        self.polls_to_finish = 2              # the operation is done on this poll
        self.fail_with: str | None = None     # the operation ends with this error instead
        self.filtered = False                 # done with no samples: the safety filters took them
        self.never_finish = False
        self.rate_limit_next = 0              # the next N API calls get 429 RESOURCE_EXHAUSTED
        self.inject_next: list[tuple[int, str, str, str | None]] = []  # (status, code, message, reason)

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> "FakeVeo":
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self.faults.middleware])
        app.router.add_post("/v1beta/models/{call}", self._predict)
        app.router.add_get("/v1beta/models", self._list_models)
        app.router.add_get("/v1beta/models/{model}/operations/{op_id}", self._operation)
        app.router.add_get("/v1beta/files/{call}", self._file)
        app.router.add_get("/storage/{file}", self._storage)
        return app

    # the gate every API call passes ---------------------------------------------------

    async def _gate(self, request: web.Request, body: Any) -> web.Response | None:
        self.received.append(Received(request.method, request.path, request.query_string, dict(request.headers), body))
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers "
                                "without established identity). Please use API Key or other form of API consumer "
                                "identity to call this API.")
        if key != self.api_key:
            return google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                "API_KEY_INVALID")
        if self.inject_next:
            status, code, message, reason = self.inject_next.pop(0)
            return google_error(status, code, message, reason)
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            return google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan "
                                "and billing details.")
        return None

    # endpoints ---------------------------------------------------------------------------

    async def _list_models(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request, None)) is not None:
            return denied
        return web.json_response({"models": [{"name": "models/veo-3.1-generate-preview",
                                              "supportedGenerationMethods": ["predictLongRunning"]}],
                                  "nextPageToken": "x"})

    async def _predict(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if (denied := await self._gate(request, body)) is not None:
            return denied
        model, sep, method = request.match_info["call"].partition(":")
        if not sep or method != "predictLongRunning":
            return google_error(404, "NOT_FOUND", f"Method not found: {method}")
        rules = MODELS.get(model)
        if rules is None:
            return google_error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, or is not "
                                "supported for predictLongRunning. Call ListModels to see the list of available "
                                "models and their supported methods.")
        if not isinstance(body, dict):
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if (problem := self._validate(rules, body)) is not None:
            return google_error(400, "INVALID_ARGUMENT", problem)
        operation = Operation(model, f"{next(self._ids):04d}{uuid.uuid4().hex[:8]}", body)
        self.operations[operation.name] = operation
        return web.json_response({"name": operation.name})

    def _validate(self, rules: dict, body: dict) -> str | None:
        if unknown := sorted(set(body) - {"instances", "parameters"}):
            return f"Invalid JSON payload received. Unknown name \"{unknown[0]}\""
        instances = body.get("instances")
        if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
            return "instances must hold one instance."
        instance = instances[0]
        if set(instance) - INSTANCE_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{sorted(set(instance) - INSTANCE_FIELDS)[0]}\""
        if not isinstance(instance.get("prompt"), str) or not instance["prompt"].strip():
            return "A prompt is required."
        for name in ("image", "lastFrame"):
            if name in instance and (problem := self._image_problem(instance[name], name)):
                return problem
        if "lastFrame" in instance and (not rules["last_frame"] or "image" not in instance):
            return "lastFrame isn't supported by this model or without an image."
        refs = instance.get("referenceImages")
        if refs is not None:
            if not rules["references"] or not isinstance(refs, list) or not 1 <= len(refs) <= 3 or "image" in instance:
                return "referenceImages isn't supported here."
            for i, ref in enumerate(refs):
                if not isinstance(ref, dict) or set(ref) != {"image", "referenceType"} \
                        or ref["referenceType"] != "asset":
                    return f"referenceImages[{i}] is invalid."
                if problem := self._image_problem(ref["image"], f"referenceImages[{i}].image"):
                    return problem
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict):
            return "parameters must be an object."
        if set(parameters) - PARAMETER_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{sorted(set(parameters) - PARAMETER_FIELDS)[0]}\""
        duration = parameters.get("durationSeconds", 8)
        if isinstance(duration, bool) or not isinstance(duration, int) or duration not in rules["durations"]:
            return f"durationSeconds {duration!r} is out of bounds for this model."
        if parameters.get("aspectRatio", "16:9") not in ("16:9", "9:16"):
            return "aspectRatio is not supported."
        resolution = parameters.get("resolution")
        if resolution is not None and resolution not in rules["resolutions"]:
            return f"resolution {resolution!r} is not supported for this model."
        if resolution in ("1080p", "4k") and duration != 8:
            return f"{resolution} is supported only with an 8 s duration."
        if refs is not None and (duration != 8 or parameters.get("aspectRatio", "16:9") != "16:9"):
            return "referenceImages require 8 s and 16:9."
        if "enhancePrompt" in parameters and not rules["enhance"]:
            return "enhancePrompt isn't supported by this model."
        if parameters.get("personGeneration", "allow_all") not in ("allow_all", "allow_adult", "dont_allow"):
            return "personGeneration is invalid."
        if "negativePrompt" in parameters and not isinstance(parameters["negativePrompt"], str):
            return "negativePrompt must be a string."
        return None

    @staticmethod
    def _image_problem(image: Any, name: str) -> str | None:
        if not isinstance(image, dict) or set(image) != {"bytesBase64Encoded", "mimeType"}:
            return f"{name} must carry bytesBase64Encoded and mimeType (URIs are not supported in the Gemini API)."
        try:
            raw = base64.b64decode(image["bytesBase64Encoded"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            return f"{name}.bytesBase64Encoded is not base64."
        if image_type(raw[:16]) != image["mimeType"]:
            return f"{name} is not a {image['mimeType']} image."
        return None

    async def _operation(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request, None)) is not None:
            return denied
        name = f"models/{request.match_info['model']}/operations/{request.match_info['op_id']}"
        operation = self.operations.get(name)
        if operation is None:
            return google_error(404, "NOT_FOUND", "Operation not found.")
        operation.polls += 1
        if not operation.done and not self.never_finish and operation.polls >= self.polls_to_finish:
            operation.done = True
        answer: dict = {"name": name}
        if not operation.done:
            return web.json_response(answer)
        answer["done"] = True
        if self.fail_with is not None:
            answer["error"] = {"code": 13, "message": self.fail_with}
        elif self.filtered:
            answer["response"] = {"@type": RESPONSE_TYPE, "generateVideoResponse": {
                "raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [SAFETY_REASON]}}
        else:
            uri = f"{self.base_url}/v1beta/files/{operation.file_id}:download?alt=media"
            answer["response"] = {"@type": RESPONSE_TYPE, "generateVideoResponse": {
                "generatedSamples": [{"video": {"uri": uri}}]}}
        return web.json_response(answer)

    async def _file(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request, None)) is not None:
            return denied
        file_id, sep, method = request.match_info["call"].partition(":")
        if method != "download" or request.query.get("alt") != "media":
            return google_error(400, "INVALID_ARGUMENT", "Use :download?alt=media.")
        if not any(op.file_id == file_id and op.done for op in self.operations.values()):
            return google_error(404, "NOT_FOUND", "File not found.")
        # As Google does: the key holder is sent on to a signed storage link.
        raise web.HTTPFound(f"/storage/{file_id}.mp4?sig={self.signature}")

    async def _storage(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.method, request.path, request.query_string, dict(request.headers), None))
        file_id = request.match_info["file"].removesuffix(".mp4")
        known = any(op.file_id == file_id for op in self.operations.values())
        if request.query.get("sig") != self.signature or not known:
            return web.Response(status=403, text="Forbidden")
        return web.Response(body=self.video, content_type="video/mp4")

    # what the tests look at -----------------------------------------------------------

    def submissions(self) -> list[Received]:
        return [r for r in self.received if r.method == "POST"]

    def file_requests(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/v1beta/files/")]

    def storage_requests(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/storage/")]
