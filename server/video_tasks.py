"""Asynchronous video tasks, transport-free: submit, read, list, delete, remix and the
finished content. The background poller (video_poller.py) moves tasks forward."""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, replace
from typing import AsyncIterator

from server import byte_ranges, call_record, routing, upstream_errors
from server.assets import AssetStore
from server.billing.admission import Admission
from server.catalog import Catalog
from server.errors import GatewayError, invalid_request
from server.providers.interface import VideoCanceller, VideoRemixer, VideoRequest
from server.providers.registry import Registry
from server.store import videos as store
from server.store.db import DbWorker
from server.store.channels import Channel
from server.store.tokens import Token
from server.store.videos import VideoTask

MAX_LIST = 100
log = logging.getLogger("st_ai.videos")


@dataclass(frozen=True)
class VideoConfig:
    poll_interval: float = 5.0        # seconds between polls of one task (grows with backoff)
    timeout: float = 3600.0           # a task still unfinished after this is failed
    retention: float = 7 * 86400.0    # how long finished content is kept
    per_channel: int = 4              # concurrent upstream calls per channel
    lease: float = 120.0              # how long a process may hold a task it is working on
    submit_timeout: float = 60.0      # shorter than the lease, so no one else submits meanwhile
    max_video_bytes: int = 2 * 1024**3  # a provider's video larger than this fails its task
    download_timeout: float = 1800.0    # seconds for a whole download from a provider's URL


def process_owner() -> str:
    """Names this process in task leases: host, pid and a nonce (pids get reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def not_found(video_id: str) -> GatewayError:
    shown = video_id if len(video_id) <= 80 else video_id[:80] + "\u2026"
    return GatewayError(404, f"No video found with id '{shown}'.", "video_not_found", "video_id")


def view(task: VideoTask) -> dict:
    """The task as clients see it: the documented fields and OpenAI's video object."""
    asked = task.asked or {}
    out: dict = {"id": task.id, "task_id": task.id, "object": "video", "model": task.model,
                 "status": task.status, "progress": 100 if task.status == "completed" else task.progress,
                 "created_at": task.created_at, "prompt": task.request.get("prompt")}
    if task.completed_at:
        out["completed_at"] = task.completed_at
    if task.expires_at:
        out["expires_at"] = task.expires_at
    if asked.get("duration") is not None:
        out["seconds"] = _seconds_text(asked["duration"])
    if asked.get("width") and asked.get("height"):
        out["size"] = f"{asked['width']}x{asked['height']}"
    if task.remixed_from:
        out["remixed_from_video_id"] = task.remixed_from
    if task.status == "failed":
        out["error"] = {"code": task.error_code or "failed", "message": task.error_message or "The video task failed."}
    out["metadata"] = asked
    return out


def _seconds_text(duration: float) -> str:
    return str(int(duration)) if float(duration).is_integer() else str(duration)


def serialise_request(request: VideoRequest) -> dict:
    data = asdict(request)
    if request.image_bytes is not None:
        data["image_bytes"] = base64.b64encode(request.image_bytes).decode()
    return data


def restore_request(data: dict) -> VideoRequest:
    data = dict(data)
    data.pop("remix_of", None)
    if data.get("image_bytes"):
        data["image_bytes"] = base64.b64decode(data["image_bytes"])
    return VideoRequest(**data)


