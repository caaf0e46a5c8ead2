"""JSON and SSE on the wire: request bodies in, JSON answers and event streams out."""
from __future__ import annotations

import math
import re
from typing import Any

import orjson
from aiohttp import web
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from rest_bridge import multipart
from server.codec import codec_for
from server.errors import GatewayError, invalid_request

JSON_TYPE = "application/json"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell reverse proxies not to hold events back
}


def parse_body(raw: bytes, charset: str | None = None) -> dict:
    if not raw.strip():
        raise invalid_request("The request body is empty; send a JSON object.", code="invalid_json")
    source: bytes | str = raw
    # JSON is UTF-8 (RFC 8259), which orjson reads from the bytes themselves; a body
    # that declares another charset is decoded as it says
    if charset and multipart.codec_name(charset) not in ("utf-8", "ascii"):
        source = multipart.decode(raw, charset, "The request body")
    try:
        data = orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in exc.msg:
            raise invalid_request("The request body is not valid UTF-8.", code="invalid_json") from None
        raise invalid_request(f"We could not parse the JSON body of your request: {exc.msg}.",
                              code="invalid_json") from None
    if not isinstance(data, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_json")
    return data


_INTEGER = re.compile(r"-?[0-9]{1,30}")  # ASCII digits only; int() would take '١', ' 1' and '1_0'
_INTEGER_TYPES = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
                  FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64)


def _query_value(field: FieldDescriptor, raw: str) -> Any:
    kind = field.type
    if kind in _INTEGER_TYPES:
        if not _INTEGER.fullmatch(raw):
            raise invalid_request(f"'{field.name}' must be a whole number.", param=field.name)
        return int(raw)  # out of the field's range: the codec says so
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise invalid_request(f"'{field.name}' must be a number.", param=field.name)
        return number
    if kind == FieldDescriptor.TYPE_BOOL:
        if raw not in ("true", "false"):
            raise invalid_request(f"'{field.name}' must be true or false.", param=field.name)
        return raw == "true"
    return raw


def query_fields(request_class: type[Message], query: Any, skip: tuple[str, ...]) -> dict:
    """Query parameters that name scalar request fields, converted to their types; a
    repeated field takes every value given (`?by=token&by=day`), any other the last."""
    fields = request_class.DESCRIPTOR.fields_by_name
    out: dict = {}
    for name, raw in query.items():
        field = fields.get(name)
        if field is None or field.message_type is not None or name in skip:
            continue
        if field.is_repeated:
            out.setdefault(name, []).append(_query_value(field, raw))
        else:
            out[name] = _query_value(field, raw)
    return out


def form_fields(request_class: type[Message], parts: list[multipart.Part]) -> dict:
    """A multipart/form-data body as a request dict: text parts converted to their
    fields' types, uploaded files into InputFile-shaped fields (data, filename,
    content_type). Parts that name no field travel on as text, like unknown JSON keys."""
    fields = request_class.DESCRIPTOR.fields_by_name
    out: dict = {}
    for part in parts:
        name, field = part.name, fields.get(part.name)
        takes_file = (field is not None and field.message_type is not None
                      and "data" in field.message_type.fields_by_name)
        if part.is_file:
            if not takes_file:
                raise invalid_request(f"'{name}' does not take a file.", param=name)
            out[name] = {"data": part.data, "filename": part.filename,
                         "content_type": part.content_type}
            continue
        value = multipart.text(part)
        if field is not None and field.message_type is None and not field.is_repeated:
            out[name] = _query_value(field, value)
        elif field is not None and field.message_type is not None:
            # e.g. chat messages, metadata, or input_reference as {"image_url": ...}, sent as JSON text
            out[name] = _json_part(field, value)
        else:
            out[name] = value
    return out


def _json_part(field: FieldDescriptor, text: str) -> Any:
    """A text part holding a message field as JSON: an array for a repeated field, an
    object for a single message or a map."""
    is_list = field.is_repeated and not field.message_type.GetOptions().map_entry
    kind, expected = ("array", list) if is_list else ("object", dict)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"'{field.name}' must be a JSON {kind}: {exc.msg}.", param=field.name) from None
    if not isinstance(value, expected):
        raise invalid_request(f"'{field.name}' must be a JSON {kind}.", param=field.name)
    return value


def to_message(request_class: type[Message], data: dict) -> Message:
    return codec_for(request_class, strict=True).to_message(data)


def json_text(message: Message | bytes) -> bytes:
    """A message as JSON; an answer the service gave as JSON already (server/services/answers.py)
    as it is."""
    if isinstance(message, bytes):
        return message
    return orjson.dumps(codec_for(type(message)).to_dict(message))


def json_response(message: Message | bytes) -> web.Response:
    return web.Response(body=json_text(message), content_type=JSON_TYPE)


def sse_event(message: Message | bytes) -> bytes:
    return b"data: " + json_text(message) + b"\n\n"


def error_response(error: GatewayError, body: dict | None = None) -> web.Response:
    """`error` as an answer: OpenAI's error body unless another `body` (another API's shape) is given."""
    return web.Response(status=error.http_status, body=orjson.dumps(error.body() if body is None else body),
                        content_type=JSON_TYPE)
