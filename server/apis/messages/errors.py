"""Gateway errors in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`,
as a response body with its HTTP status, or as an `error` event inside a stream.

The HTTP status stays st-ai's own (a 503 is still a 503: Anthropic's SDK retries it like a
529); only the error `type` follows Anthropic's table (its API reference, "Errors", checked
2026-11-29): 400 invalid_request_error, 401 authentication_error, 402 billing_error,
403 permission_error, 404 not_found_error, 409 conflict_error, 413 request_too_large, 429 rate_limit_error,
500 api_error, 504 timeout_error, 529 overloaded_error."""
from __future__ import annotations

from server.errors import GatewayError, invalid_request

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    410: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    # every channel busy, rate limited or cooling down: the upstream's overload, as Anthropic says it
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def error_body(error: GatewayError) -> dict:
    """The body of an error answer (and the data of a stream's `error` event)."""
    return {"type": "error", "error": {"type": error_type(error.http_status), "message": error.message}}


def error_response(error: GatewayError) -> tuple[int, dict]:
    return error.http_status, error_body(error)


def error_event(error: GatewayError) -> tuple[str, dict]:
    """A failure after the stream's first event: the status is already sent."""
    return "error", error_body(error)


def missing(field: str) -> GatewayError:
    """A required field absent, worded as Anthropic words it."""
    return invalid_request(f"{field}: Field required", field)
