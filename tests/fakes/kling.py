"""A real Kling-API HTTP server on 127.0.0.1 for tests. It checks the JWT the way
Kling documents it (HS256 with the secret key, iss = access key, exp, nbf) with its
own HMAC code rather than the client's library, validates text2video/image2video
bodies, walks tasks submitted -> processing -> succeed across polls (or seconds),
serves the finished MP4 from its own /cdn/ path, and can be told to fail, block
for content safety, never finish, or rate limit. Every request is recorded.

It runs on its own thread and loop, like tests/fakes/openai_upstream.py."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import orjson
from aiohttp import web

from tests.fakes.faults import Faults
from tests.fakes.threaded_server import ThreadedServer


@dataclass(frozen=True)
class Rules:
    """What Kling's capability map allows a model (its own table, not st-ai's)."""
    durations: frozenset[str]
    modes: frozenset[str]
    sound_modes: frozenset[str] = frozenset()   # where `sound: "on"` is taken
    tail_modes: frozenset[str] = frozenset()    # where `image_tail` is taken
    tail_or_sound: bool = False                 # a last frame and sound exclude each other
    cfg_scale: bool = False                     # v2.x models take no cfg_scale
    motion_brush: bool = False


BOTH = frozenset({"std", "pro"})
MODELS = {
    "kling-v3": Rules(frozenset(str(d) for d in range(3, 16)), BOTH, BOTH, BOTH, cfg_scale=True),
    "kling-v2-6": Rules(frozenset({"5", "10"}), BOTH, frozenset({"pro"}), frozenset({"pro"}), tail_or_sound=True),
    "kling-v2-5-turbo": Rules(frozenset({"5", "10"}), frozenset({"pro"}), tail_modes=frozenset({"pro"})),
    "kling-v2-master": Rules(frozenset({"5", "10"}), BOTH),
    "kling-v1": Rules(frozenset({"5", "10"}), BOTH, tail_modes=BOTH, cfg_scale=True, motion_brush=True),
}
RETIRED = {"kling-v1-5", "kling-v1-6", "kling-v2-1", "kling-v2-1-master"}  # offline since 2026-09-15
COMMON = {"model_name", "prompt", "negative_prompt", "sound", "cfg_scale", "mode", "camera_control",
          "duration", "watermark_info", "callback_url", "external_task_id", "voice_list"}
FIELDS = {"text2video": COMMON | {"aspect_ratio"},
          "image2video": COMMON | {"image", "image_tail", "static_mask", "dynamic_masks"}}
CAMERA_TYPES = {"simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward"}
CAMERA_AXES = {"horizontal", "vertical", "pan", "tilt", "roll", "zoom"}
PNG_OR_JPEG = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
SAFETY_FAILURE = "Failure to pass the risk control system"  # as a failed task's task_status_msg

# A stand-in MP4 header for when the shared sample media cannot be made (see video_bytes).
FALLBACK_MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2000


def video_bytes() -> bytes:
    try:
        from tests.fakes.sample_media import sample_mp4
        return sample_mp4("fake kling video")
    except ImportError:
        # server.providers.simulator.media is being written elsewhere; until it
        # exists, serve bytes that only look like an MP4.
        return FALLBACK_MP4


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Task:
    endpoint: str
    task_id: str
    body: dict
    created_at: int                    # ms
    updated_at: int
    polls: int = 0
    status: str = "submitted"
    status_msg: str = ""
    external_task_id: str | None = None


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeKling:
    def __init__(self, access_key: str = "AKfake0access0key0000000000000001",
                 secret_key: str = "SKfake0secret0key0000000000000001") -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.received: list[Received] = []
        self.tasks: dict[tuple[str, str], Task] = {}
        # how a task moves: after `polls_per_stage` polls in each of submitted and
        # processing it ends; with `seconds_per_stage` set, elapsed time decides instead
        self.polls_per_stage = 1
        self.seconds_per_stage: float | None = None
        self.fail_with: str | None = None        # the task ends failed with this message instead
        self.never_finish = False                # stays processing forever
        self.block_at_submit = False             # 400 / 1301 content security at submit
        self.rate_limit_next = 0                 # the next N API calls get 429 / 1302
        self.video = video_bytes()
        # where a finished task says its video is: the URL it would give -> the one it gives
        self.video_url_for: Callable[[str], str] | None = None
        self.cdn_redirect: str | None = None     # the CDN answers 302 to this URL instead
        self._ids = itertools.count(867283741759111202)
        self.faults = Faults()  # tests/fakes/faults.py: what goes wrong, per path
        self.port = 0
        self.faults = Faults()  # tests/fakes/faults.py: what goes wrong, per path
        self._server = ThreadedServer(self._app)

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> "FakeKling":
        self.port = self._server.start()
        return self

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[self.faults.middleware])
        for endpoint in FIELDS:
            app.router.add_post(f"/v1/videos/{endpoint}", self._create)
            app.router.add_get(f"/v1/videos/{endpoint}/{{task_id}}", self._query)
        app.router.add_get("/cdn/{name}", self._cdn)
        return app

    def stop(self) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> str:
        """The channel key as st-ai takes it."""
        return f"{self.access_key}:{self.secret_key}"

    # Kling's envelope --------------------------------------------------------------------

    @staticmethod
    def _envelope(code: int, message: str, data: Any = None, status: int = 200) -> web.Response:
        body: dict = {"code": code, "message": message, "request_id": str(uuid.uuid4())}
        if data is not None:
            body["data"] = data
        return web.json_response(body, status=status)

    def _bad(self, code: int, message: str) -> web.Response:
        return self._envelope(code, message, status=400)

    def _auth_failure(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization")
        if not header:
            return self._envelope(1001, "Authorization is empty", status=401)
        if not header.startswith("Bearer ") or header.count(" ") != 1:
            return self._envelope(1002, "Authorization is invalid", status=401)
        parts = header[len("Bearer "):].split(".")
        try:
            if len(parts) != 3:
                raise ValueError
            head = orjson.loads(_b64url_decode(parts[0]))
            claims = orjson.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, binascii.Error, orjson.JSONDecodeError):
            return self._envelope(1002, "Authorization is invalid", status=401)
        expected = hmac.new(self.secret_key.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if (not isinstance(head, dict) or head.get("alg") != "HS256" or not isinstance(claims, dict)
                or not hmac.compare_digest(signature, expected) or claims.get("iss") != self.access_key):
            return self._envelope(1002, "Authorization is invalid", status=401)
        now = time.time()
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if not isinstance(exp, int) or not isinstance(nbf, int):
            return self._envelope(1002, "Authorization is invalid", status=401)
        if nbf > now:
            return self._envelope(1003, "Authorization is not yet valid", status=401)
        if exp <= now:
            return self._envelope(1004, "Authorization has expired", status=401)
        return None

    async def _gate(self, request: web.Request, body: Any) -> web.Response | None:
        self.received.append(Received(request.method, request.path, dict(request.headers), body))
        if (denied := self._auth_failure(request)) is not None:
            return denied
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            return self._envelope(1302, "The API request rate exceeds the limit", status=429)
        return None

    # endpoints ---------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        endpoint = request.path.rsplit("/", 1)[1]
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if (denied := await self._gate(request, body)) is not None:
            return denied
        if not isinstance(body, dict):
            return self._bad(1200, "Invalid request body: not a JSON object")
        if (problem := self._validate(endpoint, body)) is not None:
            return self._bad(1201, problem)
        if self.block_at_submit:
            return self._bad(1301, "Trigger the content security policy")
        external = body.get("external_task_id")
        if external is not None and any(t.external_task_id == external for t in self.tasks.values()):
            return self._bad(1201, "external_task_id already exists")
        now = int(time.time() * 1000)
        task = Task(endpoint, str(next(self._ids)), body, now, now, external_task_id=external)
        self.tasks[(endpoint, task.task_id)] = task
        return self._envelope(0, "SUCCEED", self._task_json(task))

    def _validate(self, endpoint: str, body: dict) -> str | None:
        unknown = sorted(set(body) - FIELDS[endpoint])
        if unknown:
            return f"Unsupported parameter: {unknown[0]}"
        model = body.get("model_name", "kling-v1")
        if model in RETIRED:
            return f"model_name {model} is offline, please use a newer model"
        rules = MODELS.get(model)
        if rules is None:
            return f"model_name value is invalid: {model}"
        prompt = body.get("prompt")
        if endpoint == "text2video" and (not isinstance(prompt, str) or not prompt.strip()):
            return "prompt is required"
        for name in ("prompt", "negative_prompt"):
            if body.get(name) is not None and (not isinstance(body[name], str) or len(body[name]) > 2500):
                return f"{name} must be a string of at most 2500 characters"
        if body.get("duration", "5") not in rules.durations:
            return f"duration value is invalid, must be one of: {', '.join(sorted(rules.durations, key=int))}"
        if body.get("aspect_ratio", "16:9") not in ("16:9", "9:16", "1:1"):
            return "aspect_ratio value is invalid"
        mode = body.get("mode", "std")
        if mode not in rules.modes:
            return f"mode {mode} is not supported by {model}"
        sound = body.get("sound", "off")
        if sound not in ("on", "off") or (sound == "on" and mode not in rules.sound_modes):
            return f"sound value is invalid for {model} in {mode} mode"
        if "sound" in body and not rules.sound_modes:
            return f"sound is not supported by {model}"
        if "cfg_scale" in body:
            scale = body["cfg_scale"]
            if not rules.cfg_scale:
                return f"cfg_scale is not supported by {model}"
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= 1:
                return "cfg_scale value is invalid"
        if "camera_control" in body and (problem := self._camera_problem(body["camera_control"])):
            return problem
        if "watermark_info" in body:
            info = body["watermark_info"]
            if not isinstance(info, dict) or set(info) != {"enabled"} or not isinstance(info["enabled"], bool):
                return "watermark_info value is invalid"
        if "voice_list" in body and sound != "on":
            return "voice_list requires sound on"
        if endpoint == "image2video":
            if not body.get("image") and not body.get("image_tail"):
                return "image is required"
            for name in ("image", "image_tail"):
                if body.get(name) is not None and not self._image_ok(body[name]):
                    return f"{name} is invalid: must be a URL or Base64 of a JPG/PNG without a prefix"
            if "image_tail" in body:
                if mode not in rules.tail_modes:
                    return f"image_tail is not supported by {model} in {mode} mode"
                if rules.tail_or_sound and sound == "on":
                    return "image_tail and sound cannot be used together"
                if {"camera_control", "static_mask", "dynamic_masks"} & set(body):
                    return "image_tail, motion brush and camera_control cannot be used together"
            if {"static_mask", "dynamic_masks"} & set(body) and not rules.motion_brush:
                return f"motion brush is not supported by {model}"
        return None

    @staticmethod
    def _camera_problem(value: Any) -> str | None:
        if not isinstance(value, dict) or value.get("type") not in CAMERA_TYPES:
            return "camera_control.type value is invalid"
        config = value.get("config")
        if value["type"] != "simple":
            return "camera_control.config is only for type simple" if config else None
        if not isinstance(config, dict) or set(config) - CAMERA_AXES:
            return "camera_control.config is invalid"
        moving = [v for v in config.values() if v]
        if len(moving) != 1 or any(isinstance(v, bool) or not isinstance(v, (int, float)) or abs(v) > 10
                                   for v in config.values()):
            return "camera_control.config must change exactly one axis, from -10 to 10"
        return None

    @staticmethod
    def _image_ok(value: Any) -> bool:
        if not isinstance(value, str) or not value:
            return False
        if value.startswith(("http://", "https://")):
            return True
        try:  # a data:...;base64, prefix is not base64, so it fails here, as on Kling
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return raw.startswith(PNG_OR_JPEG)

    async def _query(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request, None)) is not None:
            return denied
        endpoint = request.path.split("/")[3]
        task = self.tasks.get((endpoint, request.match_info["task_id"]))
        if task is None:
            return self._envelope(1203, "The requested resource does not exist: task", status=404)
        task.polls += 1
        self._advance(task)
        return self._envelope(0, "SUCCEED", self._task_json(task))

    def _advance(self, task: Task) -> None:
        if task.status in ("succeed", "failed"):
            return
        if self.seconds_per_stage is not None:
            stage = int((time.time() * 1000 - task.created_at) / 1000 / self.seconds_per_stage)
        else:
            stage = (task.polls - 1) // self.polls_per_stage  # the first poll still sees it submitted
        new = "submitted" if stage < 1 else "processing" if stage < 2 or self.never_finish else \
            "failed" if self.fail_with is not None else "succeed"
        if new != task.status:
            task.status = new
            task.status_msg = (self.fail_with or "") if new == "failed" else ""
            task.updated_at = int(time.time() * 1000)

    def _task_json(self, task: Task) -> dict:
        data: dict = {"task_id": task.task_id, "task_status": task.status, "task_status_msg": task.status_msg,
                      "task_info": ({"external_task_id": task.external_task_id} if task.external_task_id else {}),
                      "created_at": task.created_at, "updated_at": task.updated_at}
        if task.status == "succeed":
            data["task_result"] = {"videos": [{
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, task.task_id)),
                "url": self._video_url(f"{self.base_url}/cdn/{task.task_id}.mp4"),
                "duration": f"{int(task.body.get('duration', '5')) + 0.042:.3f}"}]}
            data["watermark_info"] = {"enabled": False}
            data["final_unit_deduction"] = "1"
        return data

    def _video_url(self, url: str) -> str:
        return self.video_url_for(url) if self.video_url_for else url

    def cdn_requests(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/cdn/")]

    async def _cdn(self, request: web.Request) -> web.Response:
        # The CDN is public: no Authorization is needed (or expected).
        self.received.append(Received(request.method, request.path, dict(request.headers), None))
        if self.cdn_redirect is not None:
            raise web.HTTPFound(self.cdn_redirect)
        name = request.match_info["name"]
        task_id = name[:-4] if name.endswith(".mp4") else None
        if task_id is None or not any(t.task_id == task_id and t.status == "succeed" for t in self.tasks.values()):
            return web.Response(status=404, text="Not Found")
        return web.Response(body=self.video, content_type="video/mp4")
