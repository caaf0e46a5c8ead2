"""Malformed requests of every kind st-ai parses, against a real `st-ai serve`:
multipart bodies, Range headers, query strings and the headers st-ai reads over REST,
and negative, out-of-range and extreme values over gRPC. Every answer is either a
valid one or a 4xx OpenAI error (REST) / a non-internal status with st-ai's
ErrorDetail (gRPC) — never a 5xx, never a hang. Range answers are checked against
RFC 9110 and the file's bytes.

Cases come from seeded generators, so a failure reproduces; each names its input.
"""
from __future__ import annotations

import http.client
import json
import math
import random
import re
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import grpc
import httpx2
import pytest
from google.rpc import status_pb2

from server.store.db import open_db
from st_ai.v1 import (chat_pb2, chat_pb2_grpc, errors_pb2, images_pb2, images_pb2_grpc, videos_pb2,
                      videos_pb2_grpc)
from tests.conftest import start_gateway, stop_gateway
from tests.test_multipart import mutate

SEED = 9110
MODEL = "fuzz-video"
UNSERVED = "fuzz-no-such-model"  # mutated bodies name it, so none starts real work
TIMEOUT = 10.0
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FORBIDDEN = ("Traceback", 'File "', "internal_error")

pytestmark = pytest.mark.timeout(240)


@dataclass
class Setup:
    http_url: str
    grpc_target: str
    key: str
    video_id: str
    whole: bytes


def request(setup: Setup, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parsed = urlsplit(setup.http_url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=TIMEOUT)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in {"Authorization": f"Bearer {setup.key}", **(headers or {})}.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    folder = tmp_path_factory.mktemp("fuzz-requests")
    db_path = str(folder / "st-ai.db")
    open_db(db_path).close()
    gateway = start_gateway(db_path, "--video-poll-interval", "0.2",
                            env={"ST_AI_SIMULATOR_VIDEO_SECONDS": "0.3"})
    try:
        gateway.channel("fuzz-sim", "simulator", [MODEL])
        key = gateway.token("fuzzer")
        partial = Setup(gateway.http_url, gateway.grpc_target, key, "", b"")
        body = json.dumps({"model": MODEL, "prompt": "a fuzzed fox", "seconds": "1", "size": "160x96"}).encode()
        status, _, raw = request(partial, "POST", "/v1/videos", body, {"Content-Type": "application/json"})
        assert status == 200, raw
        video_id = json.loads(raw)["id"]
        deadline = time.monotonic() + 60
        while json.loads(request(partial, "GET", f"/v1/videos/{video_id}")[2])["status"] != "completed":
            assert time.monotonic() < deadline, "the video did not complete"
            time.sleep(0.2)
        status, _, whole = request(partial, "GET", f"/v1/videos/{video_id}/content")
        assert status == 200 and len(whole) > 1000
        yield Setup(gateway.http_url, gateway.grpc_target, key, video_id, whole)
        assert gateway.proc.poll() is None, "the gateway died"
    finally:
        stop_gateway(gateway)


def assert_openai_error(status: int, headers: dict[str, str], raw: bytes, what: str) -> dict:
    what = what[:160]
    assert 400 <= status < 500, f"{what}: HTTP {status}: {raw[:300]!r}"
    assert headers.get("content-type", "").startswith("application/json"), f"{what}: {headers}"
    text = raw.decode("utf-8")
    for word in FORBIDDEN:
        assert word not in text, f"{what}: {word!r} in {text[:300]}"
    error = json.loads(text)["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["message"], f"{what}: {error}"
    assert int(headers["content-length"]) == len(raw), what
    return error


def check_all(cases, run) -> None:
    """Run every case; report all failures at once."""
    failures = []
    for case in cases:
        try:
            run(case)
        except AssertionError as failure:
            failures.append(str(failure).split("\n")[0][:300])
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:30])


# -- multipart bodies -------------------------------------------------------------------

BOUNDARY = "st-ai-fuzz-7578"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def form(fields: dict, files: dict | None = None) -> bytes:
    return httpx2.Request("POST", "http://127.0.0.1/", data=fields, files=files,
                          headers={"Content-Type": FORM_TYPE}).read()


def part(headers: str, value: bytes = b"x") -> bytes:
    return f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + value + b"\r\n"


