"""Runway video tasks over HTTP: `POST /v1/image_to_video` or `/v1/text_to_video`, then
`GET /v1/tasks/{id}` until it ends; the finished MP4 is fetched from the signed CDN
URL in the task's `output`. Every call goes through the shared aiohttp session."""
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
from server.providers.runway import convert, errors
from server.providers.timeouts import client_timeout
from server.providers.video_shape import VideoCapabilities
from server.safe_fetch import fetcher_for
from server.store.channels import Channel

DEFAULT_BASE_URL = "https://api.dev.runwayml.com"
API_VERSION = "2024-11-06"       # the X-Runway-Version every call must carry
# A body may hold a 5 MB data: URI, so submitting gets longer than polling.
SUBMIT_SECONDS = 60.0
API_SECONDS = 30.0
CHUNK = 256 * 1024
# What a signed CDN URL answers once its `_jwt` has expired (URLs last 24-48 hours).
EXPIRED_URL = {401, 403, 404, 410}


def _api_root(channel: Channel) -> str:
    # Accept a base URL given with or without the /v1 path, as third-party docs write it.
    base = (channel.base_url or DEFAULT_BASE_URL).rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def _headers(channel: Channel, accept: str = "application/json") -> dict[str, str]:
    return {"Authorization": f"Bearer {channel.key}", "X-Runway-Version": API_VERSION,
            "Content-Type": "application/json", "Accept": accept}


class RunwayVideo:
    """Runway has no remix, so this class deliberately has no `remix` method."""

    def __init__(self, upstream: Upstream) -> None:
        self._http = upstream.http
        self._files = fetcher_for(upstream)

    def capabilities(self, model: str) -> VideoCapabilities | None:
        return convert.capabilities(model)

    def prepare(self, channel: Channel, request: VideoRequest) -> Prepared:
        return convert.prepare(request)

    async def submit(self, channel: Channel, prepared: Prepared) -> str:
        answer = await self._call(channel, "POST", convert.endpoint_for(prepared.body), prepared.body,
                                  SUBMIT_SECONDS, endpoint=True)
        task_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise failures.bad_answer(errors.WHO, "no task id for the task it accepted")
        return task_id

    async def poll(self, channel: Channel, task_id: str) -> TaskState:
        answer = await self._call(channel, "GET", f"/v1/tasks/{quote(task_id, safe='')}", None, API_SECONDS)
        if not isinstance(answer, dict):
            raise failures.bad_answer(errors.WHO, "an unexpected task body")
        with failures.reading(errors.WHO):
            return convert.to_state(answer)

    async def cancel(self, channel: Channel, task_id: str) -> None:
        """Cancel a running task, or delete a finished one (Runway then forgets it)."""
        await self._call(channel, "DELETE", f"/v1/tasks/{quote(task_id, safe='')}", None, API_SECONDS)

    async def download(self, channel: Channel, task_id: str, state: TaskState,
                       variant: str) -> AsyncIterator[bytes]:
        if variant == "thumbnail":
            raise GatewayError(404, "Runway makes no thumbnail for its videos.", "thumbnail_unavailable",
                               "variant")
        if variant != "video":
            raise invalid_request("The variant must be 'video' or 'thumbnail'.", "variant")
        url = state.video_url or await self._fresh_url(channel, task_id)
        try:
            response = await self._fetch(channel, url)
            if response.status in EXPIRED_URL and url == state.video_url:
                # Output URLs expire; Runway says to fetch the task again for fresh ones.
                response.release()
                response = await self._fetch(channel, await self._fresh_url(channel, task_id))
            async with response:
                if response.status != 200:
                    raise upstream_failed(f"Runway's video storage answered HTTP {response.status}.")
                pending = bytearray()
                async for piece in response.content.iter_chunked(CHUNK):
                    pending += piece
                    while len(pending) >= CHUNK:
                        yield bytes(pending[:CHUNK])
                        del pending[:CHUNK]
                if pending:
                    yield bytes(pending)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None

    # -- HTTP ------------------------------------------------------------------------------

    async def _fetch(self, channel: Channel, url: str) -> aiohttp.ClientResponse:
        # No Authorization here: the URL is signed, and the key must not reach the CDN.
        # The URL is Runway's choice, so where it points is checked first, every redirect too.
        return await self._files.get(url, channel.base_url or DEFAULT_BASE_URL)

    async def probe(self, channel: Channel) -> None:
        """`GET /v1/organization` (the account's credit balance): free, and answered only
        to an accepted key."""
        await self._call(channel, "GET", "/v1/organization", None, API_SECONDS)

    async def _fresh_url(self, channel: Channel, task_id: str) -> str:
        state = await self.poll(channel, task_id)
        if state.status != "completed" or not state.video_url:
            raise GatewayError(404, "The video is not available at Runway.", "video_unavailable")
        return state.video_url

    async def _call(self, channel: Channel, method: str, path: str, body: dict | None,
                    seconds: float, endpoint: bool = False) -> object:
        try:
            async with self._http.request(
                    method, _api_root(channel) + path, timeout=client_timeout(channel, seconds),
                    data=json_body(body) if body is not None else None,
                    headers=_headers(channel, "*/*" if method == "DELETE" else "application/json")) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise errors.from_response(resp.status, raw, channel, endpoint, resp.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None
        if method == "DELETE" or not raw:
            return None  # DELETE answers no body
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise failures.bad_answer(errors.WHO) from None
