"""MiniMax video tasks over HTTP: `POST /v1/video_generation`, then
`GET /v1/query/video_generation?task_id=` until it ends; a finished task names a
`file_id`, which `GET /v1/files/retrieve?file_id=` turns into a download URL (valid
an hour, so it is asked for when the video is fetched). Every call goes through the
shared aiohttp session with the channel's key as a Bearer token."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiohttp

from server.errors import GatewayError, invalid_request, upstream_failed
from server.providers import failures
from server.providers.hailuo import convert, errors
from server.providers.hailuo.models import MODELS
from server.providers.interface import Prepared, TaskState, Upstream, VideoRequest
from server.providers.json_body import json_body
from server.providers.timeouts import client_timeout
from server.providers.video_shape import VideoCapabilities
from server.safe_fetch import fetcher_for
from server.store.channels import Channel

DEFAULT_BASE_URL = "https://api.minimax.io"   # international; https://api.minimaxi.com in China
# A body may hold a 20 MB image as base64, so submitting gets longer than polling.
SUBMIT_SECONDS = 90.0
API_SECONDS = 30.0
CHUNK = 256 * 1024
EXPIRED_URL = {403, 404, 410}
PROBE_TASK = "st-ai-channel-test"


def _api_root(channel: Channel) -> str:
    # Accept a base URL given with or without the /v1 path, as MiniMax's own samples write it.
    base = (channel.base_url or DEFAULT_BASE_URL).rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


class HailuoVideo:
    """MiniMax has no call that stops a task, so this class has no `cancel`."""

    def __init__(self, upstream: Upstream) -> None:
        self._http = upstream.http
        self._files = fetcher_for(upstream)

    def capabilities(self, model: str) -> VideoCapabilities | None:
        known = MODELS.get(model)
        return known.caps if known is not None else None

    def prepare(self, channel: Channel, request: VideoRequest) -> Prepared:
        return convert.prepare(request)

    async def submit(self, channel: Channel, prepared: Prepared) -> str:
        answer = await self._call(channel, "POST", "/v1/video_generation", body=prepared.body,
                                  seconds=SUBMIT_SECONDS, endpoint=True)
        task_id = answer.get("task_id")
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id:
            raise failures.bad_answer(errors.WHO, "no task id for the task it accepted")
        return task_id

    async def poll(self, channel: Channel, task_id: str) -> TaskState:
        answer = await self._query(channel, task_id)
        with failures.reading(errors.WHO):
            return convert.to_state(answer)

    async def probe(self, channel: Channel) -> None:
        """A status query of a task MiniMax does not have: free, and judged only after the
        key. An answer about the task (rather than the key or the service) shows it works."""
        try:
            await self._call(channel, "GET", "/v1/query/video_generation", {"task_id": PROBE_TASK})
        except GatewayError as error:
            if error.http_status != 400 or error.code == "moderation_blocked":
                raise

    async def download(self, channel: Channel, task_id: str, state: TaskState,
                       variant: str) -> AsyncIterator[bytes]:
        if variant == "thumbnail":
            raise GatewayError(404, "MiniMax makes no thumbnail for its videos.", "thumbnail_unavailable",
                               "variant")
        if variant != "video":
            raise invalid_request("The variant must be 'video' or 'thumbnail'.", "variant")
        url = await self._download_url(channel, task_id)
        try:
            # The URL is MiniMax's choice: where it points is checked first, every redirect
            # too, and the key is not sent there.
            async with await self._files.get(url, _api_root(channel)) as response:
                if response.status in EXPIRED_URL:
                    raise GatewayError(404, "The video is no longer available at MiniMax.", "video_expired")
                if response.status != 200:
                    raise upstream_failed(f"MiniMax's file storage answered HTTP {response.status}.")
                async for chunk in response.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None

    async def _download_url(self, channel: Channel, task_id: str) -> str:
        """The task's file, then the file's download URL: MiniMax's two-step retrieval."""
        task = await self._query(channel, task_id)
        file_id = convert.file_id(task) if task.get("status") == "Success" else None
        if file_id is None:
            raise GatewayError(404, "The video is not available at MiniMax.", "video_unavailable")
        url = convert.download_url(await self._call(channel, "GET", "/v1/files/retrieve", {"file_id": file_id}))
        if url is None:
            raise upstream_failed("MiniMax named the video's file but gave no download URL.")
        return url

    async def _query(self, channel: Channel, task_id: str) -> dict:
        return await self._call(channel, "GET", "/v1/query/video_generation", {"task_id": task_id},
                                verdict_ok=True)

    async def _call(self, channel: Channel, method: str, path: str, params: dict | None = None,
                    body: dict | None = None, seconds: float = API_SECONDS,
                    endpoint: bool = False, verdict_ok: bool = False) -> dict:
        """One API call; its JSON answer once base_resp says 0 (or, with `verdict_ok`, the
        task's own end: a Fail status or a content-safety verdict), a GatewayError otherwise."""
        headers = {"Authorization": f"Bearer {channel.key}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._http.request(method, _api_root(channel) + path, params=params,
                                          timeout=client_timeout(channel, seconds),
                                          data=json_body(body) if body is not None else None,
                                          headers=headers) as resp:
                raw = await resp.read()
                status, answered = resp.status, resp.headers
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None
        if status != 200:
            raise errors.from_http(status, raw, channel, endpoint, answered)
        answer = failures.json_object(raw, errors.WHO)
        code, message = errors.base_resp(answer)
        if code is None:
            raise failures.bad_answer(errors.WHO, "an answer without its base_resp")
        if code != errors.OK and not (verdict_ok and (code in errors.SAFETY_CODES
                                                      or answer.get("status") == convert.FAILED)):
            raise errors.from_status_code(code, message, channel, answered)
        return answer
