"""A real Runway-compatible HTTP server on 127.0.0.1 for tests. It speaks Runway's public
API (version 2024-11-06) as its SDKs and docs describe it: bearer key and
X-Runway-Version required, `POST /v1/image_to_video` and `/v1/text_to_video` bodies
validated per model with zod-shaped 400 answers, tasks in `GET /v1/tasks/{id}` going
PENDING -> RUNNING (progress 0..1) -> SUCCEEDED with signed output URLs on its own
"CDN" path, and `DELETE /v1/tasks/{id}`.

Its rules are written out here on their own, not imported from the provider, so the
provider's conversion is checked against an independent statement of the API.

It runs on its own thread and loop, like tests/fakes/openai_upstream.py.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from aiohttp import web

from tests.fakes.faults import Faults
from tests.fakes.threaded_server import ThreadedServer

API_VERSIONS = {"2024-11-06"}
DOC_URL = "https://docs.dev.runwayml.com/api"
GEN4_RATIOS = ["1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"]
VEO_RATIOS = ["1280:720", "720:1280", "1080:1920", "1920:1080"]
GEN45 = list(range(2, 11))


@dataclass(frozen=True)
class Schema:
    """One model on one endpoint: allowed ratios and durations, the other fields it
    takes, which are required, and promptImage positions."""
    ratios: list[str]
    durations: list[int]
    fields: frozenset[str]
    required: frozenset[str]
    positions: tuple[str, ...] = ("first",)


def _schema(ratios: list[str], durations: list[int], extra: set[str], required: set[str],
            positions: tuple[str, ...] = ("first",), image: bool = True) -> Schema:
    base = {"model", "promptText", "ratio", "duration"} | ({"promptImage"} if image else set())
    return Schema(ratios, durations, frozenset(base | extra), frozenset({"model"} | required), positions)


IMAGE_TO_VIDEO = {
    "gen4_turbo": _schema(GEN4_RATIOS, [5, 10], {"seed", "contentModeration"}, {"promptImage", "ratio"}),
    "gen4.5": _schema(GEN4_RATIOS, GEN45, {"seed", "contentModeration"},
                      {"promptImage", "ratio", "duration", "promptText"}),
    "veo3": _schema(VEO_RATIOS, [8], set(), {"promptImage", "ratio", "duration"}),
    "veo3.1": _schema(VEO_RATIOS, [4, 6, 8], {"audio", "negativePrompt"}, {"promptImage", "ratio"},
                      ("first", "last")),
    "veo3.1_fast": _schema(VEO_RATIOS, [4, 6, 8], {"audio", "negativePrompt"}, {"promptImage", "ratio"},
                           ("first", "last")),
}
TEXT_TO_VIDEO = {
    "gen4.5": _schema(["1280:720", "720:1280"], GEN45, {"seed", "contentModeration"},
                      {"promptText", "ratio", "duration"}, image=False),
    "veo3": _schema(VEO_RATIOS, [8], set(), {"promptText", "ratio", "duration"}, image=False),
    "veo3.1": _schema(VEO_RATIOS, [4, 6, 8], {"audio", "negativePrompt"}, {"promptText", "ratio"},
                      image=False),
    "veo3.1_fast": _schema(VEO_RATIOS, [4, 6, 8], {"audio", "negativePrompt"}, {"promptText", "ratio"},
                           image=False),
}
DATA_URI = re.compile(r"^data:image/(jpeg|jpg|png|webp);base64,(.*)$", re.DOTALL)


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class TaskPlan:
    """How a task created from now on behaves. It ends after `polls` GETs (the first
    answers PENDING, then RUNNING with growing progress), or `seconds` after creation
    if set. It then SUCCEEDS, or FAILS with `failure`/`failure_code` if given."""
    polls: int = 3
    seconds: float | None = None
    failure: str | None = None
    failure_code: str | None = None
    never_finish: bool = False
    throttled: bool = False      # answer THROTTLED instead of PENDING while queued

    @classmethod
    def moderated(cls) -> "TaskPlan":
        return cls(polls=1, failure="Your prompt did not pass our content moderation. Please try a "
                                    "different prompt.", failure_code="SAFETY.INPUT.TEXT")


@dataclass
class Task:
    id: str
    created: datetime
    started: float               # time.monotonic() at creation
    body: dict
    plan: TaskPlan
    polls: int = 0
    cancelled: bool = False
    output_name: str = field(default_factory=lambda: f"{uuid.uuid4()}.mp4")


def _sample_video() -> tuple[bytes, bool]:
    """The MP4 the CDN serves, and whether it is only a placeholder."""
    try:
        from tests.fakes.sample_media import sample_mp4
        return sample_mp4(), False
    except ImportError:
        # server/providers/simulator/media.py (which draws the real sample) is not there
        # yet: an MP4 header and padding stand in.
        return b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2000, True


def _fake_jwt(name: str, created: datetime, generation: int) -> str:
    """A JWT-shaped `_jwt` like Runway's CDN URLs carry (HS256, with an exp). It is a
    function of the task and the URL generation only, so the CDN can recompute it."""
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()
    payload = {"keyHash": hashlib.sha256(name.encode()).hexdigest()[:16], "bucket": "runway-task-artifacts",
               "stage": "prod", "exp": int(created.timestamp()) + 86400 + generation}
    unsigned = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}"
    signature = base64.urlsafe_b64encode(hashlib.sha256(unsigned.encode()).digest()).rstrip(b"=").decode()
    return f"{unsigned}.{signature}"


class FakeRunway:
    def __init__(self, api_key: str = "key_" + "ab12" * 32) -> None:
        self.api_key = api_key
        self.received: list[Received] = []
        self.tasks: dict[str, Task] = {}
        self.plan = TaskPlan()
        self.video, self.video_is_placeholder = _sample_video()
        self._injected: list[tuple[int, dict]] = []   # answers for the next API calls
        self._url_generation = 0                     # bumped to expire every output URL
        # where a finished task says its video is: the URL it would give -> the one it gives
        self.output_url_for: Callable[[str], str] | None = None
        self.cdn_redirect: str | None = None         # the CDN answers 302 to this URL instead
        self.port = 0
        self.faults = Faults()  # tests/fakes/faults.py: what goes wrong, per path
        self._server = ThreadedServer(self._app)

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeRunway":
        self.port = self._server.start()
        return self

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=20 * 1024 * 1024, middlewares=[self.faults.middleware])
        app.router.add_post("/v1/image_to_video", self._image_to_video)
        app.router.add_post("/v1/text_to_video", self._text_to_video)
        app.router.add_get("/v1/tasks/{id}", self._get_task)
        app.router.add_delete("/v1/tasks/{id}", self._delete_task)
        app.router.add_get("/cdn/{name}", self._cdn)
        app.router.add_get("/v1/organization", self._organization)
        return app

    def stop(self) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # test controls -------------------------------------------------------------------------

    def rate_limit(self, times: int) -> None:
        """The next `times` API calls answer 429."""
        self.inject(429, {"error": "You have exceeded the rate limit. Please try again later."}, times)

    def inject(self, status: int, body: dict, times: int = 1) -> None:
        self._injected.extend([(status, body)] * times)

    def expire_outputs(self) -> None:
        """Every output URL handed out so far stops working, as Runway's do after 24-48 h."""
        self._url_generation += 1

    def reset(self) -> None:
        self.received.clear()
        self._injected.clear()
        self.plan = TaskPlan()

    # Runway's API ---------------------------------------------------------------------------

    async def _gate(self, request: web.Request, body: Any = None) -> web.Response | None:
        self.received.append(Received(request.method, request.path, request.query_string,
                                      dict(request.headers), body))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": "Invalid API key. Make sure the key is correct and has "
                                               "not been disabled."}, status=401)
        version = request.headers.get("X-Runway-Version")
        if version not in API_VERSIONS:
            what = "missing" if version is None else f"not a valid version: {version[:40]}"
            return web.json_response({"error": f"The X-Runway-Version header is {what}. Set it to "
                                               f"{sorted(API_VERSIONS)[-1]}.", "docUrl": DOC_URL}, status=400)
        if self._injected:
            status, payload = self._injected.pop(0)
            return web.json_response(payload, status=status)
        return None

    async def _image_to_video(self, request: web.Request) -> web.Response:
        return await self._create(request, IMAGE_TO_VIDEO)

    async def _text_to_video(self, request: web.Request) -> web.Response:
        return await self._create(request, TEXT_TO_VIDEO)

    async def _create(self, request: web.Request, schemas: dict[str, Schema]) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if (denied := await self._gate(request, body)) is not None:
            return denied
        if body is None:
            return web.json_response({"error": "Invalid JSON body.", "docUrl": DOC_URL}, status=400)
        issues = validate(body, schemas)
        if issues:
            return web.json_response({"error": "Validation of body failed", "issues": issues,
                                      "docUrl": DOC_URL}, status=400)
        task = Task(str(uuid.uuid4()), datetime.now(timezone.utc), time.monotonic(), body, self.plan)
        self.tasks[task.id] = task
        return web.json_response({"id": task.id})

    async def _organization(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        return web.json_response({"creditBalance": 1000, "tier": {"maxMonthlyCreditSpend": 10000, "models": {}},
                                  "usage": {"models": {}}})

    async def _get_task(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        task = self.tasks.get(request.match_info["id"])
        if task is None or task.cancelled:
            return web.json_response({"error": "Task not found."}, status=404)
        task.polls += 1
        return web.json_response(self._describe(task))

    async def _delete_task(self, request: web.Request) -> web.Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        task = self.tasks.get(request.match_info["id"])
        if task is None or task.cancelled:
            return web.json_response({"error": "Task not found."}, status=404)
        # Running tasks are cancelled, others deleted: either way it cannot be fetched again.
        task.cancelled = True
        return web.Response(status=204)

    def _describe(self, task: Task) -> dict:
        plan = task.plan
        answer: dict = {"id": task.id, "createdAt": task.created.isoformat(timespec="milliseconds")
                        .replace("+00:00", "Z")}
        if plan.seconds is not None:
            fraction = (time.monotonic() - task.started) / plan.seconds if plan.seconds > 0 else 1.0
            queued = fraction < 0.1
        else:
            fraction = (task.polls - 1) / max(plan.polls - 1, 1) if plan.polls > 1 else 1.0
            queued = task.polls == 1 and plan.polls > 1
        if plan.never_finish:
            fraction = min(fraction, 0.5)
        if queued:
            return answer | {"status": "THROTTLED" if plan.throttled else "PENDING"}
        if fraction < 1.0 or plan.never_finish:
            return answer | {"status": "RUNNING", "progress": round(max(fraction, 0.01), 2)}
        if plan.failure or plan.failure_code:
            return answer | {"status": "FAILED", "failure": plan.failure or "An unexpected error occurred.",
                             "failureCode": plan.failure_code or "INTERNAL"}
        return answer | {"status": "SUCCEEDED", "output": [self.output_url(task)]}

    def output_url(self, task: Task) -> str:
        token = _fake_jwt(task.output_name, task.created, self._url_generation)
        url = f"{self.base_url}/cdn/{task.output_name}?_jwt={token}"
        return self.output_url_for(url) if self.output_url_for else url

    def cdn_requests(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/cdn/")]

    async def _cdn(self, request: web.Request) -> web.Response:
        # The CDN is not the API: a signed URL, no bearer key and no version header.
        self.received.append(Received(request.method, request.path, request.query_string,
                                      dict(request.headers), None))
        if self.cdn_redirect is not None:
            raise web.HTTPFound(self.cdn_redirect)
        name = request.match_info["name"]
        task = next((t for t in self.tasks.values() if t.output_name == name and not t.cancelled), None)
        if task is None or request.query.get("_jwt") != _fake_jwt(name, task.created, self._url_generation):
            return web.Response(status=403, content_type="application/xml",
                                text='<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied'
                                     '</Code><Message>Access denied</Message></Error>')
        return web.Response(body=self.video, content_type="video/mp4")


# -- body validation, as zod answers it ----------------------------------------------------

def _issue(code: str, path: list, message: str, **extra: Any) -> dict:
    return {"code": code, **extra, "path": path, "message": message}


def validate(body: Any, schemas: dict[str, Schema]) -> list[dict]:
    if not isinstance(body, dict):
        return [_issue("invalid_type", [], "Invalid input: expected object", expected="object")]
    model = body.get("model")
    if not isinstance(model, str):
        return [_issue("invalid_type", ["model"], "Invalid input: expected string, received undefined",
                       expected="string"),
                _issue("invalid_union", ["model"], "Invalid input", errors=[], note="No matching discriminator",
                       discriminator="model")]
    schema = schemas.get(model)
    if schema is None:
        return [_issue("invalid_union", ["model"], "Invalid input", errors=[], note="No matching discriminator",
                       discriminator="model")]
    issues: list[dict] = []
    for name in sorted(schema.required - body.keys()):
        issues.append(_issue("invalid_type", [name], "Invalid input: expected "
                             f"{'number' if name == 'duration' else 'string'}, received undefined"))
    extra = sorted(body.keys() - schema.fields)
    if extra:
        issues.append(_issue("unrecognized_keys", [], "Unrecognized key" + ("s" if len(extra) > 1 else "") +
                             ": " + ", ".join(f'"{k}"' for k in extra), keys=extra))
    if "ratio" in body and body["ratio"] not in schema.ratios:
        issues.append(_issue("invalid_value", ["ratio"], "Invalid option: expected one of " +
                             "|".join(f"'{r}'" for r in schema.ratios), values=schema.ratios))
    if "duration" in body:
        duration = body["duration"]
        if not isinstance(duration, int) or isinstance(duration, bool):
            issues.append(_issue("invalid_type", ["duration"], "Invalid input: expected int", expected="int"))
        elif duration not in schema.durations:
            issues.append(_issue("invalid_value", ["duration"], "Invalid option: expected one of " +
                                 "|".join(str(d) for d in schema.durations), values=schema.durations))
    if "promptText" in body:
        text = body["promptText"]
        if not isinstance(text, str) or not text or len(text.encode("utf-16-le")) // 2 > 1000:
            issues.append(_issue("too_big" if isinstance(text, str) and text else "too_small", ["promptText"],
                                 "promptText must be a non-empty string of at most 1000 characters"))
    if "seed" in body:
        seed = body["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 4294967295:
            issues.append(_issue("too_big", ["seed"], "Too big: expected number to be <=4294967295",
                                 maximum=4294967295, origin="number"))
    if "contentModeration" in body:
        value = body["contentModeration"]
        if not isinstance(value, dict) or not set(value) <= {"publicFigureThreshold"} \
                or value.get("publicFigureThreshold", "auto") not in ("auto", "low"):
            issues.append(_issue("invalid_value", ["contentModeration", "publicFigureThreshold"],
                                 "Invalid option: expected one of 'auto'|'low'", values=["auto", "low"]))
    if "audio" in body and not isinstance(body["audio"], bool):
        issues.append(_issue("invalid_type", ["audio"], "Invalid input: expected boolean", expected="boolean"))
    if "promptImage" in body:
        issues.extend(_image_issues(body["promptImage"], schema))
    return issues


def _image_issues(value: Any, schema: Schema) -> list[dict]:
    if isinstance(value, str):
        problem = _asset_problem(value)
        return [_issue("custom", ["promptImage"], problem)] if problem else []
    if not isinstance(value, list) or not value:
        return [_issue("invalid_union", ["promptImage"], "Invalid input")]
    issues = []
    for i, frame in enumerate(value):
        if not isinstance(frame, dict) or not isinstance(frame.get("uri"), str):
            issues.append(_issue("invalid_type", ["promptImage", i, "uri"], "Invalid input: expected string"))
            continue
        if frame.get("position") not in schema.positions:
            issues.append(_issue("invalid_value", ["promptImage", i, "position"], "Invalid option: expected "
                                 "one of " + "|".join(f"'{p}'" for p in schema.positions)))
        problem = _asset_problem(frame["uri"])
        if problem:
            issues.append(_issue("custom", ["promptImage", i, "uri"], problem))
    return issues


def _asset_problem(uri: str) -> str | None:
    """Runway's asset checks that need no network: scheme, and a data URI's content."""
    if uri.startswith(("https://", "runway://")):
        return None  # Runway would fetch it; the fake has no internet to do so
    if uri.startswith("http://"):
        return "Only HTTPS URLs are allowed."
    match = DATA_URI.match(uri)
    if not match:
        return "Invalid data URI." if uri.startswith("data:") else "Invalid asset URI."
    try:
        raw = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return "Invalid data URI."
    if not (raw.startswith(b"\x89PNG\r\n\x1a\n") or raw.startswith(b"\xff\xd8\xff")
            or (raw[:4] == b"RIFF" and raw[8:12] == b"WEBP")):
        return "Invalid data URI."
    return None
