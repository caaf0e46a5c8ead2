"""The bridge's typed shared state."""
from __future__ import annotations

from typing import Callable

from aiohttp import web

MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
# rpc path -> the channel's multi-callable for it, made once at start
CALLABLES = web.AppKey("callables", dict[str, Callable])
