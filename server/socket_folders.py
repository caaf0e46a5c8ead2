"""The private folders `st-ai serve` keeps its bridge-to-gRPC Unix socket in.

Each is `st-ai-*` in the temp directory, holding `grpc.sock` and a `pid` file naming its
owner. A process killed outright (kill -9, the OOM killer) cannot remove its folder, so
the next start sweeps folders whose owner is provably gone; a folder some live st-ai
may still be using is never touched."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "st-ai-"
SOCKET = "grpc.sock"
PID = "pid"
# A folder with neither pid nor socket may be one another st-ai has just created; only
# one this old is certainly abandoned.
SETTLE_SECONDS = 600


def private_socket_folder(temp_dir: str | None = None) -> contextlib.AbstractContextManager[str]:
    """A fresh folder of our own for the private socket. (Call sweep_stale first, off the
    event loop: it probes sockets.)"""
    return owned_folder(PREFIX, temp_dir)


@contextlib.contextmanager
def owned_folder(prefix: str, temp_dir: str | None = None) -> Iterator[str]:
    """A fresh folder `prefix*` in `temp_dir` (the temp directory by default) whose `pid`
    names this process, removed on every way out."""
    folder = tempfile.mkdtemp(prefix=prefix, dir=temp_dir or tempfile.gettempdir())
    try:
        Path(folder, PID).write_text(str(os.getpid()))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_stale(temp_dir: str | None = None) -> list[str]:
    """Remove the `st-ai-*` folders in `temp_dir` left by processes that are gone; the
    removed paths."""
    return sweep(temp_dir, PREFIX, _abandoned, "socket")


def sweep(temp_dir: str | None, prefix: str, abandoned: Callable[[Path], bool], what: str) -> list[str]:
    """Remove the folders named `prefix*` in `temp_dir` (the temp directory by default) that
    `abandoned` says no live process owns; the removed paths."""
    temp_dir = temp_dir or tempfile.gettempdir()
    removed = []
    try:
        entries = list(os.scandir(temp_dir))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(prefix) and abandoned(Path(entry.path)):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    if removed:
        log.info("removed %d %s folder(s) left by st-ai processes that were killed", len(removed), what)
    return removed


def _abandoned(folder: Path) -> bool:
    try:
        info = folder.lstat()
        names = set(os.listdir(folder))
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or not names <= {PID, SOCKET}:
        return False  # not a folder st-ai made for this user: none of our business
    pid = recorded_pid(folder / PID) if PID in names else None
    if pid is not None and running(pid):
        return False
    if SOCKET in names and _listening(folder / SOCKET):
        return False  # an owner in another pid namespace, or an older release without a pid file
    if pid is None and SOCKET not in names:
        return time.time() - info.st_mtime > SETTLE_SECONDS
    return True


def recorded_pid(path: Path) -> int | None:
    """The pid a folder's `pid` file names, if it names one."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def running(pid: int) -> bool:
    """Whether a process with this pid exists (as any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    except OverflowError:
        return False
    return True


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(path))
        except OSError as exc:
            # refused or gone: no listener; anything else (a timeout under load) counts as alive
            return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK)
    return True
