"""Every failure the bridge answers becomes an OpenAI error body, in one middleware."""
from __future__ import annotations

import logging

import grpc
from aiohttp import web
from google.rpc import status_pb2

from rest_bridge import dialects
from rest_bridge.forwarded import forward_headers
from rest_bridge.marshal import error_response
from rest_bridge.state import MAX_BODY_BYTES
from server.errors import GatewayError
from server.services.status import DETAILS_KEY

log = logging.getLogger("st_ai.bridge")


def from_rpc_error(error: grpc.aio.AioRpcError) -> GatewayError:
    status = None
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
    return GatewayError.from_status(error.code(), error.details() or "", status)


def rpc_error_response(error: grpc.aio.AioRpcError, dialect: dialects.Dialect = dialects.OPENAI) -> web.Response:
    """The error answer a failed RPC becomes (OpenAI's shape unless the route speaks another
    API), with the headers its trailers carry (a 429's Retry-After, a limited token's
    x-ratelimit-*)."""
    return forward_headers(error.trailing_metadata(), dialects.error_response(from_rpc_error(error), dialect))


def _from_http(exc: web.HTTPException, request: web.Request) -> GatewayError:
    if exc.status == 404:
        return GatewayError(404, f"Unknown request URL: {request.method} {request.path}.", "unknown_url")
    if exc.status == 405:
        return GatewayError(405, f"Method {request.method} is not allowed on {request.path}.",
                            "method_not_allowed", type="invalid_request_error")
    if exc.status == 413:
        return GatewayError(413, f"The request body is larger than this gateway accepts "
                            f"({request.app[MAX_BODY_BYTES]} bytes).", "request_too_large")
    return GatewayError(exc.status, exc.reason or "The request failed.")


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue` is answered as aiohttp does; any other expectation is the
    client's 417, as an OpenAI error (aiohttp's own answer, plain text, comes before any
    middleware runs)."""
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        return error_response(GatewayError(417, "The only expectation this gateway meets is "
                                           "'Expect: 100-continue'.", "expectation_failed",
                                           type="invalid_request_error"))
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer's own bytes are counted from here
    return None


@web.middleware
async def openai_errors(request: web.Request, handler) -> web.StreamResponse:
    """(In the shape of the route's API: rest_bridge/dialects.py.)"""
    try:
        return await handler(request)
    except GatewayError as error:
        return dialects.error_response(error, dialects.of(request))
    except grpc.aio.AioRpcError as error:
        return rpc_error_response(error, dialects.of(request))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return dialects.error_response(_from_http(exc, request), dialects.of(request))
    except web.RequestPayloadError:
        # Raised while reading the body: e.g. a Content-Encoding: gzip body that is not gzip.
        return dialects.error_response(GatewayError(400, "The request body could not be read: it does not match "
                                                    "its Content-Encoding or Transfer-Encoding.", "invalid_body"),
                                       dialects.of(request))
    except ConnectionError:
        # the client left while its answer was written (a stream's next write found the
        # connection reset): there is no one to answer, and nothing failed on st-ai's side;
        # the server drops the connection quietly (http_server.BridgeProtocol.handle_error)
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return dialects.error_response(GatewayError(500, "The gateway failed to process the request.",
                                                    "internal_error", type="api_error"), dialects.of(request))
