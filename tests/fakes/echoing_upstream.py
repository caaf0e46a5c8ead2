"""A hostile upstream on 127.0.0.1 for the secret-leak tests: it speaks the public
error shapes of OpenAI, Kling or Runway, and puts its own credentials and address
into every field of every error it sends, each field a different form: the
Authorization value it received (Kling's JWT included), the key as configured, in
upper and lower case and in parts, base-64, percent-encoded, the Host header,
`host:port` without a scheme, the full URL it was called on, plain, upper-cased,
percent-encoded and JSON-escaped.

Which error a request gets is chosen by the client: the text `shape=NAME` in the
chat message, image prompt or video prompt (see SHAPES). A video created with a
`poll-...` shape is accepted and then fails when polled, in the named way; an OpenAI
video created with `poll-completed` finishes (a real MP4) so it can be remixed, and its
remix fails with the shape in the remix prompt.
"""
from __future__ import annotations

import base64
import itertools
import re
import uuid
from urllib.parse import quote

import orjson
from aiohttp import web

from tests.fakes.threaded_server import ThreadedServer

SHAPE = re.compile(r"shape=([a-z0-9_-]+)")

# Per provider type: the shapes a submit (or chat / image call) can fail with, and the
# poll failures a created video can meet. Names say the status and the body's form.
SHAPES = {
    "openai": ["json-400", "json-409", "json-413", "json-422", "json-404", "json-405", "string-400",
               "text-400", "json-401", "json-403", "json-429", "json-500", "json-503"],
    "kling": ["env-400-1201", "env-400-1200", "env-400-1301", "env-429-1102", "env-429-1303",
              "env-403-1103", "env-500-5000", "env-400-none", "env-200-1201", "env-404-none",
              "env-405-none"],
    "runway": ["rw-400-issues", "rw-422-issues", "rw-400-credits", "rw-404", "rw-405", "rw-403", "rw-500"],
}
STREAM_SHAPES = ["midstream", "first-event"]   # openai chat streams: an error event in a 200 stream
POLL_SHAPES = {
    "openai": ["poll-failed", "poll-unknown-status", "poll-json-400", "poll-json-404"],
    "kling": ["poll-failed", "poll-env-400-1201", "poll-env-404-1203"],
    "runway": ["poll-failed", "poll-rw-400-issues", "poll-rw-404"],
}


