"""Opening the database (migrated to this st-ai's schema: server/store/schema.py), and
the one thread that talks to it.

Every SQLite call the server makes runs on `DbWorker`'s single thread, never on the
event loop, but for the WAL checkpoints (server/store/checkpoints.py). The CLI calls the
same store functions directly: it has no loop.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

import sqlite_utils

from server.store import schema

DEFAULT_PATH = "st-ai.db"
T = TypeVar("T")

# sqlite3 binds exact ints, floats and strings directly; any other value (None, a bool)
# first goes through its adapter lookup, which ends by raising and swallowing an
# AttributeError (no `__conform__`): a few thousand instructions per parameter, and every
# request's books bind several. Registered adapters give the same stored values (None is NULL,
# a bool its 0 or 1) by a dictionary lookup instead. sqlite3's registry is process-wide.
sqlite3.register_adapter(type(None), lambda value: value)
sqlite3.register_adapter(bool, int)


def default_path() -> str:
    return os.environ.get("ST_AI_DB") or DEFAULT_PATH


def open_db(path: str) -> sqlite_utils.Database:
    # Python's default isolation: `with db.conn:` is then a real transaction.
    conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    try:
        schema.migrate(conn)
    except BaseException:
        conn.close()
        raise
    return db


def catalog_version(db: sqlite_utils.Database) -> int:
    """Moves whenever any process changes what the gateway's catalog holds (server/store/
    schema.py `CATALOG_TABLES`), and only then."""
    return db.execute('SELECT "n" FROM "catalog_changes" WHERE "id" = 1').fetchone()[0]


class DbWorker:
    """Runs blocking database calls on one dedicated thread, in the order they were asked for.

    A call goes over a SimpleQueue and its result comes back through the loop's
    `call_soon_threadsafe`: no executor, no concurrent.futures.Future (whose lock and
    condition cost every call several futex system calls between the two threads), one hop
    each way. As with an executor, a call whose caller was cancelled before the thread
    reached it is not run at all. The thread is a daemon: `close` ends it (the gateway always
    closes its worker); one never closed does not hold the interpreter at exit, and SQLite
    takes back a transaction cut short."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="st-ai-db", daemon=True)
        self._thread.start()
        opened: concurrent.futures.Future[sqlite_utils.Database] = concurrent.futures.Future()
        self._calls.put(_Call(functools.partial(open_db, path), None, opened))
        try:
            self.db: sqlite_utils.Database = opened.result()
        except BaseException:
            self._stop()  # e.g. a database from a newer st-ai
            raise

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        return await self.start(fn, *args, **kwargs)

    def start(self, fn: Callable[..., T], *args: object, **kwargs: object) -> "asyncio.Future[T]":
        """`run` for a caller that goes on meanwhile: the future resolves on the loop once the
        thread has run `fn`."""
        if self._stopped:
            raise RuntimeError("the database worker is closed")
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._calls.put(_Call(functools.partial(fn, self.db, *args, **kwargs), loop, done))
        return done

    def post(self, fn: Callable[[sqlite_utils.Database], object]) -> None:
        """Run `fn(db)` on the thread in its turn, asked from any thread, its result unread
        (`fn` deals with its own failures)."""
        if not self._stopped:
            self._calls.put(_Call(functools.partial(fn, self.db), None, concurrent.futures.Future()))

    def close(self) -> None:
        if self._stopped:
            return
        closed: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._calls.put(_Call(self.db.close, None, closed))
        try:
            closed.result()
        finally:
            self._stop()

    def _stop(self) -> None:
        self._stopped = True
        self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            _run(call)


def _run(call: "_Call") -> None:
    if call.loop is None:  # from a thread without a loop (opening, closing)
        if call.done.set_running_or_notify_cancel():  # type: ignore[union-attr]
            try:
                call.done.set_result(call.fn())  # type: ignore[union-attr]
            except BaseException as exc:
                call.done.set_exception(exc)  # type: ignore[union-attr]
        return
    if call.done.cancelled():  # its caller left before its turn: nothing to do
        return
    try:
        result = call.fn()
    except BaseException as exc:
        _tell(call.loop, _failed, call.done, exc)
    else:
        _tell(call.loop, _succeeded, call.done, result)


@dataclass(slots=True)
class _Call:
    fn: Callable[[], object]
    loop: asyncio.AbstractEventLoop | None
    done: "asyncio.Future | concurrent.futures.Future"


def _tell(loop: asyncio.AbstractEventLoop, how: Callable[..., None], done: asyncio.Future, value: object) -> None:
    try:
        loop.call_soon_threadsafe(how, done, value)
    except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
        pass


def _succeeded(done: asyncio.Future, result: object) -> None:
    if not done.done():
        done.set_result(result)


def _failed(done: asyncio.Future, exc: BaseException) -> None:
    if not done.done():
        done.set_exception(exc)
