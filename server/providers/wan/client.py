"""Wan video tasks over HTTP: `POST /api/v1/services/aigc/.../video-synthesis` with
`X-DashScope-Async: enable`, then `GET /api/v1/tasks/{id}` until it ends; the finished
MP4 is fetched from the OSS URL in the task's `output.video_url` (public for 24 hours,
signed in its query string, so no key goes there). Every call goes through the shared
aiohttp session."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator
from urllib.parse import quote

import aiohttp
import orjson

from server.errors import GatewayError, invalid_request, upstream_failed
from server.providers import failures
from server.providers.interface import Prepared, TaskState, Upstream, VideoRequest
from server.providers.json_body import json_body
from server.providers.timeouts import client_timeout
from server.providers.video_shape import VideoCapabilities
from server.providers.wan import convert, errors, models
from server.safe_fetch import fetcher_for
from server.store.channels import Channel

DEFAULT_BASE_URL = "https://dashscope-intl.aliyuncs.com"  # Singapore, the international workspace
SUBMIT_SECONDS = 60.0  # a body may carry base64 images
API_SECONDS = 30.0
CHUNK = 256 * 1024
EXPIRED_URL = {403, 404, 410}  # what OSS answers once the 24-hour URL has lapsed
PROBE_TASK = "st-ai-channel-test"


def _api_root(channel: Channel) -> str:
    # Accept a base URL given with DashScope's /api/v1 path, as its SDKs write it, or its
    # OpenAI-compatible one, as operators copy it from the chat docs.
    base = (channel.base_url or DEFAULT_BASE_URL).rstrip("/")
    for suffix in ("/api/v1", "/api", "/compatible-mode/v1"):
        if base.endswith(suffix):
            return base[:-len(suffix)]
    return base


class WanVideo:
    def __init__(self, upstream: Upstream) -> None:
        self._http = upstream.http
        self._files = fetcher_for(upstream)

    def capabilities(self, model: str) -> VideoCapabilities | None:
        known = models.MODELS.get(model)
        return known.caps if known is not None else None

    def prepare(self, channel: Channel, request: VideoRequest) -> Prepared:
        return convert.prepare(request)

    async def submit(self, channel: Channel, prepared: Prepared) -> str:
        answer = await self._call(channel, "POST", convert.path_for(prepared.body), prepared.body,
                                  SUBMIT_SECONDS, endpoint=True)
        with failures.reading(errors.WHO):
            task_id = convert.task_id_of(answer)
        if task_id is None:
            raise failures.bad_answer(errors.WHO, "no task id for the task it accepted")
        return task_id

    async def poll(self, channel: Channel, task_id: str) -> TaskState:
        answer = await self._call(channel, "GET", f"/api/v1/tasks/{quote(task_id, safe='')}", None, API_SECONDS)
        if not isinstance(answer, dict):
            raise failures.bad_answer(errors.WHO, "an unexpected task body")
        with failures.reading(errors.WHO):
            return convert.to_state(answer)

    async def cancel(self, channel: Channel, task_id: str) -> None:
        """DashScope cancels a task it still has PENDING; a running one finishes (and is
        refused here with an error the caller logs)."""
        await self._call(channel, "POST", f"/api/v1/tasks/{quote(task_id, safe='')}/cancel", None, API_SECONDS)

    async def probe(self, channel: Channel) -> None:
        """A query of a task DashScope does not have: free, answered UNKNOWN only to an accepted key."""
        await self._call(channel, "GET", f"/api/v1/tasks/{PROBE_TASK}", None, API_SECONDS)

    async def download(self, channel: Channel, task_id: str, state: TaskState,
                       variant: str) -> AsyncIterator[bytes]:
        if variant == "thumbnail":
            raise GatewayError(404, "Wan makes no thumbnail for its videos.", "thumbnail_unavailable", "variant")
        if variant != "video":
            raise invalid_request("The variant must be 'video' or 'thumbnail'.", "variant")
        if state.status != "completed" or not state.video_url:
            raise GatewayError(404, "The video is not ready.", "video_unavailable")
        try:
            # The URL is DashScope's choice: where it points is checked first, every redirect too.
            async with await self._files.get(state.video_url, channel.base_url or DEFAULT_BASE_URL) as resp:
                if resp.status in EXPIRED_URL:
                    raise GatewayError(404, "The video is no longer available upstream (DashScope keeps it "
                                            "24 hours).", "video_expired")
                if resp.status >= 400:
                    raise upstream_failed(f"DashScope's video storage answered HTTP {resp.status}.")
                async for chunk in resp.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None

    async def _call(self, channel: Channel, method: str, path: str, body: dict | None,
                    seconds: float, endpoint: bool = False) -> object:
        headers = {"Authorization": f"Bearer {channel.key}", "Accept": "application/json"}
        if method == "POST":
            headers["Content-Type"] = "application/json"
        if endpoint:
            headers["X-DashScope-Async"] = "enable"  # video synthesis is asynchronous only
        try:
            async with self._http.request(method, _api_root(channel) + path, headers=headers,
                                          timeout=client_timeout(channel, seconds),
                                          data=json_body(body) if body is not None else None) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise errors.from_response(resp.status, raw, channel, endpoint, resp.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise failures.bad_answer(errors.WHO) from None
