"""A real DashScope (Model Studio) video-synthesis server on 127.0.0.1 for tests. It
speaks the public API: `POST /api/v1/services/aigc/video-generation/video-synthesis`
(and the kf2v models' `/api/v1/services/aigc/image2video/video-synthesis`) with
`Authorization: Bearer KEY` and the required `X-DashScope-Async: enable`; validates the
body per model shape (`size`, `img_url` + `resolution`, first/last frame URLs, the
`media` list); answers `{"request_id", "output": {"task_id", "task_status": "PENDING"}}`;
walks tasks PENDING -> RUNNING -> SUCCEEDED (or FAILED) across polls of
`GET /api/v1/tasks/{id}` (UNKNOWN for an id it does not have); cancels PENDING tasks
on `POST /api/v1/tasks/{id}/cancel`; and serves the MP4 from a signed OSS-like URL
on its own /oss/ path. Errors are DashScope's `{"request_id", "code", "message"}`.
Every request is recorded. It runs on its own thread and loop."""
from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.sample_media import sample_mp4
from tests.fakes.faults import Faults
from tests.fakes.threaded_server import ThreadedServer

SYNTHESIS = "/api/v1/services/aigc/video-generation/video-synthesis"
KEYFRAMES = "/api/v1/services/aigc/image2video/video-synthesis"

TIERS = {"480P": {"832*480", "480*832", "624*624"},
         "720P": {"1280*720", "720*1280", "960*960", "1088*832", "832*1088"},
         "1080P": {"1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632"}}
RATIOS = {"16:9", "9:16", "1:1", "4:3", "3:4"}


@dataclass(frozen=True)
class Model:
    shape: str                      # t2v | i2v | kf2v | media
    durations: frozenset[int]
    tiers: tuple[str, ...]
    audio: bool = False
    media_types: frozenset[str] = frozenset()
    needs_frame: bool = False


def _range(a: int, b: int) -> frozenset[int]:
    return frozenset(range(a, b + 1))


FRAMES = frozenset({"first_frame", "last_frame", "driving_audio", "first_clip"})
MODELS = {
    "wan2.6-t2v": Model("t2v", _range(2, 15), ("720P", "1080P"), audio=True),
    "wan2.5-t2v-preview": Model("t2v", frozenset({5, 10}), ("480P", "720P", "1080P"), audio=True),
    "wan2.2-t2v-plus": Model("t2v", frozenset({5}), ("480P", "1080P")),
    "wan2.6-i2v-flash": Model("i2v", _range(2, 15), ("720P", "1080P"), audio=True),
    "wan2.6-i2v": Model("i2v", _range(2, 15), ("720P", "1080P"), audio=True),
    "wan2.2-i2v-flash": Model("i2v", frozenset({5}), ("480P", "720P", "1080P")),
    "wan2.2-kf2v-flash": Model("kf2v", frozenset({5}), ("480P", "720P", "1080P")),
    "wan2.7-t2v": Model("media", _range(2, 15), ("720P", "1080P")),
    "wan2.7-i2v": Model("media", _range(2, 15), ("720P", "1080P"), media_types=FRAMES, needs_frame=True),
}
MODERATED = ("DataInspectionFailed", "Output data may contain inappropriate content.")


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class Plan:
    polls: int = 2                         # polls answered PENDING, then as many RUNNING
    failure: tuple[str, str] | None = None  # (code, message) the task ends FAILED with
    never_finish: bool = False


@dataclass
class Task:
    task_id: str
    body: dict
    plan: Plan
    polls: int = 0
    status: str = "PENDING"
    outcome: dict = field(default_factory=dict)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"request_id": str(uuid.uuid4()), "code": code, "message": message}, status=status)


