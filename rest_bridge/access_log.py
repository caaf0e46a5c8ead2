"""Every REST request gets a request id (the client's own, if valid) on its response
and on the RPC it makes, and one access log line: from aiohttp's access-log hook once
the response is written (also for requests the app never saw), or from the middleware
when the client leaves first (aiohttp logs nothing for a cancelled handler).

What only the server side knows (token name, model, channel, upstream time, error
code) comes back in the RPC's trailing metadata (server/services/call_log.py)."""
from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from rest_bridge.state import UPSTREAM
from server import call_record, logs, server_timing
from server.call_record import CallRecord
from server.services.call_log import REQUEST_ID_KEY, access_fields, take_facts

HEADER = "X-Request-Id"
log = logging.getLogger("st_ai.bridge")


@dataclass
class _Pending:
    record: CallRecord
    calls: list = field(default_factory=list)  # the RPCs the request made
    logged: bool = False
    called: bool = False  # it made an RPC (the calls themselves are let go with the handler)


PENDING = web.RequestKey("st_ai_pending", _Pending)
_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar("st_ai_bridge_call", default=None)


def traced(multi_callable):
    """A multi-callable that sends the request id and keeps the call for its facts."""
    def invoke(message, metadata=(), **options):
        pending = _pending.get()
        if pending is None:
            return multi_callable(message, metadata=metadata, **options)
        call = multi_callable(message, metadata=(*metadata, (REQUEST_ID_KEY, pending.record.request_id)),
                              **options)
        pending.calls.append(call)
        pending.called = True
        return call
    return invoke


@web.middleware
async def access_record(request: web.Request, handler) -> web.StreamResponse:
    pending = _Pending(CallRecord(call_record.request_id(request.headers.get(HEADER))))
    request[PENDING] = pending
    reset = _pending.set(pending)
    try:
        response = await handler(request)
        await _take_facts(request, pending)
        return response
    except (asyncio.CancelledError, ConnectionError):  # the client left; its RPCs are cancelled too
        _log(request, pending, 499, request.writer.output_size if request.writer else 0, None)
        raise
    finally:
        # A call holds its request message (the whole body): let both go with the handler,
        # not with the connection's context or the request object.
        pending.calls.clear()
        _pending.reset(reset)


async def _take_facts(request: web.Request, pending: _Pending) -> None:
    """What the finished calls' trailers tell: their facts, and the seconds they waited on
    upstreams (their `server-timing`), for the answer's Server-Timing and the overhead
    metric (rest_bridge/server_timing.py, rest_bridge/request_metrics.py)."""
    upstream = 0.0
    for call in pending.calls:
        if call.done() and not call.cancelled():
            metadata = await call.trailing_metadata()
            take_facts(pending.record, metadata)
            for key, value in metadata or ():
                if key == server_timing.KEY:
                    upstream += server_timing.upstream_seconds(value) or 0.0
    request[UPSTREAM] = upstream


def stamp(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Put the request's id on its response. A request answered before the middleware
    ran (an expectation refused, HTTP the parser refused) gets its id here, and the
    access line then carries the same one."""
    pending = request.get(PENDING)
    if pending is None:
        pending = _Pending(CallRecord(call_record.request_id(request.headers.get(HEADER))))
        request[PENDING] = pending
    response.headers[HEADER] = pending.record.request_id


async def stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the id goes on every response the app sends, streams included."""
    stamp(request, response)


def error_code(response: web.StreamResponse) -> str | None:
    body = getattr(response, "body", None)
    if response.status < 400 or not isinstance(body, bytes) or response.content_type != "application/json":
        return None
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return error.get("code") if isinstance(error, dict) and isinstance(error.get("code"), str) else None


def _bytes_in(request: web.BaseRequest) -> int:
    # what arrived of the body (chunked bodies have no Content-Length)
    received = getattr(request.content, "total_bytes", None)
    return received if isinstance(received, int) else 0


def _log(request: web.BaseRequest, pending: _Pending, status: int, bytes_out: int, latency: float | None,
         response: web.StreamResponse | None = None) -> None:
    pending.logged = True
    record = pending.record
    try:
        if response is not None:
            record.error_code = record.error_code or error_code(response)
            record.stream = record.stream or response.content_type == "text/event-stream"
        logs.access(access_fields(record, status, latency or 0.0, _bytes_in(request), bytes_out,
                                  method=request.method, path=request.path, peer=request.remote))
    except Exception:  # a log line must never break the answer it describes
        log.exception("could not write the access line of request %s", record.request_id)


def log_unanswerable(request_id: str, status: int, error_code: str | None, *, peer: str | None,
                     bytes_in: int, bytes_out: int, latency: float) -> None:
    """The access line of an answer written on a connection with no request object
    (a header that never arrived in full): method and path are not known."""
    record = CallRecord(request_id, error_code=error_code)
    try:
        logs.access(access_fields(record, status, latency, bytes_in, bytes_out, method="-", path="-", peer=peer))
    except Exception:  # a log line must never break the answer it describes
        log.exception("could not write the access line of request %s", request_id)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's hook, called after each response is written (or its write failed)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        pending = request.get(PENDING)
        if pending is None:  # refused before the app saw it, e.g. a malformed request line
            pending = _Pending(CallRecord(call_record.request_id(None)))
        if pending.logged:
            return
        _log(request, pending, response.status, response.body_length, time, response)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def runner_options() -> dict:
    """What web.AppRunner needs to log through this module."""
    return {"access_log_class": AccessLogger, "access_log": logs.ACCESS}


def install(app: web.Application) -> None:
    app.middlewares.insert(0, access_record)  # outermost: it sees the final response
    app.on_response_prepare.append(stamp_request_id)
