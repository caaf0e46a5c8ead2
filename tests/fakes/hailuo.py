"""A real MiniMax-video-API HTTP server on 127.0.0.1 for tests. It speaks the API as
MiniMax's reference describes it: a Bearer key on every call, answers always HTTP 200
with `base_resp: {"status_code", "status_msg"}` (0 success; 1002 rate limit, 1004
authentication, 1008 balance, 1026/1027 sensitive input/output, 2013 bad parameter,
2049 invalid key), `POST /v1/video_generation` bodies validated per model and mode,
tasks in `GET /v1/query/video_generation?task_id=` going Preparing -> Queueing ->
Processing -> Success (with a `file_id`) or Fail, and `GET /v1/files/retrieve?file_id=`
naming a signed `download_url` on its own CDN path, which serves the MP4 without a key.

Its rules are written out here on their own, not imported from the provider, so the
provider's conversion is checked against an independent statement of the API.
It runs on its own thread and loop, like tests/fakes/runway.py."""
from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.faults import Faults
from tests.fakes.threaded_server import ThreadedServer

T2V = {"MiniMax-Hailuo-2.3", "MiniMax-Hailuo-02", "T2V-01-Director", "T2V-01"}
I2V = {"MiniMax-Hailuo-2.3", "MiniMax-Hailuo-2.3-Fast", "MiniMax-Hailuo-02", "I2V-01-Director", "I2V-01-live",
       "I2V-01"}
FL2V = {"MiniMax-Hailuo-02"}
S2V = {"S2V-01"}
NEW = {"MiniMax-Hailuo-2.3", "MiniMax-Hailuo-2.3-Fast", "MiniMax-Hailuo-02"}
FIELDS = {"model", "prompt", "prompt_optimizer", "fast_pretreatment", "duration", "resolution", "callback_url",
          "aigc_watermark", "first_frame_image", "last_frame_image", "subject_reference"}
DATA_URI = re.compile(r"^data:image/(jpeg|jpg|png|webp);base64,(.+)$", re.DOTALL)
SENSITIVE_INPUT = (1026, "input new_sensitive")
SENSITIVE_OUTPUT = (1027, "output new_sensitive")


def video_bytes() -> bytes:
    from tests.fakes.sample_media import sample_mp4
    return sample_mp4("fake hailuo video")


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Plan:
    """How a task created from now on behaves: `polls_per_stage` queries in each of
    Preparing, Queueing and Processing, then Success; or `fail_with` (a status code and
    message) once Processing, or never an end."""
    polls_per_stage: int = 1
    fail_with: tuple[int, str] | None = None
    never_finish: bool = False


@dataclass
class Task:
    task_id: str
    body: dict
    plan: Plan
    polls: int = 0
    file_id: int | None = None


@dataclass
class FakeHailuo:
    api_key: str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.fake-minimax-key.c2lnbmF0dXJl"
    plan: Plan = field(default_factory=Plan)
    received: list[Received] = field(default_factory=list)
    tasks: dict[str, Task] = field(default_factory=dict)
    files: dict[int, str] = field(default_factory=dict)      # file_id -> task_id
    submit_answers: list[tuple[int, str]] = field(default_factory=list)  # base_resp for the next submits
    rate_limited_queries: int = 0                            # the next queries answer 1002
    video: bytes = field(default_factory=video_bytes)
    base_url: str = ""

    def __post_init__(self) -> None:
        self._ids = itertools.count(int(time.time()) * 1000)
        self.faults = Faults()  # tests/fakes/faults.py: what goes wrong, per path
        self._server = ThreadedServer(self._app)

    def start(self) -> "FakeHailuo":
        self.base_url = f"http://127.0.0.1:{self._server.start()}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        self.received.clear()
        self.plan = Plan()
        self.submit_answers.clear()
        self.rate_limited_queries = 0

    def submissions(self) -> list[Received]:
        return [r for r in self.received if r.path == "/v1/video_generation"]

    # -- the app ---------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self.faults.middleware])
        app.router.add_post("/v1/video_generation", self._submit)
        app.router.add_get("/v1/query/video_generation", self._query)
        app.router.add_get("/v1/files/retrieve", self._retrieve)
        app.router.add_get("/cdn/video/{name}", self._cdn)
        return app

    async def _record(self, request: web.Request) -> Received:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        received = Received(request.method, request.path, dict(request.query), dict(request.headers), body)
        self.received.append(received)
        return received

    @staticmethod
    def _answer(code: int = 0, message: str = "success", **fields) -> web.Response:
        # MiniMax answers HTTP 200 whatever happened; base_resp says what.
        return web.json_response({**fields, "base_resp": {"status_code": code, "status_msg": message}})

    def _authorised(self, received: Received) -> bool:
        return received.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _submit(self, request: web.Request) -> web.Response:
        received = await self._record(request)
        if not self._authorised(received):
            return self._answer(1004, "login fail: Please carefully check the API key", task_id="")
        if self.submit_answers:
            return self._answer(*self.submit_answers.pop(0), task_id="")
        problem = validate(received.body)
        if problem is not None:
            return self._answer(2013, f"invalid params, {problem}", task_id="")
        task_id = str(next(self._ids))
        self.tasks[task_id] = Task(task_id, received.body, self.plan)
        return self._answer(task_id=task_id)

    async def _query(self, request: web.Request) -> web.Response:
        received = await self._record(request)
        if not self._authorised(received):
            return self._answer(1004, "login fail: Please carefully check the API key")
        if self.rate_limited_queries > 0:
            self.rate_limited_queries -= 1
            return self._answer(1002, "rate limit exceeded(RPM)")
        task = self.tasks.get(received.query.get("task_id", ""))
        if task is None:
            return self._answer(2013, "invalid params, task not found", task_id=received.query.get("task_id", ""),
                                status="")
        task.polls += 1
        stage = (task.polls - 1) // task.plan.polls_per_stage
        if task.plan.never_finish:
            stage = min(stage, 2)
        if stage == 0:
            return self._answer(task_id=task.task_id, status="Preparing", file_id="")
        if stage == 1:
            return self._answer(task_id=task.task_id, status="Queueing", file_id="")
        if stage == 2:
            return self._answer(task_id=task.task_id, status="Processing", file_id="")
        if task.plan.fail_with is not None:
            return self._answer(*task.plan.fail_with, task_id=task.task_id, status="Fail", file_id="")
        if task.file_id is None:
            task.file_id = next(self._ids)
            self.files[task.file_id] = task.task_id
        width, height = {"512P": (912, 512), "720P": (1280, 720), "768P": (1366, 768),
                         "1080P": (1920, 1080)}[task.body.get("resolution", "768P")]
        return self._answer(task_id=task.task_id, status="Success", file_id=str(task.file_id),
                            video_width=width, video_height=height)

    async def _retrieve(self, request: web.Request) -> web.Response:
        received = await self._record(request)
        if not self._authorised(received):
            return self._answer(1004, "login fail: Please carefully check the API key")
        try:
            file_id = int(received.query.get("file_id", ""))
        except ValueError:
            return self._answer(2013, "invalid params, file_id")
        if file_id not in self.files:
            return self._answer(1000, "file not found")
        name = f"{file_id}.mp4"
        return self._answer(file={
            "file_id": file_id, "bytes": len(self.video), "created_at": int(time.time()), "filename": "output.mp4",
            "purpose": "video_generation",
            "download_url": f"{self.base_url}/cdn/video/{name}?Expires={int(time.time()) + 3600}"
                            f"&Signature={_signature(name)}"})

    async def _cdn(self, request: web.Request) -> web.Response:
        received = await self._record(request)
        name = request.match_info["name"]
        if received.query.get("Signature") != _signature(name):
            return web.Response(status=403, text="AccessDenied")
        return web.Response(body=self.video, content_type="video/mp4")


