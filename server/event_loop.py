"""Which asyncio event loop a process runs on (`--loop`): uvloop when asked for, or by
default when it is installed (the `uvloop` extra); else asyncio's own."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine

CHOICES = ("auto", "asyncio", "uvloop")


class LoopUnavailable(Exception):
    pass


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop `choice` names; None: asyncio's own."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise LoopUnavailable("--loop uvloop needs uvloop: pip install 'st-ai[uvloop]'") from None
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, Any], choice: str = "auto") -> Any:
    try:
        factory = loop_factory(choice)
    except LoopUnavailable:
        coro.close()  # never started: no "never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)

