"""The bridge's typed shared state."""
from __future__ import annotations

from typing import Callable

from aiohttp import web

MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
# rpc path -> the channel's multi-callable for it, made once at start
CALLABLES = web.AppKey("callables", dict[str, Callable])
# a request's clock (rest_bridge/server_timing.py): when it reached the app, and the seconds its
# calls spent upstream, read from their metadata once the handler returned
STARTED = web.RequestKey("st_ai_started", float)
UPSTREAM = web.RequestKey("st_ai_upstream", float)