def multipart_cases() -> list[tuple[str, str, bytes]]:
    """(id, Content-Type, body): every class of malformed form, then seeded mutations."""
    valid = form({"model": UNSERVED, "prompt": "a cat", "seconds": "1", "metadata": '{"a": 1}'},
                 {"input_reference": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png")})
    end = f"--{BOUNDARY}--\r\n".encode()
    named = 'Content-Disposition: form-data; name="prompt"'
    cases = [
        ("no-boundary", "multipart/form-data", valid),
        ("empty-boundary", 'multipart/form-data; boundary=""', valid),
        ("wrong-boundary", "multipart/form-data; boundary=nope", valid),
        ("long-boundary", "multipart/form-data; boundary=" + "b" * 200, valid),
        ("empty-body", FORM_TYPE, b""),
        ("no-end", FORM_TYPE, valid[:-len(end)]),
        ("nameless", FORM_TYPE, part("Content-Disposition: form-data") + valid),
        ("name-star-junk", FORM_TYPE, part("Content-Disposition: form-data; name*=utf-8''%ff%fe") + valid),
        ("unterminated-quote", FORM_TYPE, part('Content-Disposition: form-data; name="prompt') + valid),
        ("no-disposition", FORM_TYPE, part("X-Other: 1") + valid),
        ("duplicate", FORM_TYPE, part(named, b"again") + valid),
        ("invalid-utf8", FORM_TYPE, part(named, b"a \xff\xfe b") + end),
        ("bogus-charset", FORM_TYPE, part(named + "\r\nContent-Type: text/plain; charset=bogus") + end),
        ("transform-charset", FORM_TYPE, part(named + "\r\nContent-Type: text/plain; charset=zlib") + end),
        ("base64-cte", FORM_TYPE, part(named + "\r\nContent-Transfer-Encoding: base64", b"!!") + end),
        ("file-for-text", FORM_TYPE, part(named + '; filename="p.txt"') + end),
        ("text-for-file", FORM_TYPE, part('Content-Disposition: form-data; name="input_reference"') + end),
        ("huge-part-header", FORM_TYPE, part(named + "\r\nX-Big: " + "a" * 300_000) + end),
        ("many-part-headers", FORM_TYPE, part(named + "".join(f"\r\nX-{i}: a" for i in range(20_000))) + end),
        ("many-parts", FORM_TYPE, b"".join(part(f'Content-Disposition: form-data; name="k{i}"')
                                           for i in range(5000)) + end),
        ("metadata-not-json", FORM_TYPE, part('Content-Disposition: form-data; name="metadata"', b"{x") + end),
        ("bad-number", FORM_TYPE, part('Content-Disposition: form-data; name="width"', b"1e999") + end),
    ]
    rng = random.Random(SEED)
    tokens = [b"\r\n", b"--", BOUNDARY.encode(), b'"', b";", b":", b"=", b"\xff", b"\x00", b"name=", b"filename=",
              b"charset=", b"*", b"\\"]
    for i in range(120):
        cases.append((f"mutated:{i}", FORM_TYPE, mutate(rng, valid, tokens, 3)))
    return cases


@pytest.mark.parametrize("path", ["/v1/videos", "/v1/images/generations", "/v1/chat/completions"])
def test_fuzz_multipart_bodies_are_4xx_json_errors(setup, path) -> None:
    def run(case):
        name, content_type, body = case
        status, headers, raw = request(setup, "POST", path, body, {"Content-Type": content_type})
        assert_openai_error(status, headers, raw, f"{path} {name}")
    check_all(multipart_cases(), run)


def test_a_valid_form_still_creates_a_video(setup) -> None:
    body = b"".join(part(f'Content-Disposition: form-data; name="{name}"', value.encode()) for name, value in
                    {"model": MODEL, "prompt": "a form fox", "seconds": "1", "size": "160x96"}.items())
    status, _, raw = request(setup, "POST", "/v1/videos", body + f"--{BOUNDARY}--\r\n".encode(),
                             {"Content-Type": FORM_TYPE})
    assert status == 200 and json.loads(raw)["status"] in ("queued", "in_progress", "completed"), raw


# -- JSON bodies and the headers st-ai reads ---------------------------------------------

HEADER_CASES = [
    ("json-bogus-charset", {"Content-Type": "application/json; charset=bogus"}, 400),
    ("json-codec-not-charset", {"Content-Type": "application/json; charset=base64"}, 400),
    ("json-charset-raw-byte", {"Content-Type": "application/json; charset=\u00ff"}, 400),  # sent as byte 0xff
    ("multipart-charset-raw-byte", {"Content-Type": f"{FORM_TYPE}; charset=\u00ff"}, 400),
    ("json-latin1-invalid", {"Content-Type": "application/json; charset=utf-8"}, None),
    ("content-type-junk", {"Content-Type": "\u00e9;;;=;\\"}, None),
    ("content-type-empty", {"Content-Type": ""}, None),
    ("multipart-with-json", {"Content-Type": "multipart/form-data"}, 400),
    ("authorization-latin1", {"Authorization": "Bearer \u00e9\u00ff"}, 401),
    ("authorization-empty", {"Authorization": ""}, 401),
    ("authorization-huge", {"Authorization": "Bearer " + "k" * 7000}, 401),
    ("authorization-scheme-only", {"Authorization": "Bearer"}, 401),
    ("authorization-basic", {"Authorization": "Basic Zm9vOmJhcg=="}, 401),
    ("range-on-a-post", {"Range": "bytes=-" + "9" * 4000}, None),
    ("if-range-junk", {"If-Range": "\u00e9" * 100}, None),
    ("content-encoding-junk", {"Content-Encoding": "x-\u00e9"}, None),
]


@pytest.mark.parametrize("name, headers, expected", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_junk_in_a_header_st_ai_reads_is_never_a_5xx(setup, name, headers, expected) -> None:
    body = json.dumps({"model": UNSERVED, "prompt": "x"}).encode()
    if name == "json-latin1-invalid":
        body = body.replace(b'"x"', b'"caf\xe9"')
    status, answer_headers, raw = request(setup, "POST", "/v1/videos", body,
                                          {"Content-Type": "application/json", **headers})
    error = assert_openai_error(status, answer_headers, raw, name)
    if expected is not None:
        assert status == expected, (name, error)


def test_a_json_body_in_a_declared_charset_is_read_as_it_says(setup) -> None:
    body = json.dumps({"model": UNSERVED, "prompt": "caf\u00e9"}, ensure_ascii=False).encode("utf-16")
    status, headers, raw = request(setup, "POST", "/v1/videos", body,
                                   {"Content-Type": "application/json; charset=utf-16"})
    error = assert_openai_error(status, headers, raw, "utf-16")
    assert error["code"] == "model_not_found", error  # parsed: it got as far as the model


# -- Range headers (RFC 9110) -----------------------------------------------------------

SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE | re.ASCII)


def range_headers() -> list[str]:
    rng = random.Random(SEED + 1)
    # thousands of digits, yet short enough for aiohttp's 8 KiB header line (whose refusal is not ours)
    numbers = ["0", "1", "9", "99", "1000", "00012", "9" * 20, "9" * 3000, "18446744073709551616", ""]

    def offset() -> str:
        return rng.choice(numbers + [str(rng.randrange(0, 20_000))] * 4)
    headers = []
    for _ in range(260):
        kind = rng.random()
        if kind < 0.55:
            headers.append(f"{rng.choice(['bytes', 'Bytes', 'BYTES'])}={offset()}-{offset()}")
        elif kind < 0.7:
            headers.append("bytes=" + ",".join(f"{offset()}-{offset()}" for _ in range(rng.randint(2, 4))))
        elif kind < 0.8:
            headers.append(f"{rng.choice(['items', 'pages', 'bytes ', 'byte', ''])}={offset()}-{offset()}")
        else:
            junk = rng.choice(["-", "--", "=", ",", " ", "a", "\u00e9", "+", "0x", ".", "\t", "*"])
            text = f"bytes={offset()}-{offset()}"
            at = rng.randrange(len(text) + 1)
            headers.append(text[:at] + junk + text[at:])
    return [header for header in headers if len(header) < 8000]


def test_fuzz_range_headers_follow_rfc_9110(setup) -> None:
    whole, total = setup.whole, len(setup.whole)

    def run(header: str) -> None:
        status, headers, body = request(setup, "GET", f"/v1/videos/{setup.video_id}/content", None,
                                        {"Range": header})
        what = f"Range: {header[:60]!r}"
        single = SINGLE_RANGE.fullmatch(header.strip()) if header.strip() else None
        if status == 416:
            assert_openai_error(status, headers, body, what)
            assert headers.get("content-range") == f"bytes */{total}", what
            assert single, f"{what}: refused, but is not one byte range"
            return
        assert int(headers["content-length"]) == len(body), what
        if status == 200:
            assert body == whole and "content-range" not in headers, what
            assert not (single and single.group(1) + single.group(2)), f"{what}: a valid range was ignored"
            return
        assert status == 206, f"{what}: HTTP {status}"
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers.get("content-range", ""))
        assert match, f"{what}: {headers.get('content-range')}"
        first, last, size = map(int, match.groups())
        assert size == total and 0 <= first <= last < total, what
        assert body == whole[first:last + 1], what
        assert single, f"{what}: answered as a range"
        start, end = single.groups()
        if start:
            assert first == int(start) and last == min(int(end), total - 1) if end else last == total - 1, what
        else:
            assert last == total - 1 and first == max(0, total - int(end)), what
    check_all(range_headers(), run)


def test_a_suffix_range_a_416_and_an_if_range_as_rfc_9110_says(setup) -> None:
    whole, total = setup.whole, len(setup.whole)
    path = f"/v1/videos/{setup.video_id}/content"
    status, headers, body = request(setup, "GET", path, None, {"Range": "bytes=-10"})
    assert (status, body, headers["content-range"]) == (206, whole[-10:], f"bytes {total - 10}-{total - 1}/{total}")
    status, headers, body = request(setup, "GET", path, None, {"Range": "bytes=-0"})
    assert status == 416 and headers["content-range"] == f"bytes */{total}", body
    status, headers, body = request(setup, "GET", path, None, {"Range": "bytes=0-9", "If-Range": '"v1"'})
    assert status == 200 and body == whole  # no validator of st-ai's can match


# -- query strings ----------------------------------------------------------------------

QUERY_VALUES = ["0", "5", "-9", "-1", "1e3", "0x10", "\u0661", " 5", "5 ", "+5", "", "1_0", "nan", "inf",
                str(INT64_MAX), str(INT64_MAX + 1), str(INT64_MIN), "9" * 40, "9" * 2500, "%ff", "%00"]


def content_queries() -> list[str]:
    rng = random.Random(SEED + 2)
    names = ["range_start", "range_end", "suffix_length", "variant", "video_id", "unknown"]
    queries = [f"{name}={quote(v, safe='%')}" for name in ("range_start", "range_end", "suffix_length")
               for v in QUERY_VALUES]
    for _ in range(150):
        pairs = [(rng.choice(names), rng.choice(QUERY_VALUES + ["thumbnail", "video"]))
                 for _ in range(rng.randint(1, 3))]
        queries.append("&".join(f"{n}={quote(v, safe='%')}" for n, v in pairs))
    return queries


def test_fuzz_content_query_strings_are_ranges_or_4xx(setup) -> None:
    whole, total = setup.whole, len(setup.whole)

    def run(query: str) -> None:
        status, headers, body = request(setup, "GET", f"/v1/videos/{setup.video_id}/content?{query}")
        if status >= 400:
            assert_openai_error(status, headers, body, query)
            if status == 416:
                assert headers.get("content-range") == f"bytes */{total}", query
            return
        assert int(headers["content-length"]) == len(body), query
        if "variant=thumbnail" in query:
            return
        if status == 206:
            first, last, size = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers["content-range"]).groups())
            assert size == total and body == whole[first:last + 1], query
        else:
            assert status == 200 and body == whole, (query, status)
    check_all(content_queries(), run)


