"""Asynchronous video generation against OpenAI's Videos API (`{base_url}/videos`),
which another st-ai also speaks, so gateways can be chained."""
from __future__ import annotations

import asyncio
import base64
from typing import AsyncIterator
from urllib.parse import quote

import aiohttp
import orjson

from server.errors import GatewayError, invalid_request
from server.providers import failures
from server.providers.interface import Prepared, TaskState, Upstream, VideoRequest
from server.providers.openai import errors
from server.providers.openai.http import auth_headers, network_error, request_object
from server.providers.openai.video_convert import capabilities, to_prepared, to_task_state
from server.providers.timeouts import client_timeout
from server.providers.video_shape import VideoCapabilities
from server.store.channels import Channel

# Seconds: creating may upload a reference image; the rest are small JSON exchanges.
SUBMIT_SECONDS = 120.0
POLL_SECONDS = 30.0
# A download's length is unknown, so only its silences are bounded (and connecting, by the channel).
DOWNLOAD_READ_SECONDS = 120.0
DOWNLOAD_CONNECT_SECONDS = 30.0
CHUNK = 256 * 1024
VARIANTS = {"video", "thumbnail", "spritesheet"}


def _url(channel: Channel, task_id: str, suffix: str = "") -> str:
    # The id comes back from the upstream; quoted (and no dot segment) so it names one video.
    if not task_id.strip("."):
        raise GatewayError(404, "No such video upstream.", "video_not_found")
    return f"{channel.base_url}/videos/{quote(task_id, safe='')}{suffix}"


def _multipart(body: dict) -> aiohttp.FormData:
    """The encoding the official SDK uses when a file is attached: the other fields as
    text parts (lists as repeated `key[]`), the file as the `input_reference` part."""
    form = aiohttp.FormData()
    for key, value in body.items():
        if key == "input_reference":
            continue
        for item in value if isinstance(value, list) else [value]:
            form.add_field(f"{key}[]" if isinstance(value, list) else key, str(item))
    upload = body["input_reference"]["upload"]
    form.add_field("input_reference", base64.b64decode(upload["data_base64"]),
                   filename=upload["filename"], content_type=upload["content_type"])
    return form


class OpenAIVideos:
    def __init__(self, upstream: Upstream) -> None:
        self._http = upstream.http

    def capabilities(self, model: str) -> VideoCapabilities | None:
        return capabilities(model)

    def prepare(self, channel: Channel, request: VideoRequest) -> Prepared:
        return to_prepared(request)

    async def submit(self, channel: Channel, prepared: Prepared) -> str:
        body = prepared.body
        reference = body.get("input_reference")
        if isinstance(reference, dict) and "upload" in reference:
            kwargs: dict = {"data": _multipart(body)}   # aiohttp sets the boundary
        else:
            kwargs = {"data": orjson.dumps(body), "headers": {"Content-Type": "application/json"}}
        headers = auth_headers(channel) | kwargs.pop("headers", {})
        video = await self._json("POST", f"{channel.base_url}/videos", channel, SUBMIT_SECONDS,
                                 headers=headers, endpoint=True, **kwargs)
        return _video_id(video)

    async def poll(self, channel: Channel, task_id: str) -> TaskState:
        answer = await self._json("GET", _url(channel, task_id), channel, POLL_SECONDS,
                                  headers=auth_headers(channel))
        with failures.reading(errors.WHO):
            return to_task_state(answer)

    async def remix(self, channel: Channel, task_id: str, prompt: str) -> str:
        headers = auth_headers(channel) | {"Content-Type": "application/json"}
        video = await self._json("POST", _url(channel, task_id, "/remix"), channel, SUBMIT_SECONDS,
                                 headers=headers, data=orjson.dumps({"prompt": prompt}))
        return _video_id(video)

    async def download(self, channel: Channel, task_id: str, state: TaskState,
                       variant: str) -> AsyncIterator[bytes]:
        """OpenAI serves the content only through its authenticated endpoint (no public URL),
        so `state` is not needed here."""
        if variant not in VARIANTS:
            raise invalid_request(f"Unknown content variant '{variant[:40]}'.", "variant")
        try:
            async with self._http.get(_url(channel, task_id, "/content"), params={"variant": variant},
                                      headers=auth_headers(channel, "application/binary"),
                                      timeout=_download_timeout(channel)) as resp:
                if resp.status >= 400:
                    raise errors.from_response(resp.status, await resp.read(), channel, headers=resp.headers)
                async for chunk in resp.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise network_error(exc) from None

    async def _json(self, method: str, url: str, channel: Channel, seconds: float, **kwargs) -> dict:
        # A wrong key is final here: a video task stays on its channel, and a retryable
        # error means "send the same call again later", which a wrong key never mends.
        return await request_object(self._http, method, url, channel, client_timeout(channel, seconds),
                                    final_on_bad_key=True, **kwargs)


def _download_timeout(channel: Channel) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=channel.timeouts.connect or DOWNLOAD_CONNECT_SECONDS,
                                 sock_read=DOWNLOAD_READ_SECONDS)


def _video_id(video: dict) -> str:
    video_id = video.get("id")
    if not isinstance(video_id, str) or not video_id:
        raise failures.bad_answer(errors.WHO, "no id for the video it started")
    return video_id
