"""One access log line per gRPC call, and its request id in the trailing metadata.

A call from the in-process REST bridge (it reaches us over the private Unix socket of
`st-ai serve`) is also one REST request, which the bridge logs with what only HTTP
knows (status sent, bytes, client latency). Such a call is not logged here: its facts
(token name, model, channel, upstream time, error code) travel back to the bridge in
trailing metadata instead. Only a Unix-socket peer gets them: a network client cannot
claim that peer, and the facts name channels, which clients need not see."""
from __future__ import annotations

import asyncio
import inspect
import time
from typing import Callable

import grpc
import orjson

from server import call_record, logs, metrics, server_timing, tracing
from server.billing import limits
from server.errors import GRPC_TO_HTTP
from server.services.answers import JSON_ANSWERS
from server.services.interceptors import behaviour

REQUEST_ID_KEY = "x-request-id"
FACTS_KEY = "st-ai-call-bin"
MAX_SPAN_NAME = 128  # an unknown method's name is the client's


def private_peer(context: grpc.aio.ServicerContext) -> bool:
    return (context.peer() or "").startswith("unix:")


def trailers(context: grpc.aio.ServicerContext) -> tuple[tuple[str, str | bytes], ...]:
    """The call's trailing metadata: its request id, and its facts for the bridge."""
    record = call_record.current()
    if record is None:
        return ()
    out: list[tuple[str, str | bytes]] = [(REQUEST_ID_KEY, record.request_id),
                                          (server_timing.KEY, server_timing.of_record(record))]
    if isinstance(record.rate, limits.RateState) and not record.rate.told:
        out += limits.headers(record.rate)  # a unary answer's or an error's figures (server/services/client_calls.py)
    if private_peer(context):
        # the same process's bridge (in-process dispatch) is handed the record itself:
        # metadata there is never serialized; over the socket its facts travel as JSON
        out.append((FACTS_KEY, record if getattr(context, JSON_ANSWERS, False) else orjson.dumps(record.facts())))
    return tuple(out)


def take_facts(record: call_record.CallRecord, metadata) -> None:
    """The bridge's side: `record` adopts the facts a server put in a call's trailing
    metadata (the service's own record, in-process)."""
    for key, value in metadata or ():
        if key == FACTS_KEY:
            if type(value) is call_record.CallRecord:
                record.adopt(value)
                return
            try:
                facts = orjson.loads(value)
            except orjson.JSONDecodeError:
                return
            if isinstance(facts, dict):
                record.take(facts)
            return


def access_fields(record: call_record.CallRecord, status: int, latency: float, bytes_in: int,
                  bytes_out: int, **where: object) -> dict:
    """The fields of an access line, in one order for both transports."""
    return {"request_id": record.request_id, **where, "status": status,
            "error_code": record.error_code, "token": record.token, "model": record.model,
            "channel": record.channel, "stream": record.stream, "latency_ms": int(latency * 1000),
            "upstream_ms": record.upstream_ms, "bytes_in": bytes_in, "bytes_out": bytes_out}


def _size(message: object) -> int:
    size = getattr(message, "ByteSize", None)
    return size() if size is not None else 0


class _Call:
    def __init__(self, method: str, context: grpc.aio.ServicerContext, request: object) -> None:
        self.method, self.context, self.request = method, context, request
        metadata = dict(context.invocation_metadata() or ())
        self.record = call_record.open_record(call_record.request_id(metadata.get(REQUEST_ID_KEY)))
        # grpc.health (probes, /readyz) and reflection are no client's requests
        self.counted = not method.startswith("/grpc.")
        self.record.span = tracing.start_request(method[:MAX_SPAN_NAME]) if self.counted else None
        self.started = self.record.started
        # Sizes cost an encoding of the message (upb has no cached size): only for lines
        # this side writes, not for the bridge's calls.
        self.bridged = private_peer(context)
        self.logged = logs.access_enabled() and not self.bridged
        self.bytes_out = 0
        self.status = 200
        self.streaming = False  # a streamed answer (chat) has sent its first event

    def sent(self, message: object) -> None:
        if self.logged:
            self.bytes_out += _size(message)

    def sent_first(self) -> None:
        """A server-streaming call's first message went out."""
        if self.record.stream:
            self.streaming = True
            metrics.stream_started()
            metrics.first_token(self.record.model, self.record.channel, time.monotonic() - self.started)

    def finish(self) -> None:
        self.context.set_trailing_metadata(trailers(self.context))

    def failed(self, exc: BaseException) -> None:
        if self.record.status is not None:  # raised through abort() with a GatewayError
            self.status = self.record.status
        elif isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            self.status = 499  # the client went away
        else:
            self.status = GRPC_TO_HTTP.get(self.context.code(), 500) if self.context.code() else 500

    def count(self) -> None:
        """The call's numbers for /metrics (server/metrics.py), whichever front it came from."""
        record = self.record
        if self.streaming:
            metrics.stream_ended()
        if not self.counted:
            return
        metrics.request(record.model, record.channel, self.status, record.error_code)
        if not self.bridged:  # the bridge measures its requests' overhead whole (rest_bridge/request_metrics.py)
            metrics.overhead("grpc", record.stream, time.monotonic() - self.started, record.upstream_seconds)
        tracing.end_request(record.span, record.model, record.channel, self.status, record.error_code, record.stream)

    def log(self) -> None:
        self.count()
        if not self.logged:
            return  # a bridge call: the bridge logs it, with these facts
        logs.access(access_fields(
            self.record, self.status, time.monotonic() - self.started, _size(self.request), self.bytes_out,
            method=self.method, peer=self.context.peer()))


def log_unknown(unknown: Callable[[str], grpc.RpcMethodHandler]) -> Callable[[str], grpc.RpcMethodHandler]:
    """A method no service has gets `unknown(method)`, logged like any other call."""
    return lambda method: log_calls(unknown(method), method)


def log_calls(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """One access line per call of `method` (see the module's doc for bridge calls)."""
    kind, inner = behaviour(handler)
    if inspect.isasyncgenfunction(inner):
        async def logged(request, context):
            call = _Call(method, context, None if handler.request_streaming else request)
            first = True
            try:
                async for item in inner(request, context):
                    call.sent(item)
                    if first:
                        first = False
                        call.sent_first()
                    yield item
                call.finish()
            except BaseException as exc:
                call.failed(exc)
                raise
            finally:
                call.log()
    elif inspect.iscoroutinefunction(inner):
        async def logged(request, context):
            call = _Call(method, context, None if handler.request_streaming else request)
            try:
                response = await inner(request, context)
                call.sent(response)
                call.finish()
                return response
            except BaseException as exc:
                call.failed(exc)
                raise
            finally:
                call.log()
    else:
        return handler
    return handler._replace(**{kind: logged})
