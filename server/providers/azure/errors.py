"""Azure OpenAI's errors: OpenAI's error body (server/providers/openai/errors.py reads
it) plus what only Azure says.

- A content filter refusal: 400 with `code` "content_filter" (chat) or
  "content_policy_violation" / "contentFilter" (images), and an inner error
  (`innererror` or `inner_error`) whose code is "ResponsibleAIPolicyViolation" and whose
  `content_filter_result(s)` name the categories that were filtered. The client gets a
  400 `content_filter` naming those categories; nothing is retried (every channel's
  filter would judge the same prompt alike).
- An API version the resource or model does not take: 400 "API version not supported"
  or "... enabled only for api versions ...", the channel's setup at fault, not the
  request's: another channel may be set up right.
- A missing deployment (404 DeploymentNotFound) is a misconfigured channel, as any 404
  on an endpoint is; 401 and 403 reject the channel's key; 429 carries `retry-after-ms`
  and `retry-after` (server/providers/failures.py reads both)."""
from __future__ import annotations


from server import upstream_errors
from server.errors import GatewayError
from server.providers import failures
from server.providers.failures import Headers
from server.providers.openai import errors as openai_errors
from server.store.channels import Channel

FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "contentfilter"})
POLICY_VIOLATION = "ResponsibleAIPolicyViolation"
_VERSION_WORDS = ("api version", "api-version")


def from_response(status: int, body: bytes, channel: Channel, endpoint: bool = False,
                  headers: Headers | None = None) -> GatewayError:
    error = failures.error_object(body)
    if status == 400 and _filtered(error):
        return content_filtered(_categories(error))
    if status == 400 and _names_api_version(error):
        return upstream_errors.misconfigured(channel, status)
    return openai_errors.from_response(status, body, channel, endpoint, headers)


def content_filtered(categories: list[str]) -> GatewayError:
    which = f" ({', '.join(categories)})" if categories else ""
    return GatewayError(400, f"The request was refused by the upstream's content filter{which}. "
                        "Change the prompt and try again.", "content_filter", type="invalid_request_error")


def _inner(error: dict) -> dict:
    inner = error.get("innererror", error.get("inner_error"))
    return inner if isinstance(inner, dict) else {}


def _filtered(error: dict) -> bool:
    code = error.get("code")
    return (isinstance(code, str) and code.lower() in FILTER_CODES) or _inner(error).get("code") == POLICY_VIOLATION


def _categories(error: dict) -> list[str]:
    """The filter categories that refused the request, by their documented names."""
    inner = _inner(error)
    results = inner.get("content_filter_result", inner.get("content_filter_results"))
    if not isinstance(results, dict):
        return []
    return [name.replace("_", " ") for name, verdict in results.items()
            if isinstance(name, str) and name.replace("_", "").isalpha() and len(name) <= 40
            and isinstance(verdict, dict) and verdict.get("filtered") is True]


def _names_api_version(error: dict) -> bool:
    code, message = error.get("code"), error.get("message")
    return (isinstance(code, str) and code.lower() == "badrequest" and isinstance(message, str)
            and any(words in message.lower() for words in _VERSION_WORDS))
