"""One worker of `st-ai serve --workers N` (started by server/workers.py): reads its
start on stdin and runs `st-ai serve` on the ports its parent reserved. It stops with
its parent: a parent killed outright (kill -9) leaves no worker serving on."""
from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys

PR_SET_PDEATHSIG = 1


def _stop_with_parent(parent_pid: int) -> None:
    """SIGTERM (a graceful drain) when the parent dies; at once if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parent's own stop still reaches it
        pass
    if os.getppid() != parent_pid:
        sys.exit("st-ai worker: its parent is gone")


def main() -> None:
    from server import gateway
    from server.workers import WorkerStart

    start: WorkerStart = pickle.load(sys.stdin.buffer)
    _stop_with_parent(start.parent_pid)
    gateway.run(gateway.serve(start.config), start.log_format, start.config.loop, tag_pid=True)


if __name__ == "__main__":
    main()
