"""WAL checkpoints on a thread of their own, off the request path.

By SQLite's default the connection whose commit takes the WAL past 1000 pages copies the
WAL back into the database there and then, with two fsyncs: on the gateway's database
thread a stall of several milliseconds for every request waiting on it (at one request at
a time, most of st-ai's p99). Here a thread with its own connection copies the WAL back
every `INTERVAL` in PASSIVE mode, which never waits for or blocks a writer, and the
database thread's own checkpoints wait for `BACKSTOP_PAGES` (should this thread fall
behind or stop).

A writer rewinds the WAL to its start only when it finds every frame copied back, and the
commits made during a pass are not: a round passes again while its last pass found new
frames (the few commits made meanwhile). Under steady load the commits can keep coming
faster than a pass ends; the round's last pass is then the database thread's own, in its
turn between two writes, where no commit of this process can come meanwhile and what is
left to copy is what the round's passes missed. Without these the WAL would grow to the
backstop under steady traffic, and every rewind would be a full checkpoint on the request
path again. Under `serve --workers N` at full load the other processes' commits keep coming
during that last pass too: the WAL then stays at the backstop, rewound by a database thread's
own checkpoint there, which copies only what this thread has not.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Callable

import sqlite_utils

log = logging.getLogger("st-ai.store")

INTERVAL = 1.0  # seconds between rounds: a longer one copies a page rewritten often once
BACKSTOP_PAGES = 10_000  # ~40 MB of WAL at SQLite's 4 KiB pages
MAX_PASSES = 8  # a round that never catches up with the writers ends; the next tries again


def leave_to_background(db: sqlite_utils.Database) -> None:
    """The gateway's own connection checkpoints only past the backstop."""
    db.conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")


def checkpoint_pass(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """One PASSIVE pass: (busy, frames in the WAL, frames copied back)."""
    # fetchall: the statement is done with, holding nothing, when the next pass starts
    [(busy, frames, copied)] = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return busy, frames, copied


def catch_up(conn: sqlite3.Connection, max_passes: int = MAX_PASSES) -> bool:
    """Copy the WAL back into the database until a pass finds no new frame; True when one
    did (the WAL was then wholly copied back), False when the writers stayed ahead, another
    checkpoint was running or the database is not in WAL mode."""
    previous = None
    for _ in range(max_passes):
        busy, frames, copied = checkpoint_pass(conn)
        if busy or frames < 0:
            return False
        if frames == copied == previous:
            return True
        previous = frames if frames == copied else None
    return False


def last_pass(db: sqlite_utils.Database) -> None:
    """A round's last pass, on the writer's own thread (`DbWorker.post`)."""
    try:
        checkpoint_pass(db.conn)
    except sqlite3.Error as exc:
        log.warning("a WAL checkpoint failed: %s", exc)


class Checkpointer:
    """The thread of the module's doc, for the database at `path`; `stop` ends it. `writer`
    runs a round's last pass where the database's writes are made (`last_pass`), when the
    round's own passes did not catch up."""

    def __init__(self, path: str, writer: Callable[[], None] | None = None, interval: float = INTERVAL) -> None:
        self._path, self._writer, self._interval = path, writer, interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="st-ai-checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _serve(self) -> None:
        try:
            # timeout 0: a pass never waits on a lock, it tries again next round
            conn = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.warning("WAL checkpoints stay with the database thread: %s", exc)
            return
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                return  # an in-memory database: nothing to copy back
            while not self._stopped.wait(self._interval):
                try:
                    if not catch_up(conn) and self._writer is not None:
                        self._writer()
                except sqlite3.Error as exc:  # busy with another process's checkpoint, a full disk
                    log.warning("a WAL checkpoint failed, tried again in %g s: %s", self._interval, exc)
        finally:
            conn.close()
