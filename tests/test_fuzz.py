"""Malformed bodies thrown at POST /v1/chat/completions (and junk at GET /v1/models):
every answer must be a 4xx OpenAI error body (or, where the mutation left a valid
request, a normal answer) and never a 5xx; the server must be healthy afterwards.

Cases are generated from a seeded random generator, so a failure reproduces; each
case's id says what was done to the body.
"""
from __future__ import annotations

import copy
import gzip
import http.client
import json
import random
import socket
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import quote, urlsplit

import pytest

SEED = 20240611
MODEL = "fuzz-model"
FORBIDDEN = ("Traceback", 'File "', "internal_error")

BASE: dict = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "Look at this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        ]},
        {"role": "assistant", "content": "Calling f.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "user", "content": "Hello", "name": "bob"},
    ],
    "temperature": 0.5,
    "top_p": 0.9,
    "max_tokens": 64,
    "max_completion_tokens": 64,
    "n": 1,
    "stream": False,
    "frequency_penalty": 0.1,
    "presence_penalty": -0.1,
    "stop": ["\n\n", "END"],
    "seed": 7,
    "user": "fuzzer",
    "tools": [{"type": "function", "function": {
        "name": "f", "description": "a function", "strict": False,
        "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "parallel_tool_calls": True,
    "response_format": {"type": "text"},
    "logprobs": False,
    "top_logprobs": 2,
    "reasoning_effort": "low",
    "metadata": {"trace": "abc"},
}

# a value of each JSON type; a field gets the ones of the other types
POOL: list[Any] = [None, True, False, 0, -1, 1.5, "", "s", [], [1], ["s"], [{}], {}, {"a": 1}]


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every key and index of a JSON document, outermost first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*path, i)
            yield from _paths(item, (*path, i))


def _path_text(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _get(doc: Any, path: tuple) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _replaced(doc: Any, path: tuple, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _nested(depth: int, kind: str, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "array" else {"k": value}
    return value


def _deep_text(depth: int, kind: str) -> str:
    # written as text: json.dumps would recurse too deep
    return ("[" * depth + "1" + "]" * depth) if kind == "array" else ('{"k":' * depth + "1" + "}" * depth)


@dataclass
class FuzzCase:
    id: str
    body: bytes
    # True: the body is broken whatever the server thinks of it, so only a 400 will do.
    # False: the mutation may have left a valid request; a 200 is fine too.
    must_fail: bool
    param: str | None = None     # when the answer is a type error, the field it must name
    stream: bool = False


def _encode(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")


def wrong_types(base: dict, rng: random.Random, stream_share: float) -> Iterator[tuple[str, dict, tuple, bool]]:
    """Two values of the other JSON types at every path of `base`, about `stream_share` of
    them asked as streams: (label, document, path, streamed)."""
    for path in _paths(base):
        original = _get(base, path)
        others = [v for v in POOL if _json_kind(v) != _json_kind(original)]
        for value in rng.sample(others, 2):
            doc = _replaced(base, path, value)
            stream = rng.random() < stream_share and path != ("stream",)
            if stream:
                doc["stream"] = True
            yield f"type:{_path_text(path)}={json.dumps(value)}{'+stream' if stream else ''}", doc, path, stream


def _generate() -> list[FuzzCase]:
    rng = random.Random(SEED)
    cases: list[FuzzCase] = []
    valid = _encode(BASE)

    # 1. wrong types at every field: a few values of the other JSON types at each path
    for label, doc, path, stream in wrong_types(BASE, rng, 0.25):
        cases.append(FuzzCase(label, _encode(doc), False, _path_text(path), stream))

    # 2. null everywhere: each field on its own, then the whole tree's leaves at once
    for path in rng.sample(list(_paths(BASE)), 25):
        cases.append(FuzzCase(f"null:{_path_text(path)}", _encode(_replaced(BASE, path, None)), False))

    def all_null(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: all_null(v) for k, v in value.items()}
        if isinstance(value, list):
            return [all_null(v) for v in value]
        return None
    cases.append(FuzzCase("null:every-leaf", _encode(all_null(BASE)), True))
    cases.append(FuzzCase("null:every-field", _encode({k: None for k in BASE}), True))

    # 3. huge and odd numbers, written as literals, in the numeric fields and elsewhere
    numbers = ["1e308", "-1e308", str(2**70), str(-(2**64)), str(2**63), str(2**63 - 1), str(2**64 - 1),
               "1e-308", "-0.0", "0", "5e-324", "123456789012345678901234567890", "1E+2", "1e400", "-1e400"]
    numeric = [p for p in _paths(BASE) if _json_kind(_get(BASE, p)) == "number"]
    numeric += [("messages", 4, "content"), ("model",), ("tools", 0, "function", "parameters", "maximum"),
                ("unknown_field",)]
    marker = "__NUMBER__"
    for path in numeric:
        for literal in rng.sample(numbers, 4):
            doc = copy.deepcopy(BASE)
            _get(doc, path[:-1])[path[-1]] = marker
            body = _encode(doc).replace(f'"{marker}"'.encode(), literal.encode())
            cases.append(FuzzCase(f"number:{_path_text(path)}={literal}", body, False))

    # 4. NaN / Infinity literals (not JSON)
    for literal in ("NaN", "Infinity", "-Infinity", "nan", "inf", "+1", "01", "1.", ".5", "0x10", "1_000"):
        for path in (("temperature",), ("unknown_field",), ("tools", 0, "function", "parameters", "default")):
            doc = copy.deepcopy(BASE)
            _get(doc, path[:-1])[path[-1]] = marker
            body = _encode(doc).replace(f'"{marker}"'.encode(), literal.encode())
            cases.append(FuzzCase(f"literal:{_path_text(path)}={literal}", body, True))

    # 5. deep nesting: around every limit the gateway or its libraries have, and far past
    places = {
        "unknown": ("unknown_field",),
        "parameters": ("tools", 0, "function", "parameters", "properties"),
        "content": ("messages", 4, "content"),
        "part": ("messages", 1, "content", 0, "extra"),
        "metadata": ("metadata", "trace"),
        "response_format": ("response_format", "json_schema"),
    }
    for depth in (10, 63, 64, 65, 66, 200, 250, 252, 253, 254, 255, 256, 1000, 1023, 1024, 1025, 5000):
        for name, path in places.items():
            kind = rng.choice(["array", "object"])
            doc = copy.deepcopy(BASE)
            _get(doc, path[:-1])[path[-1]] = marker
            body = _encode(doc).replace(f'"{marker}"'.encode(), _deep_text(depth, kind).encode())
            cases.append(FuzzCase(f"deep:{name}:{kind}:{depth}", body, False))
    cases.append(FuzzCase("deep:body-is-array:5000", _deep_text(5000, "array").encode(), True))
    cases.append(FuzzCase("deep:messages:5000", b'{"model":"' + MODEL.encode() + b'","messages":'
                          + _deep_text(5000, "array").encode() + b"}", True))

    # 6. invalid UTF-8, raw, in values and in keys
    bad_bytes = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                 b"\xe2\x82", b"\x80"]
    for raw in bad_bytes:
        for target in ("Hello", "fuzzer", '"user"', MODEL):
            body = valid.replace(target.encode(), target.encode()[:2] + raw + target.encode()[2:], 1)
            cases.append(FuzzCase(f"utf8:{raw.hex()}:in:{target}", body, True))
    cases.append(FuzzCase("utf8:latin1-body", valid.replace(b"Hello", "Hélló".encode("latin-1")), True))
    cases.append(FuzzCase("utf8:utf16-body", _encode(BASE).decode().encode("utf-16"), True))
    cases.append(FuzzCase("utf8:bom", b"\xef\xbb\xbf" + valid, False))

    # 7. surrogates written as escapes: lone ones are not Unicode; a proper pair is fine
    for escape, broken in (("\\ud800", True), ("\\udc00", True), ("\\udfff\\ud800", True),
                           ("\\ud800\\u0041", True), ("\\ud83d\\ude00", False)):
        for target in ("Hello", "fuzzer", '"name"', "Look at this", "a function"):
            body = valid.replace(target.encode(), target.replace(target.strip('"'), target.strip('"') + escape)
                                 .encode(), 1)
            cases.append(FuzzCase(f"surrogate:{escape}:in:{target}", body, broken))
    cases.append(FuzzCase("surrogate:key", valid.replace(b'"user":', b'"us\\ud800er":', 1), True))

    # 8. truncated: sampled prefixes of a valid body (every proper prefix is broken)
    cuts = sorted(rng.sample(range(len(valid)), 60)) + [0, 1, len(valid) - 1]
    for cut in cuts:
        cases.append(FuzzCase(f"truncated:{cut}", valid[:cut], True))

    # 9. bodies that are not a JSON object at all
    for text in ("", " ", "\n\t", "null", "true", "0", "-1", '""', '"{}"', "[]", "[{}]", "{", "}", "{}}",
                 "{}{}", '{"model": "x"} trailing', "{'model': 'x'}", '{"model": "x",}', "\x00", "{\x00}",
                 '{"a":1,"a":2}'):
        cases.append(FuzzCase(f"shape:{text!r}", text.encode(), True))

    # 10. huge strings and many keys
    big = "x" * (2 * 1024 * 1024)
    for path in (("messages", 4, "content"), ("model",), ("user",), ("unknown_field",), ("messages", 4, "role"),
                 ("tools", 0, "function", "name")):
        cases.append(FuzzCase(f"huge-string:{_path_text(path)}", _encode(_replaced(BASE, path, big)), False))
    cases.append(FuzzCase("huge-key", _encode({**BASE, big: 1}), False))
    cases.append(FuzzCase("many-keys", _encode({**BASE, **{f"k{i}": i for i in range(50_000)}}), False))
    cases.append(FuzzCase("many-messages", _encode({**BASE, "messages": [{"role": "user", "content": "hi"}]
                                                    * 20_000}), False))
    cases.append(FuzzCase("many-stops", _encode({**BASE, "stop": ["s"] * 50_000}), False))

    # 11. random byte corruption of a valid body
    for i in range(60):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(body))
            choice = rng.random()
            if choice < 0.4:
                body[position] = rng.randrange(256)
            elif choice < 0.7:
                del body[position]
            else:
                body.insert(position, rng.choice(b'{}[]",:\\0123456789.eE+-ntfa \x00\xff'))
        cases.append(FuzzCase(f"corrupt:{i}", bytes(body), False))
    return cases


CASES = _generate()


class Session:
    """One persistent HTTP/1.1 connection for the whole module; reopened if closed."""

    def __init__(self, http_url: str) -> None:
        parsed = urlsplit(http_url)
        self.host, self.port = parsed.hostname, parsed.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=20)
        self.reconnects = 0

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.conn.close()
                return response.status, response.getheader("Content-Type", ""), data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.reconnects += 1
                if attempt:
                    raise
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def fuzz(gateway):
    gateway.channel("fuzz-sim", "simulator", [MODEL])
    key = gateway.token("fuzzer")
    session = Session(gateway.http_url)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    # the unmutated request is valid: what the mutations break is theirs
    status, _, raw = session.request("POST", "/v1/chat/completions", _encode(BASE), headers)
    assert status == 200, raw
    yield gateway, session, headers
    session.conn.close()


def error_json(status: int, content_type: str, raw: bytes, what: str) -> Any:
    """A refusal as every API's must be: a 4xx JSON body that leaks nothing; returns it parsed."""
    assert 400 <= status < 500, f"{what}: HTTP {status}: {raw[:500]!r}"
    assert content_type.startswith("application/json"), f"{what}: {content_type}"
    text = raw.decode("utf-8")
    for word in FORBIDDEN:
        assert word not in text, f"{what}: {word!r} in {text[:500]}"
    return json.loads(text)


def _check_error(status: int, content_type: str, raw: bytes, what: str) -> dict:
    what = what[:120]
    body = error_json(status, content_type, raw, what)
    assert set(body) == {"error"}, f"{what}: {body}"
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}, f"{what}: {error}"
    assert isinstance(error["message"], str) and error["message"], f"{what}: {error}"
    assert isinstance(error["type"], str) and error["type"], f"{what}: {error}"
    assert error["code"] is None or isinstance(error["code"], str), f"{what}: {error}"
    assert error["param"] is None or isinstance(error["param"], str), f"{what}: {error}"
    assert len(error["message"]) < 4096, f"{what}: the message echoes too much ({len(error['message'])} chars)"
    return error


def _check_success(content_type: str, raw: bytes, stream: bool, what: str) -> None:
    text = raw.decode("utf-8")
    if stream:
        assert content_type.startswith("text/event-stream"), f"{what}: {content_type}"
        events = [line[len("data: "):] for line in text.split("\n") if line.startswith("data: ")]
        assert events and events[-1] == "[DONE]", f"{what}: {text[-500:]}"
        for event in events[:-1]:
            assert "error" not in json.loads(event), f"{what}: {event}"
    else:
        assert content_type.startswith("application/json"), f"{what}: {content_type}"
        answer = json.loads(text)
        assert answer["object"] == "chat.completion" and answer["choices"], f"{what}: {text[:500]}"


def test_fuzz_chat_completions(fuzz) -> None:
    gateway, session, headers = fuzz
    failures: list[str] = []
    seen: dict[int, int] = {}
    for case in CASES:
        try:
            status, content_type, raw = session.request("POST", "/v1/chat/completions", case.body, headers)
            seen[status] = seen.get(status, 0) + 1
            if status < 300 and not case.must_fail:
                _check_success(content_type, raw, case.stream, case.id)
                continue
            error = _check_error(status, content_type, raw, case.id)
            if case.must_fail:
                assert status == 400, f"{case.id}: HTTP {status}: {error}"
            if error["code"] == "invalid_type" and case.param is not None:
                assert error["param"] == case.param, f"{case.id}: param {error['param']!r}"
        except AssertionError as failure:
            failures.append(str(failure).split("\n")[0])
    assert gateway.proc.poll() is None, "the gateway died"
    assert not failures, f"{len(failures)} of {len(CASES)} cases failed:\n" + "\n".join(failures[:40])
    # the fuzz mostly produced errors, and some mutations were harmless
    assert seen.get(400, 0) > len(CASES) / 3 and seen.get(200, 0) > 0, seen
    _assert_healthy(gateway, session, headers)


def test_fuzz_without_token_is_401_first(fuzz) -> None:
    """Without a key a well-formed body is a 401, and a broken one still never a 5xx."""
    gateway, session, headers = fuzz
    rng = random.Random(SEED + 1)
    for case in rng.sample(CASES, 40):
        status, content_type, raw = session.request("POST", "/v1/chat/completions", case.body,
                                                    {"Content-Type": "application/json"})
        error = _check_error(status, content_type, raw, case.id)
        assert status in (400, 401), f"{case.id}: {status} {error}"
    _assert_healthy(gateway, session, headers)


JUNK_QUERIES = [
    "limit=abc", "limit=-1", "limit=1e308", "after=&before=", "model=x&model=y", "%ff=%fe", "%00=%00",
    "a=" + "b" * 8000, "&&&===&&", "x[]=1&x[]=2", "a=%", "a=%zz", "stream=true", "%ed%a0%80=1",
    "&".join(f"k{i}=v{i}" for i in range(500)), "data=%7B%7D", "object=list", "a=\u00e9".encode().decode("latin-1"),
]


@pytest.mark.parametrize("query", JUNK_QUERIES, ids=range(len(JUNK_QUERIES)))
def test_models_with_junk_query(fuzz, query: str) -> None:
    gateway, session, headers = fuzz
    path = "/v1/models?" + quote(query, safe="=&%[]")
    status, content_type, raw = session.request("GET", path, None, headers)
    assert status < 500, (status, raw[:300])
    if status == 200:
        listing = json.loads(raw)
        assert listing["object"] == "list" and MODEL in [m["id"] for m in listing["data"]]
    else:
        _check_error(status, content_type, raw, query)


JUNK_MODEL_PATHS = ["%ff", "%00", "%ed%a0%80", "x" * 5000, "..%2F..%2Fetc%2Fpasswd", "%25", "a%2Fb", "%20",
                    quote("\u2603"), "fuzz-model%00", "fuzz-model?model=other", "fuzz-model;x=1"]


@pytest.mark.parametrize("model", JUNK_MODEL_PATHS, ids=range(len(JUNK_MODEL_PATHS)))
def test_model_lookup_with_junk_path(fuzz, model: str) -> None:
    gateway, session, headers = fuzz
    status, content_type, raw = session.request("GET", f"/v1/models/{model}", None, headers)
    assert status < 500, (status, raw[:300])
    if status == 200:
        assert json.loads(raw)["id"] == MODEL
    else:
        error = _check_error(status, content_type, raw, model)
        assert status == 404 and error["code"] in ("model_not_found", "unknown_url"), error


def _raw_exchange(gateway, request: bytes) -> tuple[int, str, bytes]:
    """Send bytes no HTTP client library would write; read the answer to the end."""
    parsed = urlsplit(gateway.http_url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.getheader("Content-Type", ""), response.read()


def _post(headers: dict[str, str], extra: bytes, body: bytes, length: bool = True) -> bytes:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + extra
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def test_fuzz_body_encodings(fuzz) -> None:
    """A body that does not decode as its Content-Encoding says is the client's 400, in JSON."""
    gateway, session, headers = fuzz
    valid = _encode(BASE)
    cases = {
        "gzip-garbage": (b"Content-Encoding: gzip\r\n", b"this is not gzip"),
        "gzip-truncated": (b"Content-Encoding: gzip\r\n", gzip.compress(valid)[:40]),
        "gzip-empty": (b"Content-Encoding: gzip\r\n", b"\x1f\x8b"),
        "deflate-garbage": (b"Content-Encoding: deflate\r\n", b"\x00\x01\x02 nope"),
        "gzip-of-garbage-json": (b"Content-Encoding: gzip\r\n", gzip.compress(b'{"model": [')),
    }
    for name, (extra, body) in cases.items():
        status, content_type, raw = _raw_exchange(gateway, _post(headers, extra, body))
        error = _check_error(status, content_type, raw, name)
        assert status == 400, (name, error)
    # a well-formed compressed or chunked body is fine
    status, _, raw = _raw_exchange(gateway, _post(headers, b"Content-Encoding: gzip\r\n", gzip.compress(valid)))
    assert status == 200, raw
    chunked = b"%x\r\n" % len(valid) + valid + b"\r\n0\r\n\r\n"
    status, _, raw = _raw_exchange(gateway, _post(headers, b"Transfer-Encoding: chunked\r\n", chunked, False))
    assert status == 200, raw
    _assert_healthy(gateway, session, headers)


def test_fuzz_http_framing(fuzz) -> None:
    """Broken HTTP itself is refused by aiohttp's parser before the gateway sees a request;
    the answer is still a 4xx OpenAI error body, never a 5xx, and the server is unhurt."""
    gateway, session, headers = fuzz
    valid = _encode(BASE)
    requests = {
        "chunk-size-junk": _post(headers, b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n", False),
        "content-length-junk": _post(headers, b"Content-Length: abc\r\n", valid, False),
        "content-length-negative": _post(headers, b"Content-Length: -1\r\n", valid, False),
        "two-content-lengths": _post(headers, b"Content-Length: 1\r\n", valid),
        "header-without-colon": _post(headers, b"Bad Header\r\n", valid),
        "header-too-long": _post(headers, b"X-Big: " + b"a" * 100_000 + b"\r\n", valid),
        "nul-in-header": _post(headers, b"X-A: a\x00b\r\n", valid),
        "bad-version": _post(headers, b"", valid).replace(b"HTTP/1.1", b"HTTP/9.9", 1),
        "bad-method": _post(headers, b"", valid).replace(b"POST", b"P@ST", 1),
        "brotli-garbage": _post(headers, b"Content-Encoding: br\r\n", b"junk"),
        "expect-junk": _post(headers, b"Expect: junk\r\n", valid),
    }
    for name, request in requests.items():
        status, content_type, raw = _raw_exchange(gateway, request)
        assert 400 <= status < 500, (name, status, raw[:300])
        assert content_type.startswith("application/json"), (name, content_type, raw[:300])
        error = json.loads(raw)["error"]
        assert isinstance(error["message"], str) and error["type"], (name, error)
        for word in FORBIDDEN:
            assert word not in raw.decode("utf-8", "replace"), (name, raw[:300])
    _assert_healthy(gateway, session, headers)


def _assert_healthy(gateway, session: Session, headers: dict[str, str]) -> None:
    assert gateway.proc.poll() is None, "the gateway died"
    status, _, raw = session.request("POST", "/v1/chat/completions", _encode(BASE), headers)
    assert status == 200, raw
    status, _, raw = session.request("GET", "/v1/models", None, headers)
    assert status == 200 and MODEL in raw.decode(), raw
    fresh = Session(gateway.http_url)
    try:
        body = _encode({"model": MODEL, "messages": [{"role": "user", "content": "still there?"}]})
        status, _, raw = fresh.request("POST", "/v1/chat/completions", body, headers)
        assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"], raw
    finally:
        fresh.conn.close()