class EchoingUpstream:
    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key                      # the channel's key, as the real provider would know it
        self.seen_credentials: set[str] = set()  # every Authorization value received
        self._server = ThreadedServer(self._app)
        self._tasks: dict[str, str] = {}    # video id -> its poll shape
        self._forms = itertools.count()
        self.port = 0

    def start(self) -> "EchoingUpstream":
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}" + ("/v1" if self.kind == "openai" else "")

    # -- what it echoes -------------------------------------------------------------------

    def echoes(self, request: web.Request) -> list[str]:
        """Every form of this upstream's secrets, for one request."""
        auth = request.headers.get("Authorization", "")
        self.seen_credentials.add(auth)
        credential = auth.partition(" ")[2]
        url, host = str(request.url), request.headers.get("Host", "")
        parts = [p for p in self.key.split(":") if p] if ":" in self.key else []
        return [auth, credential, credential.upper(), self.key, self.key.upper(), self.key.lower(),
                *parts, *(p.upper() for p in parts), quote(self.key, safe=""),
                base64.b64encode(self.key.encode()).decode(), host, f"Host: {host}", url, url.upper(),
                quote(url, safe=""), url.replace("/", "\\/"), self.base_url, host.upper(),
                quote(host, safe=""), self.key[3:19], self.key[-16:]]

    def _each(self, request: web.Request) -> dict[str, str]:
        """Field name -> one echo; every echo lands in some field across requests."""
        forms = self.echoes(request)
        start = next(self._forms)
        pick = lambda i: forms[(start + i) % len(forms)]  # noqa: E731
        return {"message": "Failed calling " + " | ".join(forms), "type": pick(0), "code": pick(1),
                "param": pick(2), "extra": pick(3)}

    # -- app ------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        if self.kind == "openai":
            app.router.add_post("/v1/chat/completions", self._openai_chat)
            app.router.add_post("/v1/images/generations", self._openai_plain)
            app.router.add_post("/v1/videos", self._openai_video_create)
            app.router.add_get("/v1/videos/{id}", self._openai_video_get)
            app.router.add_get("/v1/videos/{id}/content", self._openai_video_content)
            app.router.add_post("/v1/videos/{id}/remix", self._openai_plain)
        elif self.kind == "kling":
            app.router.add_post("/v1/videos/{endpoint}", self._kling_create)
            app.router.add_get("/v1/videos/{endpoint}/{id}", self._kling_get)
        else:
            app.router.add_post("/v1/text_to_video", self._runway_create)
            app.router.add_post("/v1/image_to_video", self._runway_create)
            app.router.add_get("/v1/tasks/{id}", self._runway_get)
        return app

    @staticmethod
    async def _shape(request: web.Request) -> str:
        text = (await request.read()).decode("utf-8", "replace")
        match = SHAPE.search(text)
        return match.group(1) if match else ""

    # -- OpenAI ---------------------------------------------------------------------------

    def _openai_error(self, request: web.Request, shape: str) -> web.Response:
        form, status = shape.split("-")[-2], int(shape.split("-")[-1])
        echo = self._each(request)
        if form == "text":
            return web.Response(status=status, text=echo["message"])
        if form == "string":
            return web.json_response({"error": echo["message"], "detail": echo["extra"]}, status=status)
        return web.json_response({"error": {k: echo[k] for k in ("message", "type", "param", "code")},
                                  "request": echo["extra"]}, status=status)

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        shape = await self._shape(request)
        if shape not in STREAM_SHAPES:
            return self._openai_error(request, shape)
        echo = self._each(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if shape == "midstream":
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        error = {k: echo[k] for k in ("message", "type", "param", "code")}
        await response.write(b"data: " + orjson.dumps({"error": error}) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _openai_plain(self, request: web.Request) -> web.Response:
        return self._openai_error(request, await self._shape(request))

    async def _openai_video_create(self, request: web.Request) -> web.Response:
        shape = await self._shape(request)
        if not shape.startswith("poll-"):
            return self._openai_error(request, shape)
        video_id = f"video_{uuid.uuid4().hex}"
        self._tasks[video_id] = shape
        return web.json_response({"id": video_id, "object": "video", "status": "queued", "progress": 0,
                                  "created_at": 1700000000, "model": "sora-2", "seconds": "4",
                                  "size": "720x1280"})

    async def _openai_video_get(self, request: web.Request) -> web.Response:
        shape = self._tasks.get(request.match_info["id"], "poll-json-404")
        if shape.startswith("poll-json-"):
            return self._openai_error(request, shape[len("poll-"):])
        if shape == "poll-completed":
            return web.json_response({"id": request.match_info["id"], "object": "video", "status": "completed",
                                      "progress": 100, "created_at": 1700000000, "completed_at": 1700000100})
        echo = self._each(request)
        status = "failed" if shape == "poll-failed" else echo["type"]
        return web.json_response({"id": request.match_info["id"], "object": "video", "status": status,
                                  "progress": 50, "created_at": 1700000000,
                                  "error": {"code": echo["code"], "message": echo["message"]}})

    async def _openai_video_content(self, request: web.Request) -> web.Response:
        if request.query.get("variant", "video") != "video":  # no thumbnail: st-ai makes its own
            return self._openai_error(request, "json-404")
        from tests.fakes.sample_media import sample_mp4
        return web.Response(body=sample_mp4("echoing upstream"), content_type="video/mp4")

    # -- Kling ----------------------------------------------------------------------------

    def _kling_error(self, request: web.Request, shape: str) -> web.Response:
        _, status, code = shape.split("-")[-3:]
        echo = self._each(request)
        return web.json_response({"code": None if code == "none" else int(code), "message": echo["message"],
                                  "request_id": echo["extra"], "data": {"detail": echo["param"]}},
                                 status=int(status))

    async def _kling_create(self, request: web.Request) -> web.Response:
        shape = await self._shape(request)
        if not shape.startswith("poll-"):
            return self._kling_error(request, shape)
        task_id = uuid.uuid4().hex
        self._tasks[task_id] = shape
        return web.json_response({"code": 0, "message": "SUCCEED", "request_id": "r",
                                  "data": {"task_id": task_id, "task_status": "submitted",
                                           "created_at": 1700000000000, "updated_at": 1700000000000}})

    async def _kling_get(self, request: web.Request) -> web.Response:
        shape = self._tasks.get(request.match_info["id"], "poll-env-404-1203")
        if shape != "poll-failed":
            return self._kling_error(request, shape)
        echo = self._each(request)
        return web.json_response({"code": 0, "message": "SUCCEED", "request_id": echo["extra"],
                                  "data": {"task_id": request.match_info["id"], "task_status": "failed",
                                           "task_status_msg": echo["message"], "created_at": 1700000000000,
                                           "updated_at": 1700000000000}})

    # -- Runway ---------------------------------------------------------------------------

    def _runway_error(self, request: web.Request, shape: str) -> web.Response:
        parts = shape.split("-")
        status = int(parts[parts.index("rw") + 1])
        echo = self._each(request)
        body: dict = {"error": echo["message"], "docUrl": echo["extra"]}
        if shape.endswith("issues"):
            body["issues"] = [{"code": echo["code"], "path": [echo["param"], 0], "message": echo["message"]},
                              {"code": "custom", "path": ["promptText"], "message": echo["type"]}]
        if shape.endswith("credits"):
            body["error"] = "You do not have enough credits. " + echo["message"]
        return web.json_response(body, status=status)

    async def _runway_create(self, request: web.Request) -> web.Response:
        shape = await self._shape(request)
        if not shape.startswith("poll-"):
            return self._runway_error(request, shape)
        task_id = str(uuid.uuid4())
        self._tasks[task_id] = shape
        return web.json_response({"id": task_id})

    async def _runway_get(self, request: web.Request) -> web.Response:
        shape = self._tasks.get(request.match_info["id"], "poll-rw-404")
        if shape != "poll-failed":
            return self._runway_error(request, shape)
        echo = self._each(request)
        return web.json_response({"id": request.match_info["id"], "status": "FAILED",
                                  "createdAt": "2024-06-27T19:49:32.334Z",
                                  "failure": echo["message"], "failureCode": echo["code"]})
