"""multipart/form-data bodies (rest_bridge/multipart.py): what real clients encode is
read back exactly, and every malformed body is one clear 400 — never another
exception. Malformed bodies come from a seeded generator, so a failure reproduces."""
from __future__ import annotations

import json
import random

import httpx2
import pytest

from rest_bridge import marshal, multipart
from server.errors import GatewayError
from st_ai.v1 import chat_pb2, videos_pb2

SEED = 7578
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # bytes that look like boundaries and CRLFs too


def encoded(data: dict, files: dict | None = None) -> tuple[bytes, str]:
    """A body as the OpenAI SDK's HTTP client writes it (with a fixed boundary, so the
    seeded mutations below reproduce)."""
    request = httpx2.Request("POST", "http://127.0.0.1/", data=data, files=files,
                             headers={"Content-Type": "multipart/form-data; boundary=st-ai-test-7578"})
    return request.read(), request.headers["Content-Type"]


def test_a_form_as_the_sdk_sends_it_is_read_back_exactly() -> None:
    body, content_type = encoded({"model": "sora-2", "prompt": "a fox \u00e9\u2603", "seconds": "4"},
                                 {"input_reference": ("ref.png", PNG, "image/png")})
    parts = multipart.parse(body, content_type)
    assert [p.name for p in parts] == ["model", "prompt", "seconds", "input_reference"]
    assert multipart.text(parts[1]) == "a fox \u00e9\u2603"
    image = parts[3]
    assert image.is_file and image.filename == "ref.png" and image.content_type == "image/png"
    assert image.data == PNG
    form = marshal.form_fields(videos_pb2.CreateVideoRequest, parts)
    assert form["input_reference"] == {"data": PNG, "filename": "ref.png", "content_type": "image/png"}
    assert form["seconds"] == "4"


def test_a_text_part_in_a_declared_charset_is_decoded_by_it() -> None:
    body = (b'--b\r\nContent-Disposition: form-data; name="prompt"\r\nContent-Type: text/plain; charset=iso-8859-1'
            b"\r\n\r\ncaf\xe9\r\n--b--\r\n")
    [part] = multipart.parse(body, "multipart/form-data; boundary=b")
    assert multipart.text(part) == "caf\u00e9"


def error_of(body: bytes, content_type: str, request_class=videos_pb2.CreateVideoRequest) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        marshal.form_fields(request_class, multipart.parse(body, content_type))
    return caught.value


VALID, CONTENT_TYPE = encoded({"model": "m", "prompt": "p"}, {"input_reference": ("a.png", PNG, "image/png")})
BOUNDARY = CONTENT_TYPE.split("boundary=")[1]


def part(headers: str, value: bytes = b"x") -> bytes:
    return f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + value + b"\r\n"


