"""rest_bridge/dialects.py: a Messages or Responses event is named by its `type`, whether
the service gave it as a message (over gRPC) or as JSON text (in-process), where the type
is read without parsing the event when it comes first."""
from __future__ import annotations

import orjson
import pytest

from rest_bridge import dialects
from rest_bridge.dialects import BY_SERVICE, OPENAI
from st_ai.v1 import responses_pb2

NAMED = BY_SERVICE["st_ai.v1.Responses"]


def named(event: dict) -> bytes:
    data = orjson.dumps(event)
    return dialects.sse_event(data, data, NAMED)


@pytest.mark.parametrize("event, name", [
    ({"type": "response.output_text.delta", "delta": "hi"}, b"response.output_text.delta"),
    # not first (a text the codec rebuilt in its field order): read from the parsed event
    ({"sequence_number": 3, "type": "response.completed", "response": {"id": "r"}}, b"response.completed"),
    # an escape in the name: parsed, so the name is the decoded one
    ({"type": "a\u00e9b", "x": 1}, "a\u00e9b".encode()),
    ({"type": "tab\there"}, b"message"),  # not printable: named the SSE default
    ({"type": 7}, b"message"),
    ({"delta": "no type at all"}, b"message"),
    ({"type": "content_block_delta", "note": "a \\\" quote later is not the name's end"}, b"content_block_delta"),
])
def test_a_json_event_is_named_by_its_type(event, name):
    data = orjson.dumps(event)
    assert named(event) == b"event: " + name + b"\ndata: " + data + b"\n\n"


def test_a_message_event_is_named_by_its_type_field():
    message = responses_pb2.ResponseStreamEvent(type="response.created")
    assert dialects.sse_event(b"{}", message, NAMED).startswith(b"event: response.created\n")


def test_chat_events_carry_no_name():
    assert dialects.sse_event(b'{"type":"x"}', b'{"type":"x"}', OPENAI) == b'data: {"type":"x"}\n\n'
