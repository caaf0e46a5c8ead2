"""An embeddings answer made fit for its client: each vector in the encoding the client
asked for, whichever one the upstream answered in. Pure: no I/O.

"base64" is OpenAI's: the vector's float32 values, little-endian, base64-encoded; "float"
is a JSON array of numbers. A float32 read back is exactly the number OpenAI writes for
it in a float answer, so either way round a client sees what OpenAI would have sent."""
from __future__ import annotations

import base64
import binascii
import sys
from array import array
from typing import Any

from server.errors import GatewayError

FORMATS = ("float", "base64")
_SWAP = sys.byteorder != "little"


class BadVector(ValueError):
    """An embedding that is neither an array of numbers nor base64 of float32 values."""


def to_base64(vector: list) -> str:
    try:
        packed = array("f", vector)
    except TypeError:
        raise BadVector("an embedding holds something that is not a number") from None
    if _SWAP:
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def from_base64(text: str) -> list[float]:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadVector("an embedding is not base64") from None
    if len(raw) % 4:
        raise BadVector("a base64 embedding is not a whole number of float32 values")
    packed = array("f")
    packed.frombytes(raw)
    if _SWAP:
        packed.byteswap()
    return packed.tolist()


def _numbers(vector: list) -> list:
    if not all(type(v) is float or type(v) is int for v in vector):
        raise BadVector("an embedding holds something that is not a number")
    return vector


def encoded(vector: Any, wanted: str) -> list | str:
    """`vector` (an array of numbers or a base64 string, as an upstream gave it) in the
    `wanted` encoding."""
    if isinstance(vector, str):
        return vector if wanted == "base64" else from_base64(vector)
    if isinstance(vector, list):
        return to_base64(vector) if wanted == "base64" else _numbers(vector)
    raise BadVector("an embedding is neither an array nor a string")


def fit(answer: dict, wanted: str, inputs: int) -> dict:
    """The upstream's `answer` with one embedding per input, in input order, each in the
    `wanted` encoding. Raises BadVector for an answer that does not have that shape."""
    data = answer.get("data")
    if not isinstance(data, list) or len(data) != inputs:
        raise BadVector(f"the answer holds {len(data) if isinstance(data, list) else 'no'} embeddings "
                        f"for {inputs} inputs")
    items = []
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise BadVector("an embedding is not an object")
        index = item.get("index", position)
        if type(index) is not int or not 0 <= index < inputs:
            raise BadVector("an embedding's index names no input")
        items.append({**item, "object": "embedding", "index": index,
                      "embedding": encoded(item.get("embedding"), wanted)})
    items.sort(key=lambda item: item["index"])
    if [item["index"] for item in items] != list(range(inputs)):
        raise BadVector("the embeddings' indexes do not name each input once")
    return {**answer, "object": "list", "data": items}


def unreadable(problem: BadVector) -> GatewayError:
    """What the attempt loop makes of an upstream answer `fit` refused: another channel
    may answer properly."""
    return GatewayError(502, f"The upstream's embeddings could not be read: {problem}.", "upstream_bad_answer",
                        retryable=True)