def test_range_end_alone_is_206_from_the_first_byte_and_a_negative_one_is_400(setup) -> None:
    path = f"/v1/videos/{setup.video_id}/content"
    status, headers, body = request(setup, "GET", path + "?range_end=5")
    assert (status, body, headers["content-range"]) == (206, setup.whole[:6], f"bytes 0-5/{len(setup.whole)}")
    status, headers, body = request(setup, "GET", path + "?range_end=-9")
    assert status == 400 and assert_openai_error(status, headers, body, "-9")["param"] == "range_end"


@pytest.mark.parametrize("path", ["/v1/videos", "/v1/models"])
def test_fuzz_list_query_strings_are_answers_or_4xx(setup, path) -> None:
    rng = random.Random(SEED + 3)
    names = ["limit", "after", "order", "before", "model"]
    queries = [f"{n}={quote(v, safe='%')}" for n in names for v in QUERY_VALUES]
    queries += ["&".join(f"{rng.choice(names)}={quote(rng.choice(QUERY_VALUES), safe='%')}" for _ in range(3))
                for _ in range(40)]

    def run(query: str) -> None:
        status, headers, body = request(setup, "GET", f"{path}?{query}")
        if status == 200:
            assert json.loads(body)["object"] == "list", query
        else:
            assert_openai_error(status, headers, body, query)
    check_all(queries, run)


