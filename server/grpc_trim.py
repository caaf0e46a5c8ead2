"""The gRPC side of giving memory back: once an RPC whose request was large has ended,
the heaps are trimmed (server/memory.py). The REST bridge does the same for large bodies
it reads; this covers `st-ai grpc` and clients that call gRPC directly."""
from __future__ import annotations

import inspect

import grpc
from google.protobuf.message import Message

from server.memory import LARGE_BODY_BYTES, Trimmer


def _large(request: object) -> bool:
    # ByteSize of a message holding one huge string is cheap: it is the string's length.
    return isinstance(request, Message) and request.ByteSize() >= LARGE_BODY_BYTES


class TrimAfterLargeRequests(grpc.aio.ServerInterceptor):
    def __init__(self, trimmer: Trimmer) -> None:
        self._trimmer = trimmer
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # method -> handler, built once

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            wrapped = self._wrap(handler)
            if handler is not None:
                self._wrapped[method] = wrapped
        return wrapped

    def _wrap(self, handler):
        if handler is None or handler.request_streaming:
            return handler
        kind = "unary_unary" if handler.unary_unary is not None else "unary_stream"
        method = getattr(handler, kind)
        trimmer = self._trimmer
        if inspect.isasyncgenfunction(method):
            async def behaviour(request, context):
                large = _large(request)
                try:
                    async for item in method(request, context):
                        yield item
                finally:
                    if large:
                        trimmer.large_request_done()
        elif inspect.iscoroutinefunction(method):
            async def behaviour(request, context):
                large = _large(request)
                try:
                    return await method(request, context)
                finally:
                    if large:
                        trimmer.large_request_done()
        else:
            return handler
        return handler._replace(**{kind: behaviour})