def _number(body: dict, key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise invalid_request(f"'{key}' must be a number of seconds.", param=key) from None
    if not (0 < number <= 600):
        raise invalid_request(f"'{key}' must be between 0 and 600 seconds.", param=key)
    return number


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not (width + height).isascii() or not width.isdigit() or not height.isdigit():
        raise invalid_request("'size' must be WIDTHxHEIGHT, e.g. 1280x720.", param="size")
    return int(width), int(height)


def _normalise(body: dict) -> VideoRequest:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid_request("'prompt' is required.", param="prompt", code="missing_required_parameter")
    n = body.get("n")
    if n is not None and n != 1:
        raise invalid_request("st-ai creates one video per task; send 'n': 1 or leave it out.", param="n")
    if body.get("response_format") not in (None, "url"):
        raise invalid_request("'response_format' can only be 'url'.", param="response_format")
    duration = _number(body, "duration") or _number(body, "seconds")
    width, height = body.get("width"), body.get("height")
    if body.get("size") and not (width or height):
        width, height = _size(body["size"])
    for key, value in (("width", width), ("height", height)):
        if value is not None and not (16 <= value <= 8192):
            raise invalid_request(f"'{key}' must be between 16 and 8192.", param=key)
    fps = body.get("fps")
    if fps is not None and not (1 <= fps <= 120):
        raise invalid_request("'fps' must be between 1 and 120.", param="fps")
    image, image_bytes, image_type = body.get("image"), None, None
    reference = body.get("input_reference") or {}
    if reference.get("data"):
        image_bytes, image_type = reference["data"], reference.get("content_type") or "image/png"
    elif reference.get("image_url") and not image:
        image = reference["image_url"]
    elif isinstance(image, str) and not image.startswith(("http://", "https://", "data:")):
        try:  # bare base64, as the documented API allows
            base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_request("'image' must be an image URL, a data: URI or base64.", param="image") from None
    metadata = body.get("metadata") or {}
    return VideoRequest(model=body.get("model") or "", prompt=prompt, image=image or None,
                        image_bytes=image_bytes, image_type=image_type, duration=duration,
                        width=width, height=height, fps=fps, seed=body.get("seed"), metadata=metadata)


class VideoTasks:
    def __init__(self, catalog: Catalog, registry: Registry, worker: DbWorker, assets: AssetStore,
                 config: VideoConfig, owner: str, admission: Admission) -> None:
        self.catalog, self.registry, self.worker, self.assets = catalog, registry, worker, assets
        self.config, self.owner, self.admission = config, owner, admission

    async def _owned(self, token: Token, video_id: str) -> VideoTask:
        if not store.looks_like_id(video_id):
            raise not_found(video_id)
        task = await self.worker.run(store.get, video_id)
        # another token's task answers exactly like one that does not exist
        if task is None or task.token_id != token.id or task.deleted:
            raise not_found(video_id)
        call_record.note_model(task.model)
        return task

    async def create(self, token: Token, body: dict) -> dict:
        # a create refused (bad body, unknown model...) is booked by the request context
        async with self.admission.request(token, "video", body.get("model")):
            return await self._create(token, body)

    async def _create(self, token: Token, body: dict) -> dict:
        request = _normalise(body)
        model = request.model or routing.default_model(self.catalog.snapshot, token,
                                                       self.registry.video_types, "video")
        channel = routing.candidates(self.catalog.snapshot, token, model, self.registry.video_types)[0]
        provider = self.registry.video[channel.type]
        request = replace(request, model=channel.upstream_model(model))
        prepared = provider.prepare(channel, request)  # a 400 here: nothing was sent
        now = time.time()
        task = VideoTask(id=store.new_id(), token_id=token.id, model=model, channel_id=channel.id,
                         upstream_model=request.model, request=serialise_request(request),
                         asked=prepared.asked, created_at=int(now), updated_at=int(now),
                         lease_owner=self.owner, lease_until=now + self.config.lease,
                         next_poll_at=now + self.config.poll_interval)
        await self.worker.run(store.insert, task)  # committed before anything is acknowledged
        return await self._submit(task, lambda: provider.submit(channel, prepared), channel, body)

    async def _submit(self, task: VideoTask, start, channel: Channel, body: dict) -> dict:
        now = time.time()
        try:
            upstream_id = await asyncio.wait_for(self._timed(task, start), self.config.submit_timeout)
        except GatewayError as error:
            upstream_errors.for_client(error, channel, body)  # before it is stored or raised
            if error.retryable:  # the poller submits again later; the task is kept
                await self.worker.run(store.release, task.id, self.owner, now + self.config.poll_interval)
                return view(task)
            await self.worker.run(store.update, task.id, store.OPEN, status="failed",
                                  error_code=error.code or "upstream_rejected", error_message=error.message,
                                  lease_owner=None, lease_until=None)
            raise
        except asyncio.TimeoutError:
            await self.worker.run(store.release, task.id, self.owner, now + self.config.poll_interval)
            return view(task)
        except asyncio.CancelledError:
            await asyncio.shield(self.worker.run(store.release, task.id, self.owner, now))
            raise
        await self.worker.run(store.release, task.id, self.owner, now + self.config.poll_interval,
                              upstream_id=upstream_id)
        task.upstream_id = upstream_id
        return view(task)

    async def _timed(self, task: VideoTask, start) -> str:
        channel = self.catalog.snapshot.channels_by_id.get(task.channel_id)
        began = time.monotonic()
        try:
            return await start()
        finally:
            call_record.note_attempt(channel.name if channel else str(task.channel_id), time.monotonic() - began)

    async def get(self, token: Token, video_id: str) -> dict:
        return view(await self._owned(token, video_id))

    async def list(self, token: Token, after: str | None, limit: int | None, order: str | None) -> dict:
        if order not in (None, "", "asc", "desc"):
            raise invalid_request("'order' must be asc or desc.", param="order")
        limit = 20 if limit is None else limit
        if not (1 <= limit <= MAX_LIST):
            raise invalid_request(f"'limit' must be between 1 and {MAX_LIST}.", param="limit")
        if after and not store.looks_like_id(after):
            raise invalid_request("'after' must be a video id.", param="after")
        tasks, more = await self.worker.run(store.list_for_token, token.id, after or None, limit, order == "asc")
        data = [view(t) for t in tasks]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": more}

    async def delete(self, token: Token, video_id: str) -> dict:
        task = await self._owned(token, video_id)
        await self.worker.run(store.mark_deleted, task.id)
        await self.assets.remove(task.asset_path, task.thumbnail_path)
        if task.open and task.upstream_id:
            await self._cancel_upstream(task)
        return {"id": task.id, "object": "video.deleted", "deleted": True}

    async def _cancel_upstream(self, task: VideoTask) -> None:
        """Stop a deleted task the provider is still generating, where it can: best
        effort, since the delete itself is already committed."""
        channel = self.catalog.snapshot.channels_by_id.get(task.channel_id)
        provider = self.registry.video.get(channel.type) if channel else None
        if not isinstance(provider, VideoCanceller):
            return
        try:
            await asyncio.wait_for(provider.cancel(channel, task.upstream_id), self.config.submit_timeout)
        except (GatewayError, asyncio.TimeoutError) as error:
            if isinstance(error, GatewayError):
                upstream_errors.for_client(error, channel, None)
            log.info("video %s: the provider could not cancel it (%s)", task.id, getattr(error, "message", "timeout"))

    async def remix(self, token: Token, video_id: str, body: dict) -> dict:
        async with self.admission.request(token, "video"):
            return await self._remix(token, video_id, body)

    async def _remix(self, token: Token, video_id: str, body: dict) -> dict:
        source = await self._owned(token, video_id)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise invalid_request("'prompt' is required.", param="prompt", code="missing_required_parameter")
        if source.status != "completed" or not source.upstream_id:
            raise GatewayError(409, "Only a completed video can be remixed.", "video_not_ready")
        channel = self.catalog.snapshot.channels_by_id.get(source.channel_id)
        provider = self.registry.video.get(channel.type) if channel else None
        if not isinstance(provider, VideoRemixer):
            raise invalid_request("This video's provider cannot remix videos.", param="video_id",
                                  code="remix_unsupported")
        now = time.time()
        request = dict(source.request, prompt=prompt, remix_of=source.upstream_id)
        task = VideoTask(id=store.new_id(), token_id=token.id, model=source.model, channel_id=source.channel_id,
                         upstream_model=source.upstream_model, request=request, asked=source.asked,
                         created_at=int(now), updated_at=int(now), remixed_from=source.id,
                         lease_owner=self.owner, lease_until=now + self.config.lease,
                         next_poll_at=now + self.config.poll_interval)
        await self.worker.run(store.insert, task)
        return await self._submit(task, lambda: provider.remix(channel, source.upstream_id, prompt), channel, body)

    async def content(self, token: Token, video_id: str, variant: str | None,
                      asked: byte_ranges.ByteRange) -> tuple[str, byte_ranges.Span, AsyncIterator[bytes]]:
        """(content type, the bytes' place in the file, the bytes)."""
        task = await self._owned(token, video_id)
        variant = variant or "video"
        if variant not in ("video", "thumbnail"):
            raise invalid_request("'variant' must be video or thumbnail.", param="variant")
        if task.status != "completed":
            raise GatewayError(409, f"The video is not ready: its status is {task.status}.", "video_not_ready")
        path = task.asset_path if variant == "video" else task.thumbnail_path
        kind = "video/mp4" if variant == "video" else (task.thumbnail_type or "image/webp")
        total = await self.assets.size(path) if path else None
        if total is None:
            if variant == "thumbnail" and task.asset_path:
                raise GatewayError(404, "This video has no thumbnail.", "thumbnail_unavailable", "variant")
            raise GatewayError(410, "The video's content has expired and was removed.", "video_expired")
        span = byte_ranges.resolve(asked, total)
        return kind, span, self.assets.read(path, span.first, span.last)
