"""A real Ark (Volcengine Ark / BytePlus ModelArk) content-generation server on
127.0.0.1 for tests: Bearer API keys, `POST/GET/DELETE /api/v3/contents/generations/tasks`
with Ark's request validation (model, the `content` list and its roles, ratio, duration,
resolution, known fields only), its error answers (`{"error": {"code", "message",
"param", "type"}}`), tasks walking queued -> running -> succeeded (or failed, cancelled),
token usage on success, and the finished MP4 on a signed storage URL whose query must
come back verbatim. It can be told to fail, moderate, never finish, hold a task queued
or running, or rate limit. Every request is recorded.

It runs on its own thread and loop, like tests/fakes/kling.py."""
from __future__ import annotations

import base64
import binascii
import itertools
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from tests.fakes.faults import Faults
from tests.fakes.threaded_server import ThreadedServer

TASKS = "/api/v3/contents/generations/tasks"
FIELDS = {"model", "content", "callback_url", "return_last_frame", "service_tier", "execution_expires_after",
          "generate_audio", "draft", "camera_fixed", "watermark", "seed", "resolution", "ratio", "duration",
          "frames", "safety_identifier", "priority", "tools"}
RATIOS = {"16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive"}
ROLES = {"first_frame", "last_frame", "reference_image"}
# family -> (durations, resolutions, takes images, takes audio)
FAMILIES = {
    "seedance-2-0": (range(4, 16), {"480p", "720p", "1080p"}, True, True),
    "seedance-2-0-fast": (range(4, 16), {"480p", "720p"}, True, True),
    "seedance-1-5-pro": (range(4, 13), {"480p", "720p", "1080p"}, True, True),
    "seedance-1-0-pro": (range(2, 13), {"480p", "720p", "1080p"}, True, False),
    "seedance-1-0-pro-fast": (range(2, 13), {"480p", "720p", "1080p"}, True, False),
    "seedance-1-0-lite-t2v": (range(2, 13), {"480p", "720p", "1080p"}, False, False),
    "seedance-1-0-lite-i2v": (range(2, 13), {"480p", "720p", "1080p"}, True, False),
}
MODERATED = ("OutputVideoSensitiveContentDetected",
             "The request failed because the output video may contain sensitive information.")
TEXT_BLOCKED = ("InputTextSensitiveContentDetected",
                "The request failed because the input text may contain sensitive information.")
DATA_URI = re.compile(r"^data:image/(jpeg|jpg|png|webp|bmp|tiff|gif|heic|heif);base64,(.+)$", re.S)
SIZE = {("720p", "16:9"): (1248, 704), ("480p", "16:9"): (864, 480), ("1080p", "16:9"): (1920, 1088)}


def family(model: str) -> str:
    return re.sub(r"-\d{6}$", "", re.sub(r"^(doubao-|dreamina-)", "", model))


def video_bytes() -> bytes:
    from tests.fakes.sample_media import sample_mp4
    return sample_mp4("fake seedance video")


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class Task:
    id: str
    body: dict
    created_at: int
    updated_at: int
    polls: int = 0
    status: str = "queued"
    error: dict | None = None
    signature: str = field(default_factory=lambda: uuid.uuid4().hex)


