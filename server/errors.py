"""One error vocabulary for every transport.

A `GatewayError` is what the relay core raises. The gRPC services turn it into a
status code plus a `google.rpc.Status` detail (`st_ai.v1.ErrorDetail`); the REST
bridge turns that back into the same HTTP status and OpenAI error body. The only
gRPC <-> HTTP table in the project lives here.
"""
from __future__ import annotations

import asyncio

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from st_ai.v1 import errors_pb2

# HTTP status -> gRPC code. 502 has no gRPC twin, so UNAVAILABLE is shared with 503
# and the detail's http_status tells them apart.
HTTP_TO_GRPC: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    410: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    416: grpc.StatusCode.OUT_OF_RANGE,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

# gRPC code -> HTTP status, for statuses that carry no detail (raised by grpc itself).
GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# The OpenAI error `type` that goes with each HTTP status when none is given.
DEFAULT_TYPE: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    410: "invalid_request_error",
    413: "invalid_request_error",
    416: "invalid_request_error",
    429: "rate_limit_error",
    499: "invalid_request_error",
    502: "upstream_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}


MAX_MESSAGE_BYTES = 1024
MAX_ECHOED_CHARS = 200


def _shown(value: str) -> str:
    """A client-chosen name as an error message quotes it: long ones are shortened."""
    return value if len(value) <= MAX_ECHOED_CHARS else value[:MAX_ECHOED_CHARS - 1] + "\u2026"


@dataclass
class GatewayError(Exception):
    http_status: int
    message: str
    code: str | None = None
    param: str | None = None
    type: str | None = None
    # an upstream failure another channel might not have (routing tries the next one)
    retryable: bool = False
    # seconds the upstream asked to be left alone (a 429's or 503's Retry-After)
    retry_after: float | None = None
    # the channel itself is broken, whatever the request: "credentials" (its key was
    # rejected) disables it until a probe or `st-ai channel test` succeeds; "account"
    # (its upstream account has no balance left) and "misconfigured" (a 404/405 on an
    # endpoint st-ai calls) count against it like any failure
    channel_fault: str | None = None

    def __post_init__(self) -> None:
        # Messages may echo what a client sent; the gRPC status carries the message
        # in trailers, whose size is limited, so a long one would lose the error.
        if len(self.message) > MAX_MESSAGE_BYTES // 4:
            raw = self.message.encode("utf-8", "replace")
            if len(raw) > MAX_MESSAGE_BYTES:
                self.message = raw[:MAX_MESSAGE_BYTES - 3].decode("utf-8", "ignore") + "\u2026"
        super().__init__(self.message)
        if self.type is None:
            self.type = DEFAULT_TYPE.get(self.http_status, "api_error")

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return HTTP_TO_GRPC.get(self.http_status, grpc.StatusCode.UNKNOWN)

    def body(self) -> dict:
        """The OpenAI error object."""
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}

    def to_status(self) -> status_pb2.Status:
        detail = any_pb2.Any()
        detail.Pack(errors_pb2.ErrorDetail(
            message=self.message, type=self.type or "", code=self.code or "",
            param=self.param or "", http_status=self.http_status))
        return status_pb2.Status(code=self.grpc_code.value[0], message=self.message, details=[detail])

    @classmethod
    def from_status(cls, code: grpc.StatusCode, message: str,
                    status: status_pb2.Status | None) -> "GatewayError":
        """Rebuild the error a server raised from a received gRPC status."""
        if status is not None:
            for detail in status.details:
                if detail.Is(errors_pb2.ErrorDetail.DESCRIPTOR):
                    info = errors_pb2.ErrorDetail()
                    detail.Unpack(info)
                    return cls(info.http_status or GRPC_TO_HTTP.get(code, 500), info.message,
                               info.code or None, info.param or None, info.type or None)
        http = GRPC_TO_HTTP.get(code, 500)
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return cls(504, "The request took longer than its deadline.", "timeout")
        if code is grpc.StatusCode.UNAVAILABLE:
            return cls(503, "The gateway's gRPC service is unavailable.", "service_unavailable")
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return cls(413, "The request is larger than the gateway accepts.", "request_too_large")
        # A status without our detail was not raised by st-ai's code: say so without
        # echoing internals.
        return cls(http, message if http < 500 else "The gateway failed to process the request.",
                   "internal_error" if http >= 500 else None)


# Constructors for the errors the contract names, so every caller words them alike.

def invalid_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, code, param)


def invalid_api_key(message: str = "Incorrect API key provided.") -> GatewayError:
    return GatewayError(401, message, "invalid_api_key", type="invalid_request_error")


def model_not_allowed(model: str) -> GatewayError:
    return GatewayError(403, f"This token is not allowed to use the model '{_shown(model)}'.",
                        "model_not_allowed", "model")


def model_not_found(model: str) -> GatewayError:
    return GatewayError(404, f"The model '{_shown(model)}' does not exist or you do not have access to it.",
                        "model_not_found", "model")


def no_channel(model: str) -> GatewayError:
    return GatewayError(503, f"No channel is available for the model '{_shown(model)}' right now.",
                        "no_available_channel")


def all_resting(model: str) -> GatewayError:
    """Every channel for `model` is cooling down or was disabled by st-ai."""
    return GatewayError(503, f"Every channel for the model '{_shown(model)}' is cooling down after failures or "
                             "disabled; try again shortly.", "no_available_channel")


def upstreams_rate_limited(model: str, retry_after: float | None) -> GatewayError:
    """No attempt answered because the upstreams rate limit st-ai: a 503, not a 429 that
    would read as the client's own limit."""
    return GatewayError(503, f"The upstreams serving the model '{_shown(model)}' are rate limiting this "
                             "gateway; try again shortly.", "upstream_rate_limited", retry_after=retry_after)


def upstream_failed(message: str = "The upstream service failed to answer.",
                    retryable: bool = True) -> GatewayError:
    return GatewayError(502, message, "upstream_error", retryable=retryable)


def credentials_rejected(who: str = "the upstream service", retryable: bool = True) -> GatewayError:
    """An upstream 401/403 for the channel's key: another channel may still answer."""
    return GatewayError(502, f"{who[0].upper()}{who[1:]} rejected the channel's credentials.", "upstream_error",
                        retryable=retryable, channel_fault="credentials")


def upstream_rate_limited(retry_after: float | None = None,
                          who: str = "the upstream service") -> GatewayError:
    return GatewayError(429, f"{who[0].upper()}{who[1:]} is rate limiting this channel; try again shortly.",
                        "upstream_rate_limited", retryable=True, retry_after=retry_after)


def unreachable(exc: BaseException, who: str = "the upstream service") -> GatewayError:
    """An upstream call that timed out (504) or failed on the network (502), both retryable."""
    if isinstance(exc, asyncio.TimeoutError):
        return GatewayError(504, f"{who[0].upper()}{who[1:]} did not answer in time.", "upstream_timeout",
                            retryable=True)
    # The exception's text may hold the upstream address: say only what kind of failure it was.
    return upstream_failed(f"Could not reach {who} ({type(exc).__name__}).")
