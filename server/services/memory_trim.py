"""The gRPC side of giving memory back: once an RPC whose request was large has ended,
the heaps are trimmed (server/memory.py). The REST bridge does the same for large bodies
it reads; this covers `st-ai grpc` and clients that call gRPC directly."""
from __future__ import annotations

import inspect

import grpc
from google.protobuf.message import Message

from server.memory import LARGE_BODY_BYTES, Trimmer
from server.services.interceptors import Wrap, behaviour


def _large(request: object) -> bool:
    # ByteSize of a message holding one huge string is cheap: it is the string's length.
    return isinstance(request, Message) and request.ByteSize() >= LARGE_BODY_BYTES


def trim_after_large_requests(trimmer: Trimmer) -> Wrap:
    def wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if handler.request_streaming:
            return handler
        kind, serve = behaviour(handler)
        if inspect.isasyncgenfunction(serve):
            async def trimming(request, context):
                large = _large(request)
                try:
                    async for item in serve(request, context):
                        yield item
                finally:
                    if large:
                        trimmer.large_request_done()
        elif inspect.iscoroutinefunction(serve):
            async def trimming(request, context):
                large = _large(request)
                try:
                    return await serve(request, context)
                finally:
                    if large:
                        trimmer.large_request_done()
        else:
            return handler
        return handler._replace(**{kind: trimming})
    return wrap
