"""The aiohttp application: one handler per annotated route, calling the RPC over one
long-lived gRPC channel."""
from __future__ import annotations

from typing import AsyncIterator

import grpc
from aiohttp import web
from google.api.httpbody_pb2 import HttpBody
from google.protobuf.message import Message

from rest_bridge import (access_log, client_address, dialects, draining, health, marshal, metrics_route, multipart,
                         server_timing)
from rest_bridge.errors import expect_continue, from_rpc_error, openai_errors, rpc_error_response
from rest_bridge.forwarded import forward_headers
from rest_bridge.range_header import RANGE_FIELDS, query_offsets, range_fields
from rest_bridge.routes import Binding, Route, discover, proto_modules, services
from rest_bridge.state import CALLABLES, MAX_BODY_BYTES
from server.errors import GatewayError, invalid_api_key, invalid_request

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
GRPC_MESSAGE_BYTES = 64 * 1024 * 1024


def _metadata(request: web.Request, dialect: dialects.Dialect = dialects.OPENAI) -> tuple[tuple[str, str], ...]:
    metadata = _idempotency_key(request)
    authorization = request.headers.get("Authorization")
    if authorization is None and dialect.key_header is not None and dialect.key_header in request.headers:
        authorization = "Bearer " + request.headers[dialect.key_header]
    told = (*metadata, *client_address.metadata(request), *draining.metadata(request))
    if authorization is None:
        return told
    # gRPC metadata carries printable ASCII only; nothing else can be a valid key.
    if not authorization.isascii() or not authorization.isprintable():
        raise invalid_api_key()
    return (("authorization", authorization), *told)


