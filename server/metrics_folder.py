"""Where the workers of `st-ai serve --workers N` keep their Prometheus numbers, so that
any worker's GET /metrics adds up all of them (prometheus-client's multiprocess mode,
server/metrics.py).

The operator may name the folder (`PROMETHEUS_MULTIPROC_DIR`, emptied before each start as
prometheus-client requires). Otherwise the parent makes a fresh private one, `st-ai-metrics-*`
in the temp directory with a `pid` file naming it, hands it to the workers through their
environment and removes it on every way out: without it each worker would answer with its
own numbers only, which look right and are not. A folder left by a parent killed outright is
removed at the next start once its owner is gone (as server/socket_folders.py does for
sockets)."""
from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from server.socket_folders import PID, owned_folder, recorded_pid, running, sweep

ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "st-ai-metrics-"


@contextlib.contextmanager
def for_workers(temp_dir: str | None = None) -> Iterator[str]:
    """The folder the workers share, set in this process's environment (which they inherit)
    for as long as they run: the operator's, or a fresh one of our own, removed afterwards.
    (Call sweep_stale first, off the event loop.)"""
    if os.environ.get(ENV):
        yield os.environ[ENV]
        return
    with owned_folder(PREFIX, temp_dir) as folder:
        os.environ[ENV] = folder
        try:
            yield folder
        finally:
            os.environ.pop(ENV, None)


def sweep_stale(temp_dir: str | None = None) -> list[str]:
    """Remove the `st-ai-metrics-*` folders in `temp_dir` whose owner is gone; the removed paths."""
    return sweep(temp_dir, PREFIX, _abandoned, "metrics")


def _abandoned(folder: Path) -> bool:
    try:
        info = folder.lstat()
        names = os.listdir(folder)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or PID not in names \
            or any(name != PID and not name.endswith(".db") for name in names):
        return False  # not a folder st-ai made for this user: none of our business
    pid = recorded_pid(folder / PID)
    return pid is not None and not running(pid)
