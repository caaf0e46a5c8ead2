"""Whether this process is busy: the CPU time all its threads used over the last moments,
as a share of the wall time that passed. Read often, measured seldom: a reading costs a
system call (the process's CPU clock), so a verdict stands for `every` seconds."""
from __future__ import annotations

import time
from typing import Callable


class CpuShare:
    __slots__ = ("_busy_at", "_every", "_cpu", "_wall", "_checked", "_busy")

    def __init__(self, busy_at: float = 0.8, every: float = 0.05,
                 cpu: Callable[[], float] = time.process_time, wall: Callable[[], float] = time.monotonic) -> None:
        self._busy_at, self._every, self._cpu, self._wall = busy_at, every, cpu, wall
        self._checked = (wall(), cpu())
        self._busy = False

    def busy(self) -> bool:
        """True when the process used at least `busy_at` of one core since the last verdict."""
        now = self._wall()
        then, cpu_then = self._checked
        if now - then >= self._every:
            cpu = self._cpu()
            self._busy = cpu - cpu_then >= self._busy_at * (now - then)
            self._checked = (now, cpu)
        return self._busy
