"""`asyncio.timeout(seconds)` for one upstream attempt, at a third of its cost.

Every attempt the loop makes (server/core/attempts.py) runs under a time limit. The standard
library's context manager, written in Python, costs about 145 bytecodes an attempt (a
state machine, a reschedulable deadline); an attempt needs none of that, only a timer that
cancels the task and the same rule for telling its own cancellation from anyone else's:
the block raises TimeoutError only when the limit fired and no other cancellation of the
task came meanwhile (`Task.uncancel`), exactly as `asyncio.timeout` decides it."""
from __future__ import annotations

import asyncio


class TimeLimit:
    __slots__ = ("_seconds", "_task", "_handle", "_expired", "_cancelling")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a time limit is used inside a task")
        self._task, self._cancelling, self._expired = task, task.cancelling(), False
        self._handle = asyncio.get_running_loop().call_later(self._seconds, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._handle.cancel()
        if self._expired and self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from exc
