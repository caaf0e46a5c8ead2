"""Veo video tasks over the Gemini API: `POST /v1beta/models/{model}:predictLongRunning`,
then `GET /v1beta/{operation name}` until the operation is done, then the video's file
URI, fetched with the channel's key (it is not a public link). The task id st-ai keeps is
"<operation name>@<submission time in ms>": the operation carries no progress, so it is
estimated from when the task was sent."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Callable

import aiohttp
import orjson
from yarl import URL

from server.errors import GatewayError, upstream_failed
from server.providers import failures
from server.providers.interface import Prepared, TaskState, Upstream, VideoRequest
from server.providers.timeouts import client_timeout
from server.providers.veo import convert, errors, images, models
from server.providers.video_shape import VideoCapabilities
from server.safe_fetch import fetcher_for
from server.store.channels import Channel

API_SECONDS = 60.0  # a submission carries up to 80 MB of inline images
CHUNK = 256 * 1024
API_VERSION = "/v1beta"
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def api_root(channel: Channel) -> str:
    # Accept a base URL given with or without the API version.
    base = channel.base_url.rstrip("/")
    return base[:-len(API_VERSION)] if base.endswith(API_VERSION) else base


def split_task_id(task_id: str) -> tuple[str, float | None]:
    name, _, sent = task_id.rpartition("@")
    if not name:
        name, sent = task_id, ""
    if not convert.OPERATION.fullmatch(name):
        raise GatewayError(404, "No such Veo task.", "task_not_found")
    return name, int(sent) / 1000 if sent.isdigit() else None


def _same_origin(a: URL, b: URL) -> bool:
    return (a.scheme.lower(), (a.host or "").lower(), a.port) == (b.scheme.lower(), (b.host or "").lower(), b.port)


class VeoVideo:
    def __init__(self, upstream: Upstream, clock: Callable[[], float] = time.time) -> None:
        self._http = upstream.http
        self._files = fetcher_for(upstream)
        self._clock = clock

    def capabilities(self, model: str) -> VideoCapabilities | None:
        return models.capabilities(model)

    def prepare(self, channel: Channel, request: VideoRequest) -> Prepared:
        return convert.to_veo(request, channel.base_url)

    async def check_inputs(self, channel: Channel, prepared: Prepared) -> None:
        await images.check_marked(convert.wire_body(prepared.body), self._files, channel)

    async def submit(self, channel: Channel, prepared: Prepared) -> str:
        body = convert.wire_body(prepared.body)
        if images.marked(body):
            body = orjson.loads(orjson.dumps(body))  # the prepared body stays as it was
            await images.fetch_marked(body, self._files, channel)
        model = prepared.body["model"]
        answer = await self._call(channel, "POST", f"{API_VERSION}/models/{model}:predictLongRunning", body,
                                  endpoint=True)
        with failures.reading(errors.WHO):
            name = convert.operation_name(answer)
        return f"{name}@{int(self._clock() * 1000)}"

    async def poll(self, channel: Channel, task_id: str) -> TaskState:
        name, sent = split_task_id(task_id)
        operation = await self._call(channel, "GET", f"{API_VERSION}/{name}", None)
        with failures.reading(errors.WHO):
            return convert.to_state(operation, sent, self._clock())

    async def probe(self, channel: Channel) -> None:
        """Listing one model is free, and answered only to a key Google accepts."""
        await self._call(channel, "GET", f"{API_VERSION}/models?pageSize=1", None)

    async def download(self, channel: Channel, task_id: str, state: TaskState,
                       variant: str) -> AsyncIterator[bytes]:
        if variant == "thumbnail":
            raise GatewayError(404, "Veo makes no thumbnail for its videos.", "thumbnail_unavailable")
        if variant != "video":
            raise GatewayError(400, f"Unknown download variant '{variant}'.", None, "variant")
        if state.status != "completed" or not state.video_url:
            raise GatewayError(404, "The video is not ready.", "video_unavailable")
        try:
            response = await self._open(channel, state.video_url)
            try:
                if response.status in (403, 404, 410):
                    # Google keeps generated files for two days.
                    raise GatewayError(404, "The video is no longer available upstream.", "video_expired")
                if response.status >= 400:
                    raise upstream_failed(f"Google failed to serve the video (HTTP {response.status}).")
                async for chunk in response.content.iter_chunked(CHUNK):
                    yield chunk
            finally:
                response.release()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None

    async def _open(self, channel: Channel, uri: str) -> aiohttp.ClientResponse:
        """The file's response. The key goes only to the channel's own API host; a redirect
        from there (to Google's storage) and any other host are fetched without it, through
        the checked fetcher."""
        try:
            target = URL(uri)
        except (ValueError, TypeError):
            raise upstream_failed("Veo named a video file that is not a URL.", retryable=False) from None
        if not _same_origin(target, URL(api_root(channel))):
            return await self._files.get(uri, channel.base_url)
        limits = self._files.limits
        response = await self._http.get(target, headers={"x-goog-api-key": channel.key}, allow_redirects=False,
                                        timeout=aiohttp.ClientTimeout(total=limits.total, sock_connect=limits.connect,
                                                                      sock_read=limits.read))
        location = response.headers.get("Location") if response.status in REDIRECTS else None
        if location is None:
            return response
        response.release()
        return await self._files.get(str(target.join(URL(location))), channel.base_url)

    async def _call(self, channel: Channel, method: str, path: str, body: dict | None,
                    endpoint: bool = False) -> dict:
        headers = {"x-goog-api-key": channel.key, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        payload = orjson.dumps(body) if body is not None else None
        try:
            async with self._http.request(method, api_root(channel) + path, data=payload, headers=headers,
                                          timeout=client_timeout(channel, API_SECONDS),
                                          allow_redirects=False) as resp:
                raw = await resp.read()
                status, answered = resp.status, resp.headers
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.network_error(exc) from None
        if status >= 400:
            raise errors.from_response(status, raw, channel, endpoint, answered)
        if status != 200:
            raise failures.bad_answer(errors.WHO, f"HTTP {status} instead of its JSON")
        return failures.json_object(raw, errors.WHO)
