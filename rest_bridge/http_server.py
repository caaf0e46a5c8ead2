"""The bridge's HTTP/1.1 connections: read timeouts for slow or stalled clients, and
OpenAI error bodies for requests aiohttp's parser refuses before any handler runs.

aiohttp builds one `RequestHandler` per connection through its `web.Server`; the bridge
runs its app through `BridgeRunner`, whose server makes `BridgeProtocol`s instead. Nothing
of aiohttp is patched: everything here is a subclass used only by the bridge's runner.

Timeouts follow nginx's meanings:
  * header:    the whole request header must arrive within this many seconds of its
               first byte (of the connection's start, for its first request);
  * body:      at most this many seconds may pass between two reads of a request body
               (time the bridge itself spends not reading does not count);
  * keepalive: an idle connection between requests is closed after this many seconds;
  * send:      a client that takes none of its answer for this many seconds (the socket's
               send buffer stays full) is disconnected, so a stalled reader does not hold
               a connection and the call behind it forever.
"""
from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import http_exceptions, web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from rest_bridge import access_log, request_metrics
from rest_bridge.marshal import JSON_TYPE, error_response
from server import call_record
from server.errors import GatewayError
from server.memory import LARGE_BODY_BYTES, Trimmer

log = logging.getLogger("st_ai.bridge")

# aiohttp's own parser limits, named here because error messages quote them.
MAX_LINE_BYTES = 8190
MAX_HEADERS = 128


@dataclass(frozen=True)
class ClientTimeouts:
    header: float = 60.0
    body: float = 60.0
    keepalive: float = 75.0
    send: float = 60.0


def header_timeout(seconds: float) -> GatewayError:
    return GatewayError(408, f"The request header did not arrive in full within {seconds:g} seconds.",
                        "request_timeout", type="invalid_request_error")


def body_timeout(seconds: float) -> GatewayError:
    return GatewayError(408, f"The request body stalled: nothing of it arrived for {seconds:g} seconds.",
                        "request_timeout", type="invalid_request_error")


def protocol_error(status: int, exc: BaseException | None) -> GatewayError:
    """What a client is told about a request the HTTP parser refused. Parser messages
    quote the raw bytes (a header's value may be the client's own key), so none is
    echoed: the message names the class of fault only."""
    if isinstance(exc, ConnectionError):  # the client left while st-ai answered it (e.g. a 100 Continue)
        return GatewayError(499, "The client closed the connection.", "client_closed_request")
    if isinstance(exc, http_exceptions.LineTooLong):
        return GatewayError(431, f"The request line or a header is longer than {MAX_LINE_BYTES} bytes.",
                            "headers_too_large", type="invalid_request_error")
    if isinstance(exc, http_exceptions.BadHttpMessage) and "Too many headers" in exc.message:
        return GatewayError(431, f"The request has more than {MAX_HEADERS} headers.",
                            "headers_too_large", type="invalid_request_error")
    if isinstance(exc, http_exceptions.PayloadEncodingError):
        return GatewayError(400, "The request body does not match its Content-Length, "
                            "Transfer-Encoding or Content-Encoding.", "invalid_body")
    if isinstance(exc, http_exceptions.InvalidURLError):
        return GatewayError(400, "The request target is not a valid URL.", "invalid_url")
    if isinstance(exc, http_exceptions.BadStatusLine):
        return GatewayError(400, "The request line is not a valid HTTP/1.1 request line.", "invalid_http")
    if isinstance(exc, http_exceptions.InvalidHeader):
        return GatewayError(400, "A request header has a name or value HTTP does not allow.", "invalid_http")
    if isinstance(exc, http_exceptions.HttpProcessingError):
        return GatewayError(400, "The request is not valid HTTP/1.1.", "invalid_http")
    if status == 504:
        return GatewayError(504, "The gateway timed out processing the request.", "timeout")
    if 400 <= status < 500:
        return GatewayError(status, "The request could not be processed.", "invalid_http")
    return GatewayError(500, "The gateway failed to process the request.", "internal_error", type="api_error")