def _idempotency_key(request: web.Request) -> tuple[tuple[str, str], ...]:
    """The client's Idempotency-Key, as the metadata the servicer checks (any value it
    refuses is refused there; only what metadata cannot carry is refused here)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return ()
    if not key.isascii() or not key.isprintable():
        raise invalid_request("The Idempotency-Key header must be printable ASCII.", code="invalid_idempotency_key")
    return (("idempotency-key", key),)


async def _request_message(request: web.Request, binding: Binding, body: dict | None,
                           headers: dict | None = None) -> Message:
    """The request message (serialized only by a gRPC channel; in-process it is handed
    over as it is). The body dict is emptied: a large request's text then lives only in
    the message, not also in the dict for the whole call."""
    data = dict(body) if body is not None else {}
    if binding.body == "":
        offsets = query_offsets(request.query, binding.request_class.DESCRIPTOR.fields_by_name)
        data.update(marshal.query_fields(binding.request_class, request.query, (*binding.path_fields, *offsets)))
        data.update(offsets)
    elif binding.body != "*":
        data = {binding.body: data}
    if headers:  # fields a header sets (a Range) replace the query's
        data = {k: v for k, v in data.items() if k not in RANGE_FIELDS} | headers
    for name in binding.path_fields:
        data[name] = request.match_info[name]
    message = marshal.to_message(binding.request_class, data)
    if body is not None:
        body.clear()
    return message




async def _read_body(request: web.Request, binding: Binding) -> dict:
    if request.content_type == "multipart/form-data":
        parts = multipart.parse(await _read_bytes(request), request.headers.get("Content-Type", ""))
        return marshal.form_fields(binding.request_class, parts)
    return marshal.parse_body(await _read_bytes(request), request.charset)


async def _read_bytes(request: web.Request) -> bytes:
    """The raw body, held only by the caller: request.read() would keep it (and briefly a
    second, growing copy) for as long as the request lives."""
    limit = request.app[MAX_BODY_BYTES]
    chunks, size = [], 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def _handler(route: Route):
    unary = route.bindings[0]
    streaming = route.bindings[-1] if route.bindings[-1].server_streaming else None
    wants_body = unary.body != ""
    ranged = "range_start" in unary.request_class.DESCRIPTOR.fields_by_name
    dialect = dialects.for_rpc(unary.rpc_path)

    async def handle(request: web.Request) -> web.StreamResponse:
        request[dialects.DIALECT] = dialect
        body = await _read_body(request, unary) if wants_body else None
        binding = streaming if streaming is not None and (
            len(route.bindings) == 1 or (body or {}).get("stream") is True) else unary
        message = await _request_message(request, binding, body,
                                         range_fields(request.headers) if ranged else None)
        call = request.app[CALLABLES][binding.rpc_path](message, metadata=_metadata(request, dialect))
        if binding.response_class is HttpBody:
            return await _relay_bytes(request, call)
        if binding.server_streaming:
            return await _relay_stream(request, call, dialect)
        with draining.cuttable(request):
            answer = await call
        response = marshal.json_response(answer)
        forward_headers(await call.initial_metadata(), response)
        forward_headers(await call.trailing_metadata(), response)  # a unary answer's figures
        return response

    return handle


async def _relay_bytes(request: web.Request, call: grpc.aio.UnaryStreamCall) -> web.StreamResponse:
    """google.api.HttpBody messages are the response body itself (grpc-gateway's rule):
    the first one's content type is the response's; its metadata gives the length."""
    response = None
    try:
        first = await call.read()
        metadata = dict(await call.initial_metadata() or ())
        content_range = metadata.get("st-ai-content-range")
        response = web.StreamResponse(status=206 if content_range else 200)
        response.content_type = first.content_type if first is not grpc.aio.EOF else "application/octet-stream"
        response.headers["Accept-Ranges"] = "bytes"
        if "st-ai-content-length" in metadata:
            response.content_length = int(metadata["st-ai-content-length"])
        if content_range:
            response.headers["Content-Range"] = content_range
        forward_headers(metadata.items(), response)
        await response.prepare(request)
        if request.method == "HEAD":  # the headers are the answer; the RPC is cancelled below
            await response.write_eof()
            return response
        message = first
        while message is not grpc.aio.EOF:
            await response.write(message.data)
            message = await call.read()
        await response.write_eof()
        return response
    except grpc.aio.AioRpcError as error:
        if response is None or not response.prepared:
            answer = rpc_error_response(error)
            # a 416 names the file's size (`bytes */N`), sent before the error
            unsatisfiable = dict(await call.initial_metadata() or ()).get("st-ai-content-range")
            if answer.status == 416 and unsatisfiable:
                answer.headers["Content-Range"] = unsatisfiable
            return answer
        # The status line is sent: end the body short of its Content-Length, which
        # tells the client the download failed.
        request.transport.close()
        return response
    finally:
        call.cancel()


async def _relay_stream(request: web.Request, call: grpc.aio.UnaryStreamCall,
                        dialect: dialects.Dialect) -> web.StreamResponse:
    """Relay each message as one SSE event as it arrives. Errors before the first
    message are ordinary JSON errors; after it, the status is sent, so an error
    becomes an in-band event and the stream ends."""
    try:
        with draining.cuttable(request):
            first = await call.read()
        response = _EventStream(headers=marshal.SSE_HEADERS)
        forward_headers(await call.initial_metadata(), response)
        await response.prepare(request)
        await response.write_eof(await _write_events(request, response, call, first, dialect))
        return response
    finally:
        # The client went away (aiohttp cancels this handler) or we are done: either
        # way the RPC, and with it the upstream request, must not outlive the response.
        call.cancel()


class _EventStream(web.StreamResponse):
    """An SSE response whose status line and headers leave with its first events, in one
    write (as aiohttp's own `Response` sends them with its body): the first event is already
    read when the response is prepared, so nothing waits for that, and a stream whose events
    all came together leaves in a single write."""
    # aiohttp's own switch (its `Response` sets it so); should a release drop it, the head
    # goes out alone again and tests/test_sse_writes.py says so
    _send_headers_immediately = False


async def _write_events(request: web.Request, response: web.StreamResponse, call: grpc.aio.UnaryStreamCall,
                        message: object, dialect: dialects.Dialect) -> bytes:
    """Write each message as an SSE event as soon as it is read; messages already waiting
    (an in-process call can say so) go out together in one write. Returns the stream's end,
    `[DONE]` (in chat's dialect) or the error event, with the events read just before it,
    for the last write."""
    take = getattr(call, "read_nowait", None)
    events: list[bytes] = []
    named = dialect.named_events
    cuttable = draining.cuttable(request)  # one section object, entered around every read
    try:
        while message is not grpc.aio.EOF:
            # an in-process call may hand over a batch: a list of messages that were ready together
            for each in message if type(message) is list else (message,):
                events.append(_sse(each, dialect) if named else marshal.sse_event(each))
            message = take() if take is not None else None
            if message is None:  # nothing more is waiting: what was read goes out now
                await response.write(b"".join(events))
                events.clear()
                with cuttable:
                    message = await call.read()
        events.append(dialect.end)
    except grpc.aio.AioRpcError as error:
        events.append(dialects.sse_error(from_rpc_error(error), dialect))
    except GatewayError as error:  # a bridge on its own cut the stream at its shutdown
        events.append(dialects.sse_error(error, dialect))
    return b"".join(events)


def _sse(message: object, dialect: dialects.Dialect) -> bytes:
    return dialects.sse_event(marshal.json_text(message), message, dialect)


def _multi_callable(channel: grpc.aio.Channel, binding: Binding):
    make = channel.unary_stream if binding.server_streaming else channel.unary_unary
    return access_log.traced(make(binding.rpc_path, request_serializer=binding.request_class.SerializeToString,
                                  response_deserializer=binding.response_class.FromString))


def build_app(grpc_target: str, routes: list[Route] | None = None,
              max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, trusted_proxies: tuple = (),
              in_process=None) -> web.Application:
    """`in_process`, when given, is a channel to the services in this process
    (server/services/in_process.py), used instead of a gRPC channel to `grpc_target`."""
    routes = routes if routes is not None else discover(services(proto_modules()))
    app = web.Application(middlewares=[openai_errors], client_max_size=max_body_bytes)
    app[MAX_BODY_BYTES] = max_body_bytes
    app[client_address.TRUSTED_PROXIES] = trusted_proxies
    app[CALLABLES] = {}

    async def grpc_channel(app: web.Application) -> AsyncIterator[None]:
        channel = in_process if in_process is not None else grpc.aio.insecure_channel(grpc_target, options=[
            ("grpc.max_receive_message_length", GRPC_MESSAGE_BYTES),
            ("grpc.max_send_message_length", GRPC_MESSAGE_BYTES),
        ])
        app[CALLABLES].update({b.rpc_path: _multi_callable(channel, b) for r in routes for b in r.bindings})
        app[health.HEALTH_CHECK] = health.health_check(channel)
        yield
        await channel.close()

    app.cleanup_ctx.append(grpc_channel)
    access_log.install(app)
    server_timing.install(app)
    health.add_routes(app)
    metrics_route.add_routes(app)
    declared = {(route.method, route.path) for route in routes}
    for route in routes:
        handler = _handler(route)
        app.router.add_route(route.method, route.path, handler, expect_handler=expect_continue)
        if route.method == "GET" and ("HEAD", route.path) not in declared:  # RFC 9110 9.3.2: GET without the body
            app.router.add_route("HEAD", route.path, handler, expect_handler=expect_continue)
    return app