class FakeSeedance:
    def __init__(self, key: str = "ark-fake0key0000-0000-0000-0000-000000000001") -> None:
        self.key = key
        self.received: list[Received] = []
        self.tasks: dict[str, Task] = {}
        self.polls_per_stage = 1            # polls seen in each of queued and running
        self.fail_with: str | None = None   # the task ends failed with this message
        self.moderate = False               # the task ends failed for content safety
        self.never_finish = False           # stays running forever
        self.hold: str | None = None        # "queued" or "running": the task stays there until released
        self.block_at_submit = False        # 400 InputTextSensitiveContentDetected at submit
        self.reject_next: tuple[int, dict] | None = None   # the next submission gets this answer
        self.rate_limit_next = 0            # the next N API calls get 429
        self.rate_limited = 0               # how many 429s were served
        self.video = video_bytes()
        self.video_url_for: Callable[[str], str] | None = None  # the URL it would give -> the one it gives
        self._ids = itertools.count(1)
        self.port = 0
        self.faults = Faults()  # tests/fakes/faults.py: what goes wrong, per path
        self._server = ThreadedServer(self._app)

    def start(self) -> "FakeSeedance":
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self.faults.middleware])
        app.router.add_post(TASKS, self._create)
        app.router.add_get(TASKS, self._list)
        app.router.add_get(TASKS + "/{id}", self._get)
        app.router.add_delete(TASKS + "/{id}", self._delete)
        app.router.add_get("/tos/{name}", self._storage)
        return app

    # Ark's answers ------------------------------------------------------------------------

    @staticmethod
    def error(status: int, code: str, message: str, param: str = "", type_: str = "BadRequest") -> web.Response:
        request_id = uuid.uuid4().hex
        return web.json_response({"error": {"code": code, "message": f"{message} Request id: {request_id}",
                                            "param": param, "type": type_}}, status=status)

    def _invalid(self, param: str, why: str = "is not valid") -> web.Response:
        return self.error(400, "InvalidParameter", f"The parameter `{param}` specified in the request {why}.",
                          param)

    async def _gate(self, request: web.Request, body: Any) -> web.Response | None:
        self.received.append(Received(request.method, request.path, request.query_string, dict(request.headers),
                                      body))
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return self.error(401, "AuthenticationError",
                              "The API key or AK/SK in the request is missing or invalid.", type_="Unauthorized")
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            self.rate_limited += 1
            return self.error(429, "RateLimitExceeded.EndpointRPMExceeded",
                              "The request has exceeded the rate limit.", type_="TooManyRequests")
        return None

    # endpoints ----------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if (denied := await self._gate(request, body)) is not None:
            return denied
        if self.reject_next is not None:
            (status, answer), self.reject_next = self.reject_next, None
            return web.json_response(answer, status=status)
        if not isinstance(body, dict):
            return self._invalid("body", "is not a JSON object")
        if (problem := self._validate(body)) is not None:
            return problem
        if self.block_at_submit:
            return self.error(400, *TEXT_BLOCKED)
        now = int(time.time())
        task = Task(f"cgt-{time.strftime('%Y%m%d%H%M%S')}-{next(self._ids):05d}", body, now, now)
        self.tasks[task.id] = task
        return web.json_response({"id": task.id})

    def _validate(self, body: dict) -> web.Response | None:
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return self._invalid(unknown[0], "is not supported")
        model = body.get("model")
        spec = FAMILIES.get(family(model)) if isinstance(model, str) else None
        if spec is None:
            return self.error(404, "InvalidEndpointOrModel.NotFound",
                              f"The model or endpoint {model} does not exist or you do not have access to it.",
                              type_="NotFound")
        durations, resolutions, images, audio = spec
        content = body.get("content")
        if not isinstance(content, list) or not content:
            return self.error(400, "MissingParameter", "The request failed because it is missing `content`.",
                              "content")
        roles = []
        for i, item in enumerate(content):
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text":
                if not isinstance(item.get("text"), str) or set(item) != {"type", "text"}:
                    return self._invalid(f"content[{i}].text")
            elif kind == "image_url":
                if not images:
                    return self._invalid(f"content[{i}]", "is not supported by this model")
                url = (item.get("image_url") or {}).get("url") if isinstance(item.get("image_url"), dict) else None
                if not self._image_ok(url):
                    return self._invalid(f"content[{i}].image_url.url")
                if item.get("role", "first_frame") not in ROLES:
                    return self._invalid(f"content[{i}].role")
                roles.append(item.get("role", "first_frame"))
            else:
                return self._invalid(f"content[{i}].type")
        if "reference_image" in roles and ("first_frame" in roles or "last_frame" in roles):
            return self._invalid("content", "is not valid: first/last frame content cannot be mixed with "
                                            "reference media content")
        if "last_frame" in roles and "first_frame" not in roles:
            return self._invalid("content", "is not valid: a last frame needs a first frame")
        if family(model) == "seedance-1-0-lite-i2v" and not roles:
            return self._invalid("content", "is not valid: an image is required")
        if body.get("ratio", "16:9") not in RATIOS:
            return self._invalid("ratio")
        duration = body.get("duration", 5)
        if isinstance(duration, bool) or not isinstance(duration, int) or duration not in durations:
            return self._invalid("duration")
        if body.get("resolution", "720p") not in resolutions:
            return self._invalid("resolution")
        seed = body.get("seed", -1)
        if isinstance(seed, bool) or not isinstance(seed, int) or not -1 <= seed <= 2**32 - 1:
            return self._invalid("seed")
        for flag in ("watermark", "camera_fixed", "generate_audio", "return_last_frame", "draft"):
            if flag in body and not isinstance(body[flag], bool):
                return self._invalid(flag)
        if "generate_audio" in body and not audio:
            return self._invalid("generate_audio", "is not supported by this model")
        return None

    @staticmethod
    def _image_ok(url: Any) -> bool:
        if not isinstance(url, str):
            return False
        if url.startswith(("http://", "https://")):
            return True
        match = DATA_URI.match(url)  # bare base64 is refused: Ark takes the data: URI form
        if match is None:
            return False
        try:
            return bool(base64.b64decode(match.group(2), validate=True))
        except (binascii.Error, ValueError):
            return False

    async def _get(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request, None)) is not None:
            return denied
        task = self.tasks.get(request.match_info["id"])
        if task is None:
            return self.error(404, "ResourceNotFound", "The specified task is not found.", type_="NotFound")
        task.polls += 1
        self._advance(task)
        return web.json_response(self._task_json(task))

    async def _list(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request, None)) is not None:
            return denied
        size = int(request.query.get("page_size", "10"))
        items = [self._task_json(t) for t in list(self.tasks.values())[:size]]
        return web.json_response({"items": items, "total": len(self.tasks)})

    async def _delete(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request, None)) is not None:
            return denied
        task = self.tasks.get(request.match_info["id"])
        if task is None:
            return self.error(404, "ResourceNotFound", "The specified task is not found.", type_="NotFound")
        if task.status == "queued":
            task.status, task.updated_at = "cancelled", int(time.time())
            return web.json_response({})
        if task.status in ("running", "cancelled"):
            return self.error(400, "InvalidParameter",
                              f"The task can not be cancelled or deleted in status {task.status}.", "id")
        del self.tasks[task.id]  # a finished task's record is deleted
        return web.json_response({})

    def release(self) -> None:
        self.hold = None

    def _advance(self, task: Task) -> None:
        if task.status in ("succeeded", "failed", "cancelled", "expired"):
            return
        if self.hold == task.status:
            return
        stage = (task.polls - 1) // self.polls_per_stage  # the first poll still sees it queued
        new = "queued" if stage < 1 else "running" if stage < 2 or self.never_finish or self.hold == "running" \
            else "failed" if self.fail_with is not None or self.moderate else "succeeded"
        if new == "queued" and task.status == "running":
            return
        if new != task.status:
            task.status, task.updated_at = new, int(time.time())
            if new == "failed":
                task.error = ({"code": MODERATED[0], "message": MODERATED[1]} if self.moderate else
                              {"code": "InternalServiceError", "message": self.fail_with})

    def tokens(self, task: Task) -> int:
        """Ark's count: width x height x fps x seconds / 1024."""
        body = task.body
        width, height = SIZE.get((body.get("resolution", "720p"), body.get("ratio", "16:9")), (1248, 704))
        return width * height * 24 * body.get("duration", 5) // 1024

    def video_url(self, task: Task) -> str:
        url = (f"{self.base_url}/tos/{task.id}.mp4?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Expires=86400"
               f"&X-Tos-Signature={task.signature}")
        return self.video_url_for(url) if self.video_url_for else url

    def _task_json(self, task: Task) -> dict:
        body = task.body
        data: dict = {"id": task.id, "model": body.get("model"), "status": task.status,
                      "created_at": task.created_at, "updated_at": task.updated_at,
                      "seed": body.get("seed", 58944), "resolution": body.get("resolution", "720p"),
                      "ratio": body.get("ratio", "16:9"), "duration": body.get("duration", 5),
                      "framespersecond": 24, "service_tier": body.get("service_tier", "default"),
                      "execution_expires_after": body.get("execution_expires_after", 172800)}
        if task.status == "succeeded":
            data["content"] = {"video_url": self.video_url(task)}
            tokens = self.tokens(task)
            data["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
        if task.error is not None:
            data["error"] = task.error
        return data

    # the signed storage URL ------------------------------------------------------------------

    def downloads(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/tos/")]

    async def _storage(self, request: web.Request) -> web.Response:
        # Public but signed: no Authorization, and the signature must come back as given.
        self.received.append(Received(request.method, request.path, request.query_string, dict(request.headers),
                                      None))
        name = request.match_info["name"]
        task = self.tasks.get(name.removesuffix(".mp4"))
        if task is None or task.status != "succeeded":
            return web.Response(status=404, text="NoSuchKey")
        if request.query.get("X-Tos-Signature") != task.signature or "X-Tos-Expires" not in request.query:
            return web.Response(status=403, text="SignatureDoesNotMatch")
        return web.Response(body=self.video, content_type="video/mp4")