def _signature(name: str) -> str:
    return hashlib.sha256(f"cdn:{name}".encode()).hexdigest()[:32]


def validate(body: object) -> str | None:
    """What MiniMax's reference says a submit body must be, per model and mode; the
    problem as MiniMax words it, or None."""
    if not isinstance(body, dict):
        return "body is not JSON"
    unknown = set(body) - FIELDS
    if unknown:
        return f"unknown field {sorted(unknown)[0]}"
    model = body.get("model")
    if model not in T2V | I2V | S2V:
        return f"model {model} not supported"
    first, last, subject = body.get("first_frame_image"), body.get("last_frame_image"), body.get("subject_reference")
    for name in ("first_frame_image", "last_frame_image"):
        if name in body and not _image_ok(body[name]):
            return f"{name} is not an image URL or a base64 data URL"
    if last is not None and model not in FL2V:
        return f"last_frame_image not supported by {model}"
    if subject is not None:
        if model not in S2V or not (isinstance(subject, list) and len(subject) == 1
                                   and isinstance(subject[0], dict) and subject[0].get("type") == "character"
                                   and isinstance(subject[0].get("image"), list) and len(subject[0]["image"]) == 1
                                   and _image_ok(subject[0]["image"][0])):
            return "subject_reference"
    elif model in S2V:
        return "subject_reference is required"
    if first is None and last is None and model not in T2V | S2V:
        return "first_frame_image is required"
    if first is not None and model not in I2V:
        return f"first_frame_image not supported by {model}"
    prompt = body.get("prompt")
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > 2000):
        return "prompt"
    if first is None and not prompt:
        return "prompt is required"
    duration, resolution = body.get("duration", 6), body.get("resolution")
    if model in NEW:
        resolutions = {"768P", "1080P"} | ({"512P"} if model == "MiniMax-Hailuo-02" and first and not last else set())
        if resolution is not None and resolution not in resolutions:
            return f"resolution {resolution} not supported"
        if duration not in (6, 10) or (duration == 10 and resolution == "1080P"):
            return f"duration {duration} not supported at {resolution or '768P'}"
    else:
        if resolution not in (None, "720P") or duration != 6:
            return "duration or resolution not supported"
    for name in ("prompt_optimizer", "aigc_watermark", "fast_pretreatment"):
        if name in body and not isinstance(body[name], bool):
            return name
    if "fast_pretreatment" in body and (model not in NEW or last is not None):
        return "fast_pretreatment not supported"
    return None


def _image_ok(value: object) -> bool:
    if not isinstance(value, str):
        return False
    if value.startswith(("http://", "https://")):
        return True
    match = DATA_URI.match(value)
    if match is None:
        return False
    try:
        raw = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return False
    return raw.startswith((b"\x89PNG", b"\xff\xd8\xff")) or raw[8:12] == b"WEBP"