def _raw_error(error: GatewayError, request_id: str) -> bytes:
    """A whole HTTP/1.1 error response, for answering outside any request's writer."""
    body = orjson.dumps(error.body())
    head = (f"HTTP/1.1 {error.http_status} {HTTPStatus(error.http_status).phrase}\r\nContent-Type: {JSON_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n{access_log.HEADER}: {request_id}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + body


class BridgeProtocol(RequestHandler):
    """One client connection. aiohttp's keep-alive timer covers idle connections; the
    header and body timers here cover a request that is arriving too slowly."""

    def __init__(self, manager: web.Server, *, timeouts: ClientTimeouts, trimmer: Trimmer,
                 **kwargs: Any) -> None:
        super().__init__(manager, keepalive_timeout=timeouts.keepalive, **kwargs)
        self._timeouts = timeouts
        self._trimmer = trimmer
        self._body_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._body: StreamReader | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_read_at = 0.0
        self._send_timer: asyncio.TimerHandle | None = None

    # -- connection life -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Like nginx, the first request's header is due within the header timeout of the accept.
        self._start_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_header_timer()
        self._stop_body_timer()
        self._stop_send_timer()
        super().connection_lost(exc)

    # -- send timeout ----------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self._stop_send_timer()
        self._send_timer = self._loop.call_later(self._timeouts.send, self._send_timed_out)

    def resume_writing(self) -> None:
        self._stop_send_timer()
        super().resume_writing()

    def _stop_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _send_timed_out(self) -> None:
        self._send_timer = None
        if self.transport is None or not self.writing_paused:
            return
        log.info("closed a client connection from %s: it took none of its answer for %gs",
                 self._peer(), self._timeouts.send)
        self.transport.abort()  # the buffered answer cannot reach it; nothing more is owed

    def data_received(self, data: bytes) -> None:
        requests_before = self._request_count
        between_requests = self._waiting_for_request()
        super().data_received(data)
        if self._request_count != requests_before:
            # A header is complete; its body (if any) is what arrives next.
            self._stop_header_timer()
            self._stop_body_timer()
            self._body_bytes = 0
            payload = self._messages[-1][1] if self._messages else None
            if isinstance(payload, StreamReader) and not payload.is_eof():
                self._watch_body(payload)
        elif not data:
            return
        elif self._body is not None and not self._body.is_eof():
            self._body_read_at = self._loop.time()
            self._body_bytes += len(data)
        elif between_requests:
            self._header_bytes += len(data)
            if self._header_timer is None:
                self._start_header_timer()

    def _waiting_for_request(self) -> bool:
        """True while start() waits for the next request's header: bytes arriving now
        belong to a header, not to a body (aiohttp reads bodies only while handling)."""
        waiter = self._waiter
        return (self._request_count == 0
                or (waiter is not None and not waiter.done() and not self._messages))

    def _process_keepalive(self) -> None:
        # Once a request's first bytes are in, the header timeout governs the connection.
        if self._header_bytes:
            self._keepalive_handle = None
            return
        super()._process_keepalive()

    # -- header timeout --------------------------------------------------------------

    def _start_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(self._timeouts.header, self._header_timed_out)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._header_bytes = 0

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport is None or self._force_close:
            return
        if self._header_bytes:
            # Nothing was answered on this connection since those bytes came: the 408 is
            # the only response on the wire, so it can be written as is.
            log.info("closed a client connection from %s: request header incomplete after %gs",
                     self._peer(), self._timeouts.header)
            error, request_id = header_timeout(self._timeouts.header), call_record.request_id(None)
            answer = _raw_error(error, request_id)
            self.transport.write(answer)
            peer = self.peername
            request_metrics.unanswerable(error.http_status, error.code)
            access_log.log_unanswerable(request_id, error.http_status, error.code,
                                        peer=peer[0] if isinstance(peer, tuple) else None,
                                        bytes_in=self._header_bytes, bytes_out=len(answer),
                                        latency=self._timeouts.header)
        self.force_close()

    # -- body timeout ----------------------------------------------------------------

    def _watch_body(self, payload: StreamReader) -> None:
        self._body = payload
        self._body_read_at = self._loop.time()
        self._body_timer = self._loop.call_at(self._body_read_at + self._timeouts.body, self._check_body)

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._body = None

    def _check_body(self) -> None:
        self._body_timer = None
        body = self._body
        if body is None or body.is_eof() or self.transport is None:
            self._body = None
            return
        now = self._loop.time()
        if self._reading_paused or self._buffer_paused:
            # The handler is not reading yet (flow control holds the socket): the client is
            # not the slow one, so its clock restarts when reading resumes.
            self._body_read_at = now
        due = self._body_read_at + self._timeouts.body
        if now < due:
            self._body_timer = self._loop.call_at(due, self._check_body)
            return
        log.info("closing a client connection from %s: request body stalled for %gs",
                 self._peer(), self._timeouts.body)
        if not self._request_in_progress:
            # The answer is sent already (aiohttp is draining the unread body): just close.
            self._body = None
            self.force_close()
            return
        # The handler waiting on the body gets the error where it reads (JSON or multipart)
        # and answers it; the connection then closes, as the rest of the body never came.
        body.set_exception(body_timeout(self._timeouts.body))
        body.feed_eof()
        self._body = None
        self.close()

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            if self._body_bytes >= LARGE_BODY_BYTES:
                self._body_bytes = 0
                self._trimmer.large_request_done()
            # every answer written on the connection passes here, those of the app and the parser's
            request_metrics.answered(request, resp.status, access_log.error_code(resp),
                                     stream=resp.content_type == "text/event-stream")

    # -- errors before any handler ---------------------------------------------------

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        error = protocol_error(status, exc)
        if error.http_status >= 500:
            log.error("request from %s failed outside the bridge's handlers", self._peer(), exc_info=exc)
        else:
            log.info("refused a malformed request from %s: %d %s (%s)", self._peer(),
                     error.http_status, error.code, type(exc).__name__ if exc else "-")
        if request.writer.output_size > 0:
            raise ConnectionError("the response is under way; no error response can follow it")
        response = error_response(error)
        access_log.stamp(request, response)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        # A body the client broke (bad gzip, cut chunks) is answered by the handler with a
        # 400; aiohttp meets the same fault again when it drains the rest, and would log
        # it as a server error with a traceback.
        if isinstance(kwargs.get("exc_info"), (web.RequestPayloadError, http_exceptions.HttpProcessingError,
                                                ConnectionError)):
            log.info("dropped a client connection from %s: %s", self._peer(),
                     type(kwargs["exc_info"]).__name__)
            return
        super().log_exception(*args, **kwargs)

    def _peer(self) -> str:
        peer = self.peername
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "?")


class BridgeServer(web.Server):
    """aiohttp's connection factory, making `BridgeProtocol`s."""

    def __init__(self, handler: Any, *, timeouts: ClientTimeouts, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.timeouts = timeouts
        self.trimmer = Trimmer()

    def __call__(self) -> RequestHandler:
        return BridgeProtocol(self, loop=self._loop, timeouts=self.timeouts, trimmer=self.trimmer,
                              **self._kwargs)


class BridgeRunner(web.AppRunner):
    """An AppRunner (app startup and cleanup, sites, graceful shutdown) whose connections
    are `BridgeProtocol`s."""

    def __init__(self, app: web.Application, *, timeouts: ClientTimeouts, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._timeouts = timeouts

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return BridgeServer(server.request_handler, request_factory=server.request_factory,
                            handler_cancellation=server.handler_cancellation,
                            loop=asyncio.get_running_loop(), timeouts=self._timeouts, **server._kwargs)
