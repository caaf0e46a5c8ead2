"""Asynchronous video tasks, transport-free: create, read, list, delete, remix and the
finished content. A create (or remix) answers once a channel accepted the task, tried
through the one attempt loop (video_submission.py); the background poller
(video_poller.py) then moves the task forward on that channel."""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from typing import AsyncIterator, Awaitable, Callable

import orjson

from server import byte_ranges, call_record, metrics, routing, upstream_errors, video_submission
from server.assets import AssetStore
from server.billing.admission import Ticket, failure_status
from server.billing.video_billing import VideoBilling
from server.callback_urls import CallbackRules
from server.catalog import Catalog
from server.core.attempts import AttemptLoop
from server.draining import cancelled_status
from server.errors import GatewayError, invalid_request
from server.providers.interface import VideoCanceller, VideoRemixer, VideoRequest
from server.providers.registry import Registry
from server.store import video_money, webhook_events
from server.store import videos as store
from server.store.db import DbWorker
from server.store.tokens import Token
from server.store.videos import VideoTask
from server.video_submission import Submission

MAX_LIST = 100
KEY_RETENTION = 24 * 3600.0  # how long an Idempotency-Key names its task
REPLAY_WAIT = 5.0  # how long a repeated key waits for another process's request to be submitted
REPLAY_POLL = 0.02
DRAIN_GRACE = 5.0  # seconds a shutdown waits for creates whose client left to be recorded
log = logging.getLogger("st_ai.videos")


@dataclass(frozen=True)
class VideoConfig:
    poll_interval: float = 5.0        # seconds between polls of one task (grows with backoff)
    timeout: float = 3600.0           # a task still unfinished after this is failed
    retention: float = 7 * 86400.0    # how long finished content is kept
    per_channel: int = 4              # concurrent upstream calls per channel
    lease: float = 120.0              # how long a process may hold a task it is working on
    submit_timeout: float = 60.0      # a create's deadline for a channel to accept its task
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


def request_digest(kind: str, body: dict) -> str:
    """What an Idempotency-Key is bound to: the endpoint and the request, as the client sent it."""
    return hashlib.sha256(orjson.dumps([kind, body], option=orjson.OPT_SORT_KEYS, default=_bytes)).hexdigest()


def _bytes(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):  # an uploaded input_reference
        return hashlib.sha256(value).hexdigest()
    raise TypeError(type(value).__name__)


def key_reused() -> GatewayError:
    return GatewayError(409, "This Idempotency-Key was already used with a different request; send a new key "
                             "for a new request.", "idempotency_key_reused", type="invalid_request_error")


def key_in_use() -> GatewayError:
    return GatewayError(409, "A request with this Idempotency-Key is still being processed; retry in a moment.",
                        "idempotency_key_in_use", type="invalid_request_error")


