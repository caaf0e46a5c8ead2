"""Seedance video tasks over Ark's HTTP API (Volcengine Ark in China, BytePlus ModelArk
elsewhere; the same paths on both): `POST /api/v3/contents/generations/tasks`, then
`GET .../tasks/{id}` until it ends; `DELETE .../tasks/{id}` cancels a task Ark still
has queued. The finished MP4 is fetched from the signed URL in the task's `content`."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Callable
from urllib.parse import quote

import aiohttp
import orjson

from server.errors import GatewayError, invalid_request, upstream_failed
from server.providers import failures
from server.providers.interface import Prepared, TaskState, Upstream, VideoRequest
from server.providers.json_body import json_body
from server.providers.seedance import convert, errors, models
from server.providers.timeouts import client_timeout
from server.providers.video_shape import VideoCapabilities
from server.safe_fetch import fetcher_for
from server.store.channels import Channel

DEFAULT_BASE_URL = "https://ark.ap-southeast.bytepluses.com"  # BytePlus ModelArk (international)
TASKS = "/api/v3/contents/generations/tasks"
# A body may hold base64 images, so submitting gets longer than polling.
SUBMIT_SECONDS = 60.0
API_SECONDS = 30.0
CHUNK = 256 * 1024
EXPIRED_URL = {403, 404, 410}    # what a signed URL answers once it has expired (after 24 hours)


def _api_root(channel: Channel) -> str:
    # Accept a base URL given with Ark's /api/v3 path, as Ark's own SDK is configured.
    base = (channel.base_url or DEFAULT_BASE_URL).rstrip("/")
    return base[:-len("/api/v3")] if base.endswith("/api/v3") else base


def _headers(channel: Channel) -> dict[str, str]:
    return {"Authorization": f"Bearer {channel.key}", "Content-Type": "application/json",
            "Accept": "application/json"}


class SeedanceVideo:
    def __init__(self, upstream: Upstream, clock: Callable[[], float] = time.time) -> None:
        self._http = upstream.http
        self._files = fetcher_for(upstream)
        self._clock = clock

    def capabilities(self, model: str) -> VideoCapabilities | None:
        known = models.lookup(model)
        return known.caps if known else None

    def prepare(self, channel: Channel, request: VideoRequest) -> Prepared:
        return convert.prepare(request)

    async def submit(self, channel: Channel, prepared: Prepared) -> str:
        answer = await self._call(channel, "POST", TASKS, prepared.body, SUBMIT_SECONDS, endpoint=True)
        task_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise failures.bad_answer(errors.WHO, "no task id for the task it accepted")
        return task_id

    async def poll(self, channel: Channel, task_id: str) -> TaskState:
        answer = await self._call(channel, "GET", f"{TASKS}/{quote(task_id, safe='')}", None, API_SECONDS)
        if not isinstance(answer, dict):
            raise failures.bad_answer(errors.WHO, "an unexpected task body")
        with failures.reading(errors.WHO):
            return convert.to_state(answer, self._clock())

    async def cancel(self, channel: Channel, task_id: str) -> None:
        """Cancel a task Ark still has queued. Ark refuses it for a running task, which
        then runs to its end; st-ai no longer polls a deleted task, so its video is
        never fetched."""
        await self._call(channel, "DELETE", f"{TASKS}/{quote(task_id, safe='')}", None, API_SECONDS)

    async def probe(self, channel: Channel) -> None:
        """The task list, one item long: free, and answered only to an accepted key."""
        await self._call(channel, "GET", f"{TASKS}?page_num=1&page_size=1", None, API_SECONDS, endpoint=True)

    async def download(self, channel: Channel, task_id: str, state: TaskState,
                       variant: str) -> AsyncIterator[bytes]:
        if variant == "thumbnail":
            raise GatewayError(404, "Seedance makes no thumbnail for its videos.", "thumbnail_unavailable",
                               "variant")
        if variant != "video":
            raise invalid_request("The variant must be 'video' or 'thumbnail'.", "variant")
        url = state.video_url or await self._fresh_url(channel, task_id)
        try:
            response = await self._fetch(channel, url)
            if response.status in EXPIRED_URL and url == state.video_url:
                # The signed URL lasts 24 hours; the task answers a fresh one.
                response.release()
                response = await self._fetch(channel, await self._fresh_url(channel, task_id))
            async with response:
                if response.status in EXPIRED_URL:
                    raise GatewayError(404, "The video is no longer available upstream.", "video_expired")
                if response.status != 200:
                    raise upstream_failed(f"Seedance's video storage answered HTTP {response.status}.")
                async for chunk in response.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None

    # -- HTTP ------------------------------------------------------------------------------

    async def _fetch(self, channel: Channel, url: str) -> aiohttp.ClientResponse:
        # No Authorization: the URL is signed (its query kept verbatim), and the key must
        # not reach the storage. Where it points is checked first, every redirect too.
        return await self._files.get(url, channel.base_url or DEFAULT_BASE_URL)

    async def _fresh_url(self, channel: Channel, task_id: str) -> str:
        state = await self.poll(channel, task_id)
        if state.status != "completed" or not state.video_url:
            raise GatewayError(404, "The video is not available at Seedance.", "video_unavailable")
        return state.video_url

    async def _call(self, channel: Channel, method: str, path: str, body: dict | None,
                    seconds: float, endpoint: bool = False) -> object:
        try:
            async with self._http.request(method, _api_root(channel) + path,
                                          timeout=client_timeout(channel, seconds),
                                          data=json_body(body) if body is not None else None,
                                          headers=_headers(channel)) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise errors.from_response(resp.status, raw, channel, endpoint, resp.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise failures.bad_answer(errors.WHO) from None
