"""How a servicer method fails: a GatewayError becomes the matching gRPC status with
an `st_ai.v1.ErrorDetail` in `grpc-status-details-bin`; anything unexpected is
logged here and reported as INTERNAL without internals."""
from __future__ import annotations

import functools
import inspect
import logging
import math
from typing import Any, Callable

import grpc

from server import call_record
from server.errors import GatewayError
from server.services.call_log import trailers

log = logging.getLogger("st_ai.rpc")
DETAILS_KEY = "grpc-status-details-bin"
RETRY_AFTER_KEY = "retry-after"  # the bridge makes it the HTTP header (rest_bridge/forwarded.py)


async def abort(context: grpc.aio.ServicerContext, error: GatewayError) -> None:
    # abort() sends the status now: the call's log facts must travel with it
    call_record.note_error(error.code, error.http_status)
    await context.abort(error.grpc_code, error.message,
                        trailing_metadata=((DETAILS_KEY, error.to_status().SerializeToString()),
                                           *retry_after(error), *trailers(context)))


def retry_after(error: GatewayError) -> tuple[tuple[str, str], ...]:
    """When the client may ask again, if the error knows (e.g. upstreams rate limiting
    st-ai said so): whole seconds, at least 1, as HTTP's Retry-After and the SDKs read it."""
    if error.retry_after is None:
        return ()
    return ((RETRY_AFTER_KEY, str(max(1, math.ceil(error.retry_after)))),)


def _unexpected(method: str) -> GatewayError:
    log.exception("%s failed", method)
    return GatewayError(500, "The gateway failed to process the request.", "internal_error",
                        type="api_error")


def rpc_errors(method: Callable) -> Callable:
    """Wrap a unary or server-streaming servicer method."""
    name = method.__name__
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def streaming(self: Any, request: Any, context: grpc.aio.ServicerContext):
            try:
                async for item in method(self, request, context):
                    yield item
            except GatewayError as error:
                await abort(context, error)
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await abort(context, _unexpected(name))
        return streaming

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext):
        try:
            return await method(self, request, context)
        except GatewayError as error:
            await abort(context, error)
        except Exception as exc:
            if _is_abort(exc):
                raise
            await abort(context, _unexpected(name))
    return unary


def unknown_method(method: str) -> grpc.RpcMethodHandler:
    """The handler for a method no service has: UNIMPLEMENTED, as grpc answers itself
    (grpcurl relies on it to fall back between reflection versions), but through the
    interceptors, so the call is logged like any other. Raw bytes: no deserializer."""
    shown = method if len(method) <= 120 else method[:120] + "\u2026"

    async def refuse(requests, context: grpc.aio.ServicerContext) -> None:
        await abort(context, GatewayError(501, f"Unknown gRPC method: {shown}.", "unknown_method",
                                          type="invalid_request_error"))
    return grpc.stream_stream_rpc_method_handler(refuse)


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises this to end the RPC; it must pass through.
    return type(exc).__name__ == "AbortError"


def bearer(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value
    return None