def _is_image(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    if value.startswith(("http://", "https://")):
        return True
    if not value.startswith("data:image/") or ";base64," not in value:
        return False
    try:
        base64.b64decode(value.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def validate(path: str, body: Any) -> str | None:
    """DashScope's InvalidParameter message for a bad body, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "Field required: model"
    model = MODELS.get(body["model"])
    if model is None:
        return "Model not exist."
    if (path == KEYFRAMES) != (model.shape == "kf2v"):
        return f"Model {body['model']} is not supported on this url."
    inputs, parameters = body.get("input"), body.get("parameters", {})
    if not isinstance(inputs, dict) or not isinstance(parameters, dict):
        return "input must be an object"
    allowed_input = {"prompt", "negative_prompt"} | {
        "t2v": {"audio_url"}, "i2v": {"img_url", "audio_url"}, "kf2v": {"first_frame_url", "last_frame_url"},
        "media": {"media"}}[model.shape]
    allowed_params = {"duration", "seed", "prompt_extend", "watermark"} | {
        "t2v": {"size", "audio", "shot_type"}, "i2v": {"resolution", "audio", "shot_type"},
        "kf2v": {"resolution"}, "media": {"resolution", "ratio", "shot_type"}}[model.shape]
    extra = (set(inputs) - allowed_input) | (set(parameters) - allowed_params)
    if extra:
        return f"Unsupported parameter: {sorted(extra)[0]}"
    if model.shape in ("t2v", "media") and not model.needs_frame and not (
            isinstance(inputs.get("prompt"), str) and inputs["prompt"].strip()):
        return "Field required: input.prompt"
    duration = parameters.get("duration", 5)
    if not isinstance(duration, int) or isinstance(duration, bool) or duration not in model.durations:
        return f"The duration is invalid: {duration!r}"
    if "size" in parameters and not any(parameters["size"] in TIERS[t] for t in model.tiers):
        return f"The size is invalid: {parameters['size']!r}"
    if "resolution" in parameters and parameters["resolution"] not in model.tiers:
        return f"The resolution is invalid: {parameters['resolution']!r}"
    if "ratio" in parameters and parameters["ratio"] not in RATIOS:
        return f"The ratio is invalid: {parameters['ratio']!r}"
    if "seed" in parameters and not (isinstance(parameters["seed"], int) and 0 <= parameters["seed"] <= 2147483647):
        return "The seed is invalid"
    for flag in ("prompt_extend", "watermark", "audio"):
        if flag in parameters and not isinstance(parameters[flag], bool):
            return f"The {flag} must be a boolean"
    if model.shape == "i2v" and not _is_image(inputs.get("img_url")):
        return "Field required: input.img_url"
    if model.shape == "kf2v":
        if not _is_image(inputs.get("first_frame_url")):
            return "Field required: input.first_frame_url"
        if "last_frame_url" in inputs and not _is_image(inputs["last_frame_url"]):
            return "The last_frame_url is invalid"
    if model.shape == "media":
        media = inputs.get("media", [])
        if not isinstance(media, list) or any(not isinstance(m, dict) or m.get("type") not in model.media_types
                                              or not _is_image(m.get("url")) for m in media):
            return "The media is invalid"
        if model.needs_frame and not any(m["type"] in ("first_frame", "first_clip") for m in media):
            return f"image-to-video model {body['model']} must provide an image"
    return None


class FakeWan:
    def __init__(self, api_key: str = "sk-" + "0f" * 16) -> None:
        self.api_key = api_key
        self.received: list[Received] = []
        self.tasks: dict[str, Task] = {}
        self.plan = Plan()
        self.video = sample_mp4("fake wan video")
        self._injected: list[tuple[int, str, str]] = []  # errors for the next API calls
        self._ids = itertools.count(1)
        self.port = 0
        self.faults = Faults()  # tests/fakes/faults.py: what goes wrong, per path
        self._server = ThreadedServer(self._app)

    def start(self) -> "FakeWan":
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=30 * 1024 * 1024, middlewares=[self.faults.middleware])
        app.router.add_post(SYNTHESIS, self._create)
        app.router.add_post(KEYFRAMES, self._create)
        app.router.add_get("/api/v1/tasks/{task_id}", self._query)
        app.router.add_post("/api/v1/tasks/{task_id}/cancel", self._cancel)
        app.router.add_get("/oss/{name}", self._oss)
        return app

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # test controls -------------------------------------------------------------------------

    def rate_limit(self, times: int) -> None:
        """The next `times` API calls answer 429, as DashScope throttles."""
        self.inject(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.", times)

    def inject(self, status: int, code: str, message: str, times: int = 1) -> None:
        self._injected.extend([(status, code, message)] * times)

    def reset(self) -> None:
        self.received.clear()
        self._injected.clear()
        self.plan = Plan()

    def api_calls(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/api/")]

    # DashScope's API ------------------------------------------------------------------------

    def _gate(self, request: web.Request, body: Any = None) -> web.Response | None:
        self.received.append(Received(request.method, request.path, request.query_string,
                                      dict(request.headers), body))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "InvalidApiKey", "Invalid API-key provided.")
        if self._injected:
            return _error(*self._injected.pop(0))
        return None

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if (denied := self._gate(request, body)) is not None:
            return denied
        if request.headers.get("X-DashScope-Async") != "enable":
            return _error(403, "AccessDenied", "current user api does not support synchronous calls")
        if body is None:
            return _error(400, "InvalidParameter", "The request body is not valid JSON.")
        problem = validate(request.path, body)
        if problem is not None:
            return _error(400, "InvalidParameter", problem)
        task_id = f"{next(self._ids):04d}-{uuid.uuid4()}"
        self.tasks[task_id] = Task(task_id, body, self.plan)
        return web.json_response({"request_id": str(uuid.uuid4()),
                                  "output": {"task_id": task_id, "task_status": "PENDING"}})

    async def _query(self, request: web.Request) -> web.Response:
        if (denied := self._gate(request)) is not None:
            return denied
        task = self.tasks.get(request.match_info["task_id"])
        if task is None:
            return web.json_response({"request_id": str(uuid.uuid4()),
                                      "output": {"task_id": request.match_info["task_id"], "task_status": "UNKNOWN"}})
        self._advance(task)
        output = {"task_id": task.task_id, "task_status": task.status, "submit_time": "2026-11-29 20:00:00.000",
                  **task.outcome}
        answer: dict = {"request_id": str(uuid.uuid4()), "output": output}
        if task.status == "SUCCEEDED":
            answer["usage"] = {"video_duration": task.body["parameters"].get("duration", 5), "video_count": 1}
        return web.json_response(answer)

    def _advance(self, task: Task) -> None:
        if task.status not in ("PENDING", "RUNNING"):
            return
        task.polls += 1
        plan = task.plan
        if task.polls <= plan.polls:
            task.status = "PENDING"
        elif task.polls <= 2 * plan.polls or plan.never_finish:
            task.status = "RUNNING"
        elif plan.failure is not None:
            task.status = "FAILED"
            task.outcome = {"code": plan.failure[0], "message": plan.failure[1]}
        else:
            task.status = "SUCCEEDED"
            task.outcome = {"video_url": self.video_url(task), "orig_prompt": task.body["input"].get("prompt", ""),
                            "end_time": "2026-11-29 20:01:00.000"}

    async def _cancel(self, request: web.Request) -> web.Response:
        if (denied := self._gate(request)) is not None:
            return denied
        task = self.tasks.get(request.match_info["task_id"])
        if task is None or task.status != "PENDING":
            return _error(400, "UnsupportedOperation",
                          "Failed to cancel the task, please confirm if the task is in PENDING status.")
        task.status = "CANCELED"
        return web.json_response({"request_id": str(uuid.uuid4())})

    def _signature(self, name: str) -> str:
        return hashlib.sha256(f"{self.api_key}/{name}".encode()).hexdigest()[:24]

    def video_url(self, task: Task) -> str:
        name = f"{task.task_id}.mp4"
        signed = f"Expires=1764504000&OSSAccessKeyId=LTAI5tFake&Signature={self._signature(name)}"
        return f"{self.base_url}/oss/{name}?{signed}"

    async def _oss(self, request: web.Request) -> web.Response:
        # OSS, not the API: the URL is signed, and no key is sent there.
        self.received.append(Received(request.method, request.path, request.query_string,
                                      dict(request.headers), None))
        name = request.match_info["name"]
        if request.query.get("Signature") != self._signature(name) or name[:-4] not in self.tasks:
            return web.Response(status=403, content_type="application/xml",
                                text="<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
                                     "<Message>Request has expired.</Message></Error>")
        return web.Response(body=self.video, content_type="video/mp4")
