"""How a servicer's answer leaves it. A gRPC client gets protobuf messages. `serve`'s own REST
bridge calls in-process (server/services/in_process.py) and writes JSON: its calls get the JSON
text the same codec makes of the answer, so no message is built only to be taken apart again
on the other side of the same process. A stream whose messages come in batches (those that
were ready together) hands such a caller each batch as one item, a list of JSON texts, which
the bridge writes at once; over gRPC each message goes on its own."""
from __future__ import annotations

from typing import Callable

from google.protobuf.message import Message

from server.codec.json_proto import Codec

# a call context whose caller writes the answer as JSON carries this attribute, true
JSON_ANSWERS = "json_answers"


def encoder(context: object, codec: Codec) -> Callable[[dict], Message | bytes]:
    """The answer's form for this call: `codec`'s message, or its JSON text (Codec.to_json)."""
    return codec.to_json if getattr(context, JSON_ANSWERS, False) else codec.to_message


def batch_items(context: object, codec: Codec) -> Callable[[list[dict]], list]:
    """What a streaming call yields for a batch of answers: one item, the list of their JSON
    texts, for a caller that writes JSON; else their messages, one item each."""
    if getattr(context, JSON_ANSWERS, False):
        to_json = codec.to_json
        return lambda batch: [[to_json(answer) for answer in batch]]
    to_message = codec.to_message
    return lambda batch: [to_message(answer) for answer in batch]
