"""Giving memory back to the system after large requests.

glibc's malloc keeps what Python frees: a buffer of a few MB comes from mmap only until the
first one is freed, after which the mmap threshold rises to its size and later buffers
come from the heaps, whose free space is kept for reuse (and each thread that allocates,
gRPC's included, may have heaps of its own). A 30 MB request body then leaves hundreds
of MB behind. Two things return it:

  * a fixed mmap threshold (`mallopt(M_MMAP_THRESHOLD)`, which also turns the rising
    threshold off): every block of MMAP_THRESHOLD or more is its own mapping, unmapped
    the moment it is freed;
  * `malloc_trim(0)` once large requests are over, for what smaller blocks left in the
    heaps' free lists (asked for by the REST bridge after a large body, and by the gRPC
    server after an RPC with a large request: server/services/memory_trim.py).

Elsewhere than glibc both are no-ops.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from typing import Any

log = logging.getLogger("st_ai.memory")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024
TRIM_THRESHOLD = 4 * 1024 * 1024
# a request body at least this large asks for a trim once requests settle
LARGE_BODY_BYTES = 1024 * 1024
TRIM_DELAY = 1.0


def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # glibc only
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds; call once at start, before large allocations."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        _LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def trim() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class Trimmer:
    """Trims the heaps once after a burst of large requests: each large request asks,
    the trim runs TRIM_DELAY seconds after the last one (in a thread, as it walks every
    heap)."""

    def __init__(self, delay: float = TRIM_DELAY) -> None:
        self._delay = delay
        self._pending: asyncio.TimerHandle | None = None

    def large_request_done(self) -> None:
        if _LIBC is None:
            return
        loop = asyncio.get_running_loop()
        if self._pending is not None:
            self._pending.cancel()
        self._pending = loop.call_later(self._delay, self._run)

    def _run(self) -> None:
        self._pending = None
        asyncio.get_running_loop().run_in_executor(None, trim)
