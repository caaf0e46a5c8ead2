"""How a route's HTTP answers are shaped when its service speaks a client API other than
OpenAI's chat completions: the error body, the form of its server-sent events, and the
header its clients send their key in. Chosen per gRPC service; every other service
answers as OpenAI does."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import orjson
from aiohttp import web
from google.protobuf.message import Message

from rest_bridge import marshal
from server.apis.messages.errors import error_body as messages_error_body
from server.errors import GatewayError

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Dialect:
    error_body: Callable[[GatewayError], dict]
    # each event names itself in an `event:` line (its message's `type`), as the Responses and
    # Messages APIs' SDKs read them; chat's events do not, and end with `data: [DONE]`
    named_events: bool = False
    end: bytes = DONE
    # a header its SDK sends the key in instead of `Authorization: Bearer` (Anthropic's x-api-key)
    key_header: str | None = None


OPENAI = Dialect(GatewayError.body)
BY_SERVICE: dict[str, Dialect] = {
    "st_ai.v1.Responses": Dialect(GatewayError.body, named_events=True, end=b""),
    "st_ai.v1.Messages": Dialect(messages_error_body, named_events=True, end=b"", key_header="x-api-key"),
}
# the request's dialect, set by its route's handler before anything can fail
DIALECT = web.RequestKey("st_ai_dialect", Dialect)


def for_rpc(rpc_path: str) -> Dialect:
    """`rpc_path` is /package.Service/Method."""
    return BY_SERVICE.get(rpc_path.split("/")[1], OPENAI)


def of(request: web.Request) -> Dialect:
    return request.get(DIALECT, OPENAI)


def error_response(error: GatewayError, dialect: Dialect = OPENAI) -> web.Response:
    return marshal.error_response(error, dialect.error_body(error))


def sse_event(data: bytes, message: Message | bytes, dialect: Dialect) -> bytes:
    """One event: `data` is the message's JSON text."""
    if not dialect.named_events:
        return b"data: " + data + b"\n\n"
    kind = message.type if isinstance(message, Message) else _json_type(data)
    name = kind.encode() if isinstance(kind, str) and kind.isprintable() else b"message"
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


_TYPE_FIRST = b'{"type":"'


def _json_type(data: bytes) -> object:
    """The `type` of an event the service gave as JSON text (orjson's: compact, no key twice).
    The services put it first; read there, the event (a whole response, at the end of a
    Responses stream) is not parsed only for its name."""
    if data.startswith(_TYPE_FIRST):
        end = data.find(b'"', len(_TYPE_FIRST))
        if end != -1 and data.find(b"\\", len(_TYPE_FIRST), end) == -1:
            return data[len(_TYPE_FIRST):end].decode()
    return orjson.loads(data).get("type")


def sse_error(error: GatewayError, dialect: Dialect) -> bytes:
    body = orjson.dumps(dialect.error_body(error))
    return (b"event: error\n" if dialect.named_events else b"") + b"data: " + body + b"\n\n"