class VideoTasks:
    def __init__(self, catalog: Catalog, registry: Registry, worker: DbWorker, assets: AssetStore,
                 config: VideoConfig, owner: str, billing: VideoBilling,
                 callbacks: CallbackRules | None = None, attempts: AttemptLoop | None = None) -> None:
        self.catalog, self.registry, self.worker, self.assets = catalog, registry, worker, assets
        self.config, self.owner, self.billing = config, owner, billing
        self.callbacks = callbacks  # server/callback_urls.py: which callback_url a create may name
        self.attempts = attempts or AttemptLoop()  # the one loop the chat and image relays use too
        self._after: set[asyncio.Task] = set()  # what a create whose client left still finishes
        self._keys: dict[tuple[int, str], list] = {}  # (token, Idempotency-Key) -> [lock, users]

    async def _owned(self, token: Token, video_id: str) -> VideoTask:
        if not store.looks_like_id(video_id):
            raise not_found(video_id)
        task = await self.worker.run(store.get, video_id)
        # another token's task answers exactly like one that does not exist; so does one
        # still being submitted (its create has not answered)
        if task is None or task.token_id != token.id or task.deleted or not task.confirmed:
            raise not_found(video_id)
        call_record.note_model(task.model)
        return task

    async def create(self, token: Token, body: dict, key: str | None = None, timeout: float | None = None) -> dict:
        """The new task once a channel accepted it (`timeout`: the client's own deadline)."""
        # a create refused (bad body, unknown model, quota...) is booked by the request context
        async with self.billing.request(token, body.get("model")) as ticket:
            return await self._create(ticket, body, key, self._deadline(timeout))

    def _deadline(self, timeout: float | None) -> float:
        """A submission's deadline, shared by its attempts: the video submit timeout, or
        the client's own when shorter."""
        limit = self.config.submit_timeout
        return self.attempts.clock() + (limit if timeout is None else min(timeout, limit))

    async def _create(self, ticket: Ticket, body: dict, key: str | None, deadline: float) -> dict:
        token = ticket.token
        request = _normalise(body)
        callback_url = await self._callback_url(token, body.get("callback_url"))
        model = request.model or routing.default_model(self.catalog.snapshot, token,
                                                       self.registry.video_types, "video")
        channels = routing.candidates(self.catalog.snapshot, token, model, self.registry.video_types)
        submission = video_submission.creating(channels, self.registry.video, request, model, serialise_request)
        await video_submission.check_inputs(self.registry.video, submission)  # a 400 here: nothing was sent
        digest = request_digest("create", body)
        first = submission.offers[0]

        def task(now: float) -> VideoTask:
            return VideoTask(id=store.new_id(), token_id=token.id, model=model, channel_id=first.channel.id,
                             upstream_model=first.upstream_model, request=first.request, asked=first.asked,
                             created_at=int(now), updated_at=int(now), confirmed=0,
                             idempotency_key=key, request_hash=digest if key else None, callback_url=callback_url)
        return await self._new_or_replay(ticket, key, digest, model, submission, task, body, deadline)

    async def _new_or_replay(self, ticket: Ticket, key: str | None, digest: str, model: str,
                             submission: Submission, task: Callable[[float], VideoTask], body: dict,
                             deadline: float) -> dict:
        """The task an earlier request with this Idempotency-Key made, or a new one: admitted,
        stored as being submitted, then sent upstream. Creates with one key wait for each
        other here, so the repeats of a request sent at once reserve nothing (and are never
        refused for quota) and send nothing while the first is being submitted; they then
        answer with its task, or try again themselves when no channel accepted it."""
        async with self._one_at_a_time(ticket.token.id, key):
            if key and (replay := await self._replay(ticket.token, key, digest)) is not None:
                return replay
            await self.billing.admit(ticket, model, [offer.asked for offer in submission.offers])
            stored = await self._store(ticket.token, task(time.time()), ticket, key, digest)
            if isinstance(stored, dict):  # another process's request with the key stored its task first
                return stored
            return await self._submit(ticket, stored, submission, body, deadline)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, token_id: int, key: str | None) -> AsyncIterator[None]:
        if not key:
            yield
            return
        held = self._keys.setdefault((token_id, key), [asyncio.Lock(), 0])
        held[1] += 1
        try:
            async with held[0]:
                yield
        finally:
            held[1] -= 1
            if not held[1]:
                del self._keys[(token_id, key)]

    async def _callback_url(self, token: Token, url: object) -> str | None:
        """A create's own webhook URL, checked before anything is sent upstream: signed with
        the token's secret, so the token needs one."""
        if url is None or url == "":
            return None
        if self.callbacks is None:
            raise invalid_request("This st-ai sends no webhooks.", param="callback_url")
        await self.callbacks.check(url)
        if not (await self.worker.run(webhook_events.token_webhook, token.id)).has_secret:
            raise invalid_request("'callback_url' needs a webhook secret to sign its events, and this token has "
                                  "none; ask the operator to make one (st-ai token update NAME "
                                  "--rotate-webhook-secret).", param="callback_url", code="webhook_secret_missing")
        return url

    async def _replay(self, token: Token, key: str, digest: str) -> dict | None:
        """The task an earlier request with this Idempotency-Key made, once a channel
        accepted it; None when the key is new (or was forgotten, or no channel accepted
        its request)."""
        deadline = time.monotonic() + REPLAY_WAIT
        while True:
            held = await self.worker.run(video_money.by_key, token.id, key, time.time() - KEY_RETENTION)
            if held is None:
                return None
            if held.request_hash != digest:
                call_record.note_error("idempotency_key_reused", 409)
                raise key_reused()
            if held.confirmed:
                call_record.note_model(held.model)
                return view(held)
            if time.monotonic() > deadline:  # another process is still submitting it
                call_record.note_error("idempotency_key_in_use", 409)
                raise key_in_use()
            await asyncio.sleep(REPLAY_POLL)

    async def _store(self, token: Token, task: VideoTask, ticket: Ticket, key: str | None,
                     digest: str) -> VideoTask | dict:
        """Insert the task, not yet accepted by any channel (`confirmed` 0: invisible to its
        client and to pollers), with its reservation. Written before anything is sent, so
        its Idempotency-Key holds while it is submitted and a crash leaves a row the sweep
        drops (and refunds). A concurrent request with the same key that stored its task
        first: the answer is that task."""
        now = time.time()
        # held for the whole submission, and then some: a live process is never swept
        task.lease_owner, task.lease_until = self.owner, now + self.config.submit_timeout + self.config.lease
        self.billing.stamp(task, ticket)
        inserting = asyncio.ensure_future(self.billing.insert(task, now - KEY_RETENTION))
        try:
            holder = await asyncio.shield(inserting)
        except asyncio.CancelledError:
            # the client left while the task was being written: once written, it goes
            inserting.add_done_callback(lambda done: self._later(self._drop_inserted(done, task.id, ticket)))
            raise
        except BaseException as exc:
            self.billing.abandon(ticket, *failure_status(exc))
            raise
        if holder is None:
            return task
        self.billing.handed_over(ticket)  # its reservation was released with the holder found
        replay = await self._replay(token, key, digest) if key else None
        if replay is None:
            raise key_in_use()
        return replay

    async def _drop_inserted(self, inserting: asyncio.Future, task_id: str, ticket: Ticket) -> None:
        if inserting.cancelled() or inserting.exception() is not None:
            self.billing.abandon(ticket, *cancelled_status())
            return
        self.billing.handed_over(ticket)  # to the task, or released with the key's holder found
        if inserting.result() is None:
            await self.billing.discard(task_id, *cancelled_status(), ticket.attempts)

    async def _submit(self, ticket: Ticket, task: VideoTask, submission: Submission, body: dict,
                      deadline: float) -> dict:
        """Send the stored task upstream through the attempt loop; the task as its client
        sees it once a channel accepted it. When none did (or the client left first), the
        task goes, never seen, its create booked at zero with its attempts."""
        try:
            won = await self.attempts.first(ticket, submission.channels, task.model, submission.call, deadline,
                                            request=body)
        except BaseException as exc:
            self.billing.handed_over(ticket)  # booked with the task it made
            discarding = self.billing.discard(task.id, *failure_status(exc), ticket.attempts)
            if isinstance(exc, asyncio.CancelledError):
                self._later(discarding)  # the upstream call was cancelled with the client's request
            else:
                await discarding
            raise
        offer = submission.offer(won.channel)
        call_record.note_channel(won.channel.name)
        changes = dict(channel_id=won.channel.id, upstream_model=offer.upstream_model, upstream_id=won.value,
                       asked=offer.asked, request=video_money.with_attempts(offer.request, ticket.attempts),
                       charge=self.billing.cost(ticket, task.model, offer.asked),
                       next_poll_at=time.time() + self.config.poll_interval)
        # accepted upstream: whatever happens to the client now, the task is kept (and billed)
        accepting = self._later(self._accept(task.id, ticket, changes))
        accepted = await asyncio.shield(accepting)
        return view(accepted)

    async def _accept(self, task_id: str, ticket: Ticket, changes: dict) -> VideoTask:
        try:
            accepted = await self.billing.accept(task_id, changes)
        except BaseException:
            # the task could not be recorded: it goes, refunded (the provider's task is lost)
            self.billing.handed_over(ticket)
            await asyncio.shield(self.billing.discard(task_id, 500, "internal_error", ticket.attempts))
            raise
        self.billing.handed_over(ticket)
        if accepted is None:  # deleted by the operator while it was being submitted
            raise not_found(task_id)
        metrics.video_task(accepted.status)
        return accepted

    def _later(self, work: Awaitable) -> asyncio.Task:
        """Run `work` to its end even if the request that started it is cancelled."""
        job = asyncio.ensure_future(work)
        self._after.add(job)
        job.add_done_callback(self._finished_after)
        return job

    def _finished_after(self, job: asyncio.Task) -> None:
        self._after.discard(job)
        if not job.cancelled() and job.exception() is not None and not isinstance(job.exception(), GatewayError):
            log.error("finishing a video create failed", exc_info=job.exception())

    async def drain(self, grace: float = DRAIN_GRACE) -> None:
        """At shutdown: let what creates whose client left still do (record an accepted
        task, drop one no channel accepted) finish for a moment."""
        if not self._after:
            return
        _, pending = await asyncio.wait(list(self._after), timeout=grace)
        for job in pending:
            job.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

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
        task = await self.billing.delete(task.id) or task  # refunded here if it was still open
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

    async def remix(self, token: Token, video_id: str, body: dict, key: str | None = None,
                    timeout: float | None = None) -> dict:
        async with self.billing.request(token) as ticket:
            return await self._remix(ticket, video_id, body, key, self._deadline(timeout))

    async def _remix(self, ticket: Ticket, video_id: str, body: dict, key: str | None, deadline: float) -> dict:
        token = ticket.token
        source = await self._owned(token, video_id)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise invalid_request("'prompt' is required.", param="prompt", code="missing_required_parameter")
        callback_url = await self._callback_url(token, body.get("callback_url"))
        if source.status != "completed" or not source.upstream_id:
            raise GatewayError(409, "Only a completed video can be remixed.", "video_not_ready")
        channel = self.catalog.snapshot.channels_by_id.get(source.channel_id)
        provider = self.registry.video.get(channel.type) if channel else None
        if not isinstance(provider, VideoRemixer):
            raise invalid_request("This video's provider cannot remix videos.", param="video_id",
                                  code="remix_unsupported")
        call_record.note_channel(channel.name)
        digest = request_digest("remix", {**body, "video_id": source.id})
        request = {**{k: v for k, v in source.request.items() if k != "attempts"},
                   "prompt": prompt, "remix_of": source.upstream_id}
        submission = video_submission.remixing(channel, provider, source.upstream_model, source.upstream_id, prompt,
                                               source.asked, request)

        def task(now: float) -> VideoTask:
            return VideoTask(id=store.new_id(), token_id=token.id, model=source.model, channel_id=source.channel_id,
                             upstream_model=source.upstream_model, request=request, asked=source.asked,
                             created_at=int(now), updated_at=int(now), remixed_from=source.id, confirmed=0,
                             idempotency_key=key, request_hash=digest if key else None, callback_url=callback_url)
        return await self._new_or_replay(ticket, key, digest, source.model, submission, task, body, deadline)

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