END = f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize("name, body, content_type, param", [
    ("no boundary", VALID, "multipart/form-data", None),
    ("empty boundary", VALID, 'multipart/form-data; boundary=""', None),
    ("boundary too long", VALID, "multipart/form-data; boundary=" + "a" * 71, None),
    ("wrong boundary", VALID, "multipart/form-data; boundary=other", None),
    ("empty body", b"", CONTENT_TYPE, None),
    ("only the end", END, CONTENT_TYPE, None),
    ("truncated", VALID[:len(VALID) // 2], CONTENT_TYPE, None),
    ("no closing boundary", VALID[:-len(END)], CONTENT_TYPE, None),
    ("nameless part", part("Content-Disposition: form-data") + END, CONTENT_TYPE, None),
    ("empty name", part('Content-Disposition: form-data; name=""') + END, CONTENT_TYPE, None),
    ("no disposition", part("Content-Type: text/plain") + END, CONTENT_TYPE, None),
    ("not form-data", part('Content-Disposition: attachment; name="prompt"') + END, CONTENT_TYPE, None),
    ("header without colon", part('Content-Disposition: form-data; name="prompt"\r\nBroken') + END,
     CONTENT_TYPE, None),
    ("huge part header", part('Content-Disposition: form-data; name="prompt"\r\nX: ' + "a" * 100_000) + END,
     CONTENT_TYPE, None),
    ("base64 transfer encoding", part('Content-Disposition: form-data; name="prompt"\r\n'
                                      "Content-Transfer-Encoding: base64") + END, CONTENT_TYPE, None),
    ("duplicate part", part('Content-Disposition: form-data; name="prompt"') + VALID, CONTENT_TYPE, "prompt"),
    ("invalid UTF-8", part('Content-Disposition: form-data; name="prompt"', b"\xff\xfe") + END,
     CONTENT_TYPE, "prompt"),
    ("bogus charset", part('Content-Disposition: form-data; name="prompt"\r\nContent-Type: text/plain; '
                           "charset=bogus") + END, CONTENT_TYPE, "prompt"),
    ("charset with a NUL", part('Content-Disposition: form-data; name="prompt"\r\nContent-Type: text/plain; '
                                "charset=utf-8\x00") + END, CONTENT_TYPE, "prompt"),
    ("codec that is no charset", part('Content-Disposition: form-data; name="prompt"\r\nContent-Type: '
                                      "text/plain; charset=rot13") + END, CONTENT_TYPE, "prompt"),
    ("file where text is expected", part('Content-Disposition: form-data; name="prompt"; filename="p.txt"')
     + END, CONTENT_TYPE, "prompt"),
    ("text where a file is expected", part('Content-Disposition: form-data; name="input_reference"') + END,
     CONTENT_TYPE, "input_reference"),
    ("metadata that is not JSON", part('Content-Disposition: form-data; name="metadata"', b"{nope") + END,
     CONTENT_TYPE, "metadata"),
    ("number that is not one", part('Content-Disposition: form-data; name="width"', "\u0661".encode())
     + END, CONTENT_TYPE, "width"),
])
def test_a_malformed_form_is_a_400_that_says_what_is_wrong(name, body, content_type, param) -> None:
    error = error_of(body, content_type)
    assert error.http_status == 400, name
    assert error.type == "invalid_request_error" and error.message, name
    assert error.param == param, (name, error)


def mutate(rng: random.Random, valid: bytes, tokens: list[bytes], most_edits: int) -> bytes:
    """`valid` after 1..most_edits random edits: a byte changed, a run deleted, a token of the
    format inserted, or the rest cut off."""
    body = bytearray(valid)
    for _ in range(rng.randint(1, most_edits)):
        at = rng.randrange(len(body) or 1)
        roll = rng.random()
        if roll < 0.3 and body:
            body[at] = rng.randrange(256)
        elif roll < 0.5:
            del body[at:at + rng.randint(1, 40)]
        elif roll < 0.8:
            body[at:at] = rng.choice(tokens)
        else:
            body = body[:at]
    return bytes(body)


def mutations(rng: random.Random, valid: bytes) -> list[bytes]:
    tokens = [b"\r\n", b"--", BOUNDARY.encode(), b'"', b";", b":", b"=", b"\xff", b"\x00", b"name=", b"filename=",
              b"Content-Disposition: form-data", b"charset=", b"*", b"'", b"%", b"\\"]
    return [mutate(rng, valid, tokens, 4) for _ in range(3000)]


def test_seeded_mutations_of_a_valid_form_parse_or_fail_as_a_400() -> None:
    rng = random.Random(SEED)
    valid, content_type = encoded({"model": "m", "prompt": "a fox", "metadata": '{"a": 1}', "width": "160"},
                                  {"input_reference": ("a.png", PNG[:64], "image/png")})
    outcomes = {"parsed": 0, "refused": 0}
    for body in mutations(rng, valid):
        try:
            marshal.form_fields(videos_pb2.CreateVideoRequest, multipart.parse(body, content_type))
            outcomes["parsed"] += 1
        except GatewayError as error:
            assert error.http_status == 400 and error.message, (body[:200], error)
            outcomes["refused"] += 1
    assert outcomes["parsed"] and outcomes["refused"], outcomes  # both kinds happened


def test_seeded_junk_content_types_fail_as_a_400() -> None:
    rng = random.Random(SEED + 1)
    pieces = ["multipart/form-data", ";", " boundary=", '"', BOUNDARY, "\x00", "\u00e9", "=", "charset=x", ",", "\\"]
    for _ in range(500):
        content_type = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        try:
            multipart.parse(VALID, content_type)
        except GatewayError as error:
            assert error.http_status == 400, (content_type, error)


def text_parts(fields: dict[str, str]) -> bytes:
    return b"".join(part(f'Content-Disposition: form-data; name="{name}"', value.encode())
                    for name, value in fields.items()) + END


def test_chat_messages_sent_as_a_json_text_part_are_read_as_the_array_they_are() -> None:
    messages = [{"role": "user", "content": "hi"}]
    body = text_parts({"model": "m", "messages": json.dumps(messages), "response_format": '{"type": "json_object"}'})
    form = marshal.form_fields(chat_pb2.ChatCompletionRequest, multipart.parse(body, CONTENT_TYPE))
    assert form["messages"] == messages and form["response_format"] == {"type": "json_object"}


# The refusal names what the field takes: an array for a repeated field, an object for a
# single message or a map, whatever field the probe picks.
@pytest.mark.parametrize("request_class, name, text, kind", [
    (chat_pb2.ChatCompletionRequest, "messages", '{"role": "user", "content": "hi"}', "array"),
    (chat_pb2.ChatCompletionRequest, "messages", "hello", "array"),
    (chat_pb2.ChatCompletionRequest, "tools", '"none"', "array"),
    (chat_pb2.ChatCompletionRequest, "response_format", "[1]", "object"),
    (chat_pb2.ChatCompletionRequest, "stream_options", "{", "object"),
    (videos_pb2.CreateVideoRequest, "metadata", '["a"]', "object"),
])
def test_a_json_text_part_of_the_wrong_shape_says_what_it_must_be(request_class, name, text, kind) -> None:
    error = error_of(text_parts({"model": "m", name: text}), CONTENT_TYPE, request_class)
    assert error.http_status == 400 and error.param == name
    assert error.message.startswith(f"'{name}' must be a JSON {kind}"), error.message
