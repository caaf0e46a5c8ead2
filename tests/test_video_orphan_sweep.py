"""At start, st-ai removes video files no task owns (e.g. a finished MP4 left by a crash
between moving it into place and committing the task), but never one that another
process sharing the database and folder may still be about to commit."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from server.gateway import Config, open_core
from server.store import videos as store
from server.store.db import open_db
from server.store.videos import VideoTask
from server.video_tasks import VideoConfig

pytestmark = pytest.mark.timeout(30)

LEASE = 120.0


def task(status: str, **fields) -> VideoTask:
    now = int(time.time())
    return VideoTask(id=store.new_id(), token_id=1, model="sim-video", channel_id=1, upstream_model="sim-video",
                     request={"prompt": "x"}, status=status, created_at=now, updated_at=now,
                     next_poll_at=time.time() + 3600, **fields)  # not due: the poller leaves it alone


def put(folder, stem: str, suffix: str = ".mp4", age: float = 0.0) -> str:
    path = folder / f"{stem}-{os.urandom(6).hex()}{suffix}"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100)
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return str(path)


async def test_files_no_task_owns_are_swept_at_start_and_pending_ones_are_kept(tmp_path):
    videos = tmp_path / "assets" / "videos"
    videos.mkdir(parents=True)
    db_path = str(tmp_path / "st-ai.db")
    db = open_db(db_path)

    done = task("completed")
    owned_video = put(videos, done.id, age=10 * LEASE)
    owned_thumb = put(videos, done.id, ".thumb", age=10 * LEASE)
    done.asset_path, done.thumbnail_path = owned_video, owned_thumb
    crash_leftover = put(videos, done.id)              # moved into place, then the process died
    failed = task("failed")
    failed_leftover = put(videos, failed.id)
    pending = task("in_progress", upstream_id="up-1")
    about_to_commit = put(videos, pending.id)          # another live process is finishing it
    abandoned = put(videos, pending.id, age=2 * LEASE)  # older than any lease: its writer is gone
    deleted = task("queued", deleted=1)
    deleted_leftover = put(videos, deleted.id)
    stranger = put(videos, store.new_id())             # no task at all
    junk = put(videos, "not-a-task-name", ".tmp", age=2 * LEASE)
    for row in (done, failed, pending, deleted):
        store.insert(db, row)
    db.close()

    removed = [crash_leftover, failed_leftover, abandoned, deleted_leftover, stranger, junk]
    kept = [owned_video, owned_thumb, about_to_commit]
    config = Config(db_path=db_path, assets_dir=str(tmp_path / "assets"), video=VideoConfig(lease=LEASE))
    async with open_core(config, "http://127.0.0.1:1"):
        deadline = time.monotonic() + 10
        while any(os.path.exists(p) for p in removed):
            assert time.monotonic() < deadline, [p for p in removed if os.path.exists(p)]
            await asyncio.sleep(0.05)
        assert all(os.path.exists(p) for p in kept)
    assert sorted(os.listdir(videos)) == sorted(os.path.basename(p) for p in kept)


async def test_a_file_committed_while_the_sweep_runs_is_kept(tmp_path):
    """The folder is listed before the table is read: a file whose task commits in
    between is then named by the table, not taken for an orphan."""
    from server.assets import AssetStore
    from server.store.db import DbWorker
    from server.video_poller import VideoPoller

    assets = AssetStore(str(tmp_path / "assets"))
    worker = DbWorker(str(tmp_path / "st-ai.db"))
    pending = task("in_progress", upstream_id="up-1")
    await worker.run(store.insert, pending)
    path = put(assets.root / "videos", pending.id, age=2 * LEASE)  # old: a slow download's last write

    listing = assets.files

    async def list_then_commit(folder: str):
        found = await listing(folder)
        await worker.run(store.update, pending.id, store.OPEN, status="completed", asset_path=path)
        return found

    assets.files = list_then_commit
    poller = VideoPoller(None, None, worker, assets, VideoConfig(lease=LEASE), "test-owner", billing=None)
    try:
        await poller._sweep_orphans()
        assert os.path.exists(path)
    finally:
        await asyncio.to_thread(worker.close)
