"""Kling video tasks over HTTP: `POST /v1/videos/{text2video|image2video}`, then
`GET` on the same path plus the task id. The task id st-ai keeps is
"<endpoint>:<kling task id>", because Kling answers a task only on the path of the
endpoint that created it."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Callable
from urllib.parse import quote

import aiohttp
import orjson

from server.errors import GatewayError, upstream_failed
from server.providers import failures
from server.providers.interface import Prepared, TaskState, Upstream, VideoRequest
from server.providers.video_shape import VideoCapabilities
from server.providers.kling import convert, errors, models
from server.providers.kling.auth import TokenCache
from server.providers.timeouts import client_timeout
from server.safe_fetch import fetcher_for
from server.store.channels import Channel

API_SECONDS = 30.0
CHUNK = 256 * 1024


def _api_root(channel: Channel) -> str:
    # Accept a base URL given with or without Kling's /v1 path.
    base = channel.base_url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def split_task_id(task_id: str) -> tuple[str, str]:
    endpoint, sep, upstream_id = task_id.partition(":")
    if not sep or endpoint not in convert.ENDPOINTS or not upstream_id:
        raise GatewayError(404, "No such Kling task.", "task_not_found")
    return endpoint, upstream_id


class KlingVideo:
    def __init__(self, upstream: Upstream, clock: Callable[[], float] = time.time) -> None:
        self._http = upstream.http
        self._files = fetcher_for(upstream)
        self._clock = clock
        self._tokens = TokenCache(clock)

    def capabilities(self, model: str) -> VideoCapabilities | None:
        return models.capabilities(model)

    def prepare(self, channel: Channel, request: VideoRequest) -> Prepared:
        return convert.to_kling(request)

    async def submit(self, channel: Channel, prepared: Prepared) -> str:
        endpoint = convert.endpoint_for(prepared.body)
        data = await self._call(channel, "POST", f"/v1/videos/{endpoint}", prepared.body, endpoint=True)
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise failures.bad_answer(errors.WHO, "no task id for the task it accepted")
        return f"{endpoint}:{task_id}"

    async def poll(self, channel: Channel, task_id: str) -> TaskState:
        endpoint, upstream_id = split_task_id(task_id)
        data = await self._call(channel, "GET", f"/v1/videos/{endpoint}/{quote(upstream_id, safe='')}", None)
        with failures.reading(errors.WHO):
            return convert.to_state(data, self._clock())

    async def probe(self, channel: Channel) -> None:
        """A status query of a task Kling does not have: free, and "no such task" (code
        1203) is answered only to a caller whose signed token Kling accepted."""
        await self._call(channel, "GET", f"/v1/videos/{convert.ENDPOINTS[0]}/st-ai-channel-test", None,
                         missing_ok=True)

    async def download(self, channel: Channel, task_id: str, state: TaskState,
                       variant: str) -> AsyncIterator[bytes]:
        if variant == "thumbnail":
            raise GatewayError(404, "Kling makes no thumbnail for its videos.", "thumbnail_unavailable")
        if variant != "video":
            raise GatewayError(400, f"Unknown download variant '{variant}'.", None, "variant")
        if state.status != "completed" or not state.video_url:
            raise GatewayError(404, "The video is not ready.", "video_unavailable")
        try:
            # The result sits on Kling's CDN: no credentials are sent there, and the URL
            # is checked (scheme, address, every redirect) before anything is fetched.
            async with await self._files.get(state.video_url, channel.base_url) as resp:
                if resp.status in (403, 404, 410):
                    # Kling clears results after 30 days.
                    raise GatewayError(404, "The video is no longer available upstream.", "video_expired")
                if resp.status >= 400:
                    raise upstream_failed(f"The upstream failed to serve the video (HTTP {resp.status}).")
                async for chunk in resp.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None

    async def _call(self, channel: Channel, method: str, path: str, body: dict | None,
                    endpoint: bool = False, missing_ok: bool = False) -> dict:
        """One API call; the envelope's `data` on success, a GatewayError otherwise
        (`missing_ok`: an empty `data` when Kling has no such task)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   **self._tokens.header(channel.key)}
        payload = orjson.dumps(body) if body is not None else None
        try:
            async with self._http.request(method, _api_root(channel) + path, data=payload,
                                          headers=headers, timeout=client_timeout(channel, API_SECONDS)) as resp:
                raw = await resp.read()
                status, answered = resp.status, resp.headers
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None
        code, message = errors.parse(raw)
        if missing_ok and code in errors.NOT_FOUND_CODES:
            return {}
        if status >= 400 or code != 0:
            if code in errors.AUTH_CODES or status == 401:
                self._tokens.forget(channel.key)  # sign anew next time (e.g. after a clock jump)
            if code is None and status < 400:
                raise failures.bad_answer(errors.WHO, "something that is not its JSON envelope")
            raise errors.from_envelope(status, code, message, channel, endpoint, answered)
        data = orjson.loads(raw).get("data")
        if not isinstance(data, dict):
            raise failures.bad_answer(errors.WHO, "an envelope without the task")
        return data
