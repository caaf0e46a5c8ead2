"""Moves video tasks forward in the background (each on the channel that accepted it when
it was created, server/video_tasks.py): polls them with backoff (many at once, a few per channel), downloads finished
videos into the asset store, and finalises each task exactly once, even with several
processes on one database. After a restart or a crash it picks up where it was."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from server.assets import AssetStore, InvalidAsset
from server import metrics, redact, upstream_errors
from server.catalog import Catalog
from server.errors import GatewayError
from server.leased_work import run_claims
from server.media_types import image_type
from server.providers.interface import TaskState
from server.providers.registry import Registry
from server.billing import video_billing
from server.billing.video_billing import VideoBilling
from server.store import video_money
from server.store import videos as store
from server.store.db import DbWorker
from server.store.videos import VideoTask
from server.url_guard import Refused
from server.video_probe import InvalidVideo, probe_video
from server.video_tasks import VideoConfig

log = logging.getLogger("st_ai.videos")
CLAIM_BATCH = 64
GIVE_UP_AFTER = 5  # consecutive non-transient failures for one task
STALE_PARTIAL_SECONDS = 3600  # a download untouched this long was left by a crashed process


def owner_alive(owner: str) -> bool:
    """False only for a lease holder on this host whose process is gone (kill -9)."""
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's process: its lease expires by time
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _task_of(path: str) -> str:
    # asset files are named "<task id>-<random>.<suffix>" (AssetStore._unique)
    return os.path.basename(path).rsplit("-", 1)[0]


class VideoPoller:
    def __init__(self, catalog: Catalog, registry: Registry, worker: DbWorker, assets: AssetStore,
                 config: VideoConfig, owner: str, billing: VideoBilling, thumbnailer=None) -> None:
        self.catalog, self.registry, self.worker, self.assets = catalog, registry, worker, assets
        self.config, self.owner, self.billing = config, owner, billing
        self.thumbnailer = thumbnailer  # (mp4 path) -> (bytes, content type), run in a thread
        self._running: dict[str, asyncio.Task] = {}
        self._per_channel: dict[int, asyncio.Semaphore] = {}
        self._orphans_swept = 0.0  # the first sweep, at start, looks for them

    async def run(self) -> None:
        await run_claims(lambda now: self.worker.run(store.claim_due, self.owner, now, self.config.lease, CLAIM_BATCH),
                         self._work, self._running, tick=max(0.05, min(1.0, self.config.poll_interval / 2)),
                         what="video", housekeeping=self._sweep,
                         hand_back=lambda: self.worker.run(store.free_dead_leases, [self.owner]))

    async def _sweep(self) -> None:
        """Free leases of crashed local processes; drop tasks a stopped process was
        submitting; remove content past its retention."""
        try:
            owners = await self.worker.run(store.lease_owners)
            dead = [o for o in owners if o != self.owner and not owner_alive(o)]
            if dead:
                freed = await self.worker.run(store.free_dead_leases, dead)
                log.info("resuming %d video tasks left by stopped processes", freed)
            for task_id in await self.worker.run(video_money.unconfirmed_past, time.time()):
                # its create never answered: the task goes, refunded (had the provider
                # accepted it just before the stop, its id was never learnt)
                if await self.billing.interrupted(task_id):
                    log.info("video %s: its process stopped while submitting it; dropped, refunded", task_id)
            for task in await self.worker.run(store.expired_assets, int(time.time())):
                await self.assets.remove(task.asset_path, task.thumbnail_path)
                await self.worker.run(store.clear_asset, task.id)
            await self.assets.remove_stale_partials(STALE_PARTIAL_SECONDS)
            await self.assets.remove_old_images(self.config.retention)
            if time.time() - self._orphans_swept > self.config.lease:
                await self._sweep_orphans()
        except Exception:
            log.exception("video housekeeping failed")

    async def _sweep_orphans(self) -> None:
        """Remove video files no task owns, such as one left by a crash between moving
        it into place and committing. Several processes may share the folder: a file
        of a task that is still open is kept for a lease, as its writer may be about to
        commit it; once the task is final no one can commit it any more."""
        self._orphans_swept = time.time()
        listed = await self.assets.files("videos")  # before reading the table: see below
        # a file committed after the listing is named by the table; one not named there
        # can be committed later only while its task is open
        claimed, pending = await self.worker.run(store.asset_claims)
        claimed_names = {os.path.basename(path) for path in claimed}
        cutoff = time.time() - self.config.lease
        orphans = [path for path, modified in listed
                   if os.path.basename(path) not in claimed_names
                   and (_task_of(path) not in pending or modified < cutoff)]
        if orphans:
            await self.assets.remove(*orphans)
            log.info("removed %d video files no task owns", len(orphans))

    def _backoff(self, task: VideoTask) -> float:
        # long tasks are polled less often, up to four times the interval
        return self.config.poll_interval * min(4.0, 1.0 + task.attempts / 10)

    async def _work(self, task: VideoTask) -> None:
        next_poll = time.time() + self._backoff(task)
        changes: dict = {"attempts": task.attempts + 1}
        try:
            semaphore = self._per_channel.setdefault(task.channel_id, asyncio.Semaphore(self.config.per_channel))
            async with semaphore:
                changes |= await self._advance(task)
        except asyncio.CancelledError:
            next_poll = time.time()  # shutting down: whoever runs next picks it up at once
            raise
        except GatewayError as error:
            upstream_errors.for_client(error, self.catalog.snapshot.channels_by_id.get(task.channel_id), None)
            if error.retryable:  # 429, network blip: leave the task as it is
                log.info("video %s: transient upstream error (%s)", task.id, error.message)
            else:
                failures = task.failures + 1
                changes["failures"] = failures
                if failures >= GIVE_UP_AFTER:
                    await self._fail(task, error.code or "upstream_error", error.message, error.http_status)
        except Exception:
            log.exception("video %s: unexpected error", task.id)
        finally:
            self._running.pop(task.id, None)
            await asyncio.shield(self.worker.run(store.release, task.id, self.owner, next_poll, **changes))

    async def _fail(self, task: VideoTask, code: str, message: str, status: int = video_billing.FAILED) -> bool:
        """Fail with st-ai's own code, and refund the task, in one transaction; the message
        may quote an upstream, so it is scrubbed."""
        channel = self.catalog.snapshot.channels_by_id.get(task.channel_id)
        failed = await self.billing.fail(task.id, status, code, redact.scrub(message, channel))
        if failed:
            metrics.video_task("failed")
        return failed

    async def _advance(self, task: VideoTask) -> dict:
        """One step for one task; returns column changes to store with the lease release."""
        if time.time() - task.created_at > self.config.timeout:
            await self._fail(task, "timeout", f"The video was not finished within {int(self.config.timeout)} "
                             "seconds and was given up.", video_billing.TIMED_OUT)
            return {}
        channel = self.catalog.snapshot.channels_by_id.get(task.channel_id)
        provider = self.registry.video.get(channel.type) if channel else None
        if provider is None:
            await self._fail(task, "channel_unavailable", "The channel this video was sent to no longer exists.")
            return {}
        if not task.upstream_id:  # left by an earlier release, which submitted tasks after answering
            await self._fail(task, "not_submitted", "st-ai stopped before it could submit this video; nothing was "
                             "charged. Please create it again.")
            return {}
        state = await provider.poll(channel, task.upstream_id)
        if state.status == "failed":
            # what the provider reported is shown to the client: known codes only, scrubbed words
            await self._fail(task, *upstream_errors.task_failure(channel, state.error_code, state.error_message))
            return {}
        if state.status == "completed":
            await self._finish(task, channel, provider, state)
            return {}
        changes = {"failures": 0, "upstream_updated_at": state.updated_at}
        if state.status != task.status or state.progress != task.progress:
            await self.worker.run(store.update, task.id, store.OPEN, status=state.status,
                                  progress=max(task.progress, min(99, state.progress)))
            if state.status != task.status and state.status in store.OPEN:
                metrics.video_task(state.status)
        return changes

    async def _finish(self, task: VideoTask, channel, provider, state: TaskState) -> None:
        try:
            video = await self.assets.save_stream("videos", task.id, ".mp4",
                                                  provider.download(channel, task.upstream_id, state, "video"),
                                                  self.config.max_video_bytes, expect_mp4=True, verify=probe_video)
        except (InvalidAsset, InvalidVideo) as problem:
            # the same file would come back on every try: fail now, and book nothing
            await self._fail(task, "invalid_video", f"The provider's video could not be used: {problem}.")
            return
        except Refused as refusal:  # a URL st-ai will not fetch, or a file over the size cap
            await self._fail(task, refusal.code or "unsafe_url", refusal.message)
            return
        thumbnail, thumbnail_type = await self._thumbnail(task, channel, provider, state, video.path)
        now = int(time.time())
        asked = task.asked or {}
        usage = {"usage": state.usage} if state.usage else {}  # shown in the task's metadata
        # the status, the reservation's end, the token's `used` and the ledger row:
        # one transaction, which only the process winning the swap commits
        won = await self.billing.complete(task.id, dict(
            progress=100, completed_at=now, expires_at=now + int(self.config.retention), asset_path=video.path,
            asset_size=video.size, thumbnail_path=thumbnail, thumbnail_type=thumbnail_type,
            cost=float(asked.get("duration") or 0), upstream_updated_at=state.updated_at,
            **({"asked": {**asked, **usage}} if usage else {})), usage=state.usage)
        if not won:  # another process finalised it first, or it was deleted: drop our files
            await self.assets.remove(video.path, thumbnail)
        else:
            metrics.video_task("completed")

    async def _thumbnail(self, task, channel, provider, state, video_path: str) -> tuple[str | None, str | None]:
        try:
            stored = await self.assets.save_stream("videos", task.id, ".thumb",
                                                   provider.download(channel, task.upstream_id, state, "thumbnail"),
                                                   50 * 1024 * 1024, expect_mp4=False)
            return stored.path, image_type(await self._head(stored.path)) or "application/octet-stream"
        except (GatewayError, InvalidAsset, OSError):
            pass
        if self.thumbnailer is None:
            return None, None
        try:
            data, kind = await asyncio.to_thread(self.thumbnailer, video_path)
        except Exception:
            log.warning("video %s: no thumbnail could be extracted", task.id)
            return None, None
        stored = await self.assets.save_bytes("videos", task.id, ".thumb", data)
        return stored.path, kind

    async def _head(self, path: str) -> bytes:
        async for chunk in self.assets.read(path, 0, 15):
            return chunk
        return b""