# -- gRPC -------------------------------------------------------------------------------

NOT_INTERNAL = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED,
                grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}


@pytest.fixture(scope="module")
def channel(setup):
    with grpc.insecure_channel(setup.grpc_target) as ch:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        yield ch


def detail_of(error: grpc.RpcError) -> errors_pb2.ErrorDetail:
    trailers = dict(error.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    detail = errors_pb2.ErrorDetail()
    assert status.details and status.details[0].Unpack(detail), status
    return detail


def assert_client_error(error: grpc.RpcError, what: str) -> errors_pb2.ErrorDetail:
    assert error.code() in NOT_INTERNAL, f"{what}: {error.code()} {error.details()}"
    detail = detail_of(error)
    assert 400 <= detail.http_status < 500 and detail.message, f"{what}: {detail}"
    return detail


RANGE_VALUES = [None, 0, 1, 5, -1, -9, INT64_MIN, INT64_MAX, 10**12]


def test_grpc_get_video_content_with_negative_extreme_and_suffix_ranges(setup, channel) -> None:
    stub = videos_pb2_grpc.VideosStub(channel)
    whole, total = setup.whole, len(setup.whole)
    metadata = (("authorization", f"Bearer {setup.key}"),)
    rng = random.Random(SEED + 4)
    cases = [(s, e, x) for s in RANGE_VALUES for e in RANGE_VALUES for x in (None, 0, 7, -1, INT64_MAX)]
    cases = rng.sample(cases, 120) + [(None, None, 10), (None, 5, None), (-1, None, None), (5, 3, None),
                                      (total, None, None)]

    def run(case) -> None:
        start, end, suffix = case
        fields = {k: v for k, v in (("range_start", start), ("range_end", end), ("suffix_length", suffix))
                  if v is not None}
        call = stub.GetVideoContent(videos_pb2.GetVideoContentRequest(video_id=setup.video_id, **fields),
                                    metadata=metadata, timeout=TIMEOUT)
        try:
            data = b"".join(m.data for m in call)
        except grpc.RpcError as error:
            detail = assert_client_error(error, str(fields))
            if detail.http_status == 416:
                assert error.code() is grpc.StatusCode.OUT_OF_RANGE
                assert dict(call.initial_metadata())["st-ai-content-range"] == f"bytes */{total}", fields
            elif any(v < 0 for v in fields.values()):
                assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, fields
            return
        sent = dict(call.initial_metadata())
        assert int(sent["st-ai-content-length"]) == len(data), fields
        if not fields:
            assert data == whole
            return
        first, last, size = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", sent["st-ai-content-range"]).groups())
        assert size == total and data == whole[first:last + 1], fields
        assert all(v >= 0 for v in fields.values()), f"{fields}: a negative value was accepted"
    check_all(cases, run)


# One behaviour for offsets past what int64 holds, whichever way they come: a `Range`
# header, query parameters, or gRPC's fields (which hold int64 at most). A suffix longer
# than the file is the whole file as a 206 (RFC 9110 14.1.2), a first byte past the end
# is 416, a last byte past the end is the rest of the file.
HUGE = [INT64_MAX, INT64_MAX + 1, 2**64 - 1, 2**64, 10**40, int("9" * 2500)]


def _rest(setup, query: str = "", headers: dict | None = None) -> tuple[int, str | None, bytes]:
    status, got, body = request(setup, "GET", f"/v1/videos/{setup.video_id}/content{query}", None, headers)
    return status, got.get("content-range"), body


def _grpc(setup, channel, **fields) -> tuple[int, str | None, bytes]:
    stub = videos_pb2_grpc.VideosStub(channel)
    call = stub.GetVideoContent(videos_pb2.GetVideoContentRequest(video_id=setup.video_id, **fields),
                                metadata=(("authorization", f"Bearer {setup.key}"),), timeout=TIMEOUT)
    try:
        data = b"".join(m.data for m in call)
    except grpc.RpcError as error:
        return detail_of(error).http_status, dict(call.initial_metadata()).get("st-ai-content-range"), b""
    return 206, dict(call.initial_metadata())["st-ai-content-range"], data


def test_offsets_past_int64_answer_alike_on_the_range_header_the_query_and_grpc(setup, channel) -> None:
    whole, total = setup.whole, len(setup.whole)
    everything = (206, f"bytes 0-{total - 1}/{total}", whole)
    unsatisfiable = (416, f"bytes */{total}", None)
    for n in [total, total + 1, *HUGE]:
        assert _rest(setup, headers={"Range": f"bytes=-{n}"}) == everything, n
        assert _rest(setup, f"?suffix_length={n}") == everything, n
        assert _rest(setup, headers={"Range": f"bytes=0-{n}"}) == everything, n
        assert _rest(setup, f"?range_start=0&range_end={n}") == everything, n
        assert _rest(setup, f"?range_end={n}") == everything, n
        status, content_range, _ = _rest(setup, headers={"Range": f"bytes={n}-"})
        assert (status, content_range, None) == unsatisfiable, n
        status, content_range, _ = _rest(setup, f"?range_start={n}")
        assert (status, content_range, None) == unsatisfiable, n
        if n <= INT64_MAX:  # what gRPC's int64 fields can carry
            assert _grpc(setup, channel, suffix_length=n) == everything, n
            assert _grpc(setup, channel, range_start=0, range_end=n) == everything, n
            assert _grpc(setup, channel, range_start=n)[:2] == unsatisfiable[:2], n


EXTREMES = {"int": [-1, INT64_MIN, INT64_MAX, 2**31 - 1, -(2**31)],
            "float": [-1.0, math.nan, math.inf, -math.inf, 1e308, 5e-324]}


def extreme_requests(request_class, base: dict) -> list[tuple[str, object]]:
    """`base` with each numeric field (top level) set to each extreme value of its kind."""
    out = []
    for field in request_class.DESCRIPTOR.fields:
        if field.message_type is not None or field.is_repeated:
            continue
        kind = {field.TYPE_DOUBLE: "float", field.TYPE_FLOAT: "float"}.get(field.type)
        if kind is None and field.cpp_type in (field.CPPTYPE_INT32, field.CPPTYPE_INT64):
            kind = "int"
        for value in EXTREMES.get(kind, []):
            if field.cpp_type == field.CPPTYPE_INT32 and not -(2**31) <= value < 2**31:
                continue
            out.append((f"{request_class.DESCRIPTOR.name}.{field.name}={value}",
                        request_class(**base, **{field.name: value})))
    return out


def test_grpc_extreme_numbers_in_every_request_are_never_internal(setup, channel) -> None:
    metadata = (("authorization", f"Bearer {setup.key}"),)
    videos, images, chat = (videos_pb2_grpc.VideosStub(channel), images_pb2_grpc.ImagesStub(channel),
                            chat_pb2_grpc.ChatStub(channel))
    cases = [(what, videos.CreateVideo, m) for what, m in
             extreme_requests(videos_pb2.CreateVideoRequest, {"model": UNSERVED, "prompt": "x"})]
    cases += [(what, videos.ListVideos, m) for what, m in extreme_requests(videos_pb2.ListVideosRequest, {})]
    cases += [(what, images.CreateImage, m) for what, m in
              extreme_requests(images_pb2.CreateImageRequest, {"model": UNSERVED, "prompt": "x"})]
    chat_base = {"model": UNSERVED, "messages": [chat_pb2.ChatMessage(role="user", text="hi")]}
    cases += [(what, chat.CreateChatCompletion, m) for what, m in
              extreme_requests(chat_pb2.ChatCompletionRequest, chat_base)]
    assert len(cases) > 20, cases

    def run(case) -> None:
        what, method, message = case
        try:
            method(message, metadata=metadata, timeout=TIMEOUT)
        except grpc.RpcError as error:
            assert_client_error(error, what)
    check_all(cases, run)
