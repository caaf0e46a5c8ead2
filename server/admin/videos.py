"""Every token's video tasks, for the operator: list (by token and status, paged), read,
and delete through the very path a client's delete takes (VideoTasks.delete), so what
that path does on delete (files removed, the provider asked to stop, refunds) applies."""
from __future__ import annotations

import aiohttp
import sqlite_utils

from server.admin import audit
from server.admin.errors import AdminError, NotFound
from server.store import tokens as token_store
from server.store import video_admin
from server.store import videos as video_store
from server.assets import AssetStore
from server.billing.admission import Admission
from server.billing.group_commit import GroupCommit
from server.billing.video_billing import VideoBilling
from server.catalog import Catalog
from server.providers.interface import Upstream
from server.providers.registry import Registry
from server.store.db import DbWorker
from server.store.tokens import Token
from server.store.videos import VideoTask
from server.video_tasks import MAX_LIST, VideoConfig, VideoTasks, process_owner, view

STATUSES = ("queued", "in_progress", "completed", "failed")


def _names(db: sqlite_utils.Database, table: str) -> dict[int, str]:
    return dict(db.conn.execute(f"SELECT id, name FROM {table}").fetchall())


def _view(task: VideoTask, token_names: dict[int, str], channel_names: dict[int, str]) -> dict:
    return {"video": view(task), "token": token_names.get(task.token_id, ""),
            "channel": channel_names.get(task.channel_id, ""), "deleted": bool(task.deleted)}


def list_tasks(db: sqlite_utils.Database, body: dict) -> dict:
    limit = body.get("limit", 20)
    if not 1 <= limit <= MAX_LIST:
        raise AdminError(f"limit must be from 1 to {MAX_LIST}")
    status = body.get("status") or None
    if status is not None and status not in STATUSES:
        raise AdminError(f"status must be one of {', '.join(STATUSES)}")
    token_id = None
    if body.get("token"):
        try:
            token_id = token_store.get(db, body["token"]).id
        except token_store.TokenError:
            raise NotFound(f"no token named {body['token']!r}") from None
    after = body.get("after") or None
    if after is not None and not video_store.looks_like_id(after):
        raise AdminError("after must be a video id")
    found, more = video_admin.list_all(db, token_id, status, after, limit, bool(body.get("include_deleted")))
    tokens, channels = _names(db, "tokens"), _names(db, "channels")
    data = [_view(task, tokens, channels) for task in found]
    return {"object": "list", "data": data, "last_id": data[-1]["video"]["id"] if data else None, "has_more": more}


def _task(db: sqlite_utils.Database, video_id: str) -> VideoTask:
    task = video_store.get(db, video_id) if video_store.looks_like_id(video_id) else None
    if task is None:
        raise NotFound(f"no video task with id {video_id[:80]!r}")
    return task


def get_task(db: sqlite_utils.Database, body: dict) -> dict:
    task = _task(db, body.get("video_id", ""))
    return _view(task, _names(db, "tokens"), _names(db, "channels"))


def _owner(db: sqlite_utils.Database, video_id: str) -> Token:
    """The token the task belongs to, as the client delete path checks ownership by it.
    A deleted token's tasks stay; they are deleted on behalf of the token id they name."""
    task = _task(db, video_id)
    if task.deleted:
        raise NotFound(f"the video task {video_id!r} is already deleted")
    row = db.conn.execute("SELECT name FROM tokens WHERE id = ?", [task.token_id]).fetchone()
    if row is not None:
        return token_store.get(db, row[0])
    return Token(id=task.token_id, name="", key_hash="", key_hint="", enabled=False, expires_at=None,
                 models=None, created_at=0)


async def delete_task(worker: DbWorker, tasks: VideoTasks, actor: audit.Actor, body: dict) -> dict:
    video_id = body.get("video_id", "")
    owner = await worker.run(_owner, video_id)
    deleted = await tasks.delete(owner, video_id)
    await worker.run(audit.record, actor, "video.delete", video_id, {"token": owner.name})
    return deleted


async def delete_alone(db_path: str, assets_dir: str, actor: audit.Actor, video_id: str) -> dict:
    """`delete_task` outside a server (the CLI): the same VideoTasks path, with a client
    of its own for the provider's cancel call."""
    worker = DbWorker(db_path)
    try:
        catalog = Catalog(worker)
        await catalog.load()
        async with aiohttp.ClientSession() as http:
            assets = AssetStore(assets_dir)
            owner = process_owner()
            # a delete books its refund itself (server/store/video_money.py); nothing is admitted
            billing = VideoBilling(worker, Admission(worker, GroupCommit(worker), owner, catalog))
            tasks = VideoTasks(catalog, Registry.build(Upstream(http, assets)), worker, assets, VideoConfig(),
                               owner, billing)
            return await delete_task(worker, tasks, actor, {"video_id": video_id})
    finally:
        worker.close()
