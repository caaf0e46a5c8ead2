"""The one way st-ai's gRPC interceptors change a method: its handler is wrapped once, on
the method's first call, and the wrapped handler serves every later call."""
from __future__ import annotations

from typing import Callable, Sequence

import grpc

KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
Wrap = Callable[[grpc.RpcMethodHandler, str], grpc.RpcMethodHandler]


def compose(wraps: Sequence[Wrap]) -> Wrap:
    """The wraps applied as one, outermost first (the order grpc applies interceptors in)."""
    def wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        for each in reversed(wraps):
            handler = each(handler, method)
        return handler
    return wrap


class PerMethod(grpc.aio.ServerInterceptor):
    """Wraps each method's handler with `wrap(handler, method)`. A method no service has
    gets `missing(method)` when given (never kept: clients can invent any number of
    names), else passes on as unknown."""

    def __init__(self, wrap: Wrap, missing: Callable[[str], grpc.RpcMethodHandler] | None = None) -> None:
        self._wrap = wrap
        self._missing = missing
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return self._missing(method) if self._missing is not None else None
            wrapped = self._wrapped[method] = self._wrap(handler, method)
        return wrapped


def behaviour(handler: grpc.RpcMethodHandler) -> tuple[str, Callable]:
    """The handler's kind (e.g. "unary_stream") and the function that serves it."""
    kind = next(k for k in KINDS if getattr(handler, k) is not None)
    return kind, getattr(handler, kind)
