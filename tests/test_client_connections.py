"""The REST bridge's connections as a careless or hostile client uses them: broken HTTP is
answered with an OpenAI error body, slow or stalled clients are disconnected within the
configured timeouts, idle keep-alive connections are closed, and other clients are served
all the while. Everything is raw sockets on 127.0.0.1, each bounded by a socket timeout."""
from __future__ import annotations

import json
import select
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway

MODEL = "conn-sim"
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 1.5
SLACK = 2.0  # scheduling on a busy machine; the defaults are tens of seconds


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("conn") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--client-header-timeout", str(HEADER_TIMEOUT),
                       "--client-body-timeout", str(BODY_TIMEOUT),
                       "--keepalive-timeout", str(KEEPALIVE_TIMEOUT))
    gw.channel("conn-sim", "simulator", [MODEL])
    gw.key = gw.token("conn-client")
    yield gw
    stop_gateway(gw)


def _connect(gateway, timeout: float = 10) -> socket.socket:
    parsed = urlsplit(gateway.http_url)
    return socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _split(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _openai_error(raw: bytes) -> tuple[int, dict]:
    status, headers, body = _split(raw)
    assert headers.get("content-type", "").startswith("application/json"), raw[:300]
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"], error
    return status, error


def _chat(gateway, text: str = "hello") -> bytes:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": text}]}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + gateway.key.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def _served(gateway) -> None:
    """A well-behaved client on its own connection gets its answer, promptly."""
    with _connect(gateway, timeout=5) as sock:
        sock.sendall(_chat(gateway).replace(b"Host: t\r\n", b"Host: t\r\nConnection: close\r\n"))
        status, _, body = _split(_read_until_closed(sock))
    assert status == 200 and json.loads(body)["choices"][0]["message"]["content"], body[:300]


POST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
BROKEN_HTTP = {
    # request line
    "bad-method": (b"P@ST /v1/models HTTP/1.1\r\nHost: t\r\n\r\n", {400}),
    "bad-version": (b"GET /v1/models HTTP/9.9\r\nHost: t\r\n\r\n", {400, 505}),
    "not-http": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, {400}),
    "target-too-long": (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", {400, 414, 431}),
    # headers
    "header-too-long": (POST + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n", {431}),
    "too-many-headers": (POST + b"".join(b"X-%d: a\r\n" % i for i in range(300)) + b"\r\n", {431}),
    "header-without-colon": (POST + b"Bad Header\r\n\r\n", {400}),
    "nul-in-header": (POST + b"X-A: a\x00b\r\n\r\n", {400}),
    "space-before-colon": (POST + b"Content-Length : 2\r\n\r\n{}", {400}),
    # framing of the body
    "content-length-junk": (POST + b"Content-Length: abc\r\n\r\n{}", {400}),
    "content-length-negative": (POST + b"Content-Length: -1\r\n\r\n{}", {400}),
    "content-length-twice": (POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", {400}),
    "chunk-size-junk": (POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", {400}),
    "chunk-size-huge": (POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 40 + b"\r\nabc\r\n", {400, 413}),
    "chunked-and-length": (POST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", {400}),
    "unknown-transfer-encoding": (POST + b"Transfer-Encoding: rot13\r\n\r\nabc", {400, 501}),
}


@pytest.mark.parametrize("name", sorted(BROKEN_HTTP))
def test_broken_http_is_answered_with_an_openai_error(gateway, name: str) -> None:
    request, statuses = BROKEN_HTTP[name]
    with _connect(gateway) as sock:
        sock.sendall(request)
        raw = _read_until_closed(sock)
    status, error = _openai_error(raw)
    assert status in statuses, (name, status, error)
    # the parser's own text quotes the client's bytes: none of it is echoed back
    assert "aaaa" not in error["message"] and "\\x" not in error["message"], error


def test_many_broken_requests_leave_the_gateway_serving(gateway) -> None:
    """Many broken requests in a row leave the gateway serving normally."""
    for request, _ in list(BROKEN_HTTP.values()) * 3:
        with _connect(gateway) as sock:
            sock.sendall(request)
            _read_until_closed(sock)
    _served(gateway)


def test_trickled_header_is_disconnected_within_the_header_timeout_while_others_are_served(gateway) -> None:
    """The header timeout bounds the whole header, however steadily its bytes trickle in."""
    request = _chat(gateway)
    outcome: dict[str, object] = {}

    def trickle() -> None:
        with _connect(gateway) as sock:
            started = time.monotonic()
            for byte in request[:200]:
                sock.sendall(bytes([byte]))
                # stop writing once the gateway answers: bytes sent after it closed
                # would be reset and could take its answer with them
                if select.select([sock], [], [], 0.1)[0]:
                    break
            outcome["raw"] = _read_until_closed(sock)
            outcome["after"] = time.monotonic() - started

    slow = threading.Thread(target=trickle)
    slow.start()
    _served(gateway)  # while the slow client holds its connection
    slow.join(HEADER_TIMEOUT + 200 * 0.1 + SLACK)
    assert not slow.is_alive()
    assert outcome["after"] < HEADER_TIMEOUT + SLACK, outcome
    status, error = _openai_error(outcome["raw"])
    assert status == 408 and error["code"] == "request_timeout", error


def test_stalled_json_body_gets_408_and_the_connection_closes_while_others_are_served(gateway) -> None:
    request = _chat(gateway, "x" * 1000)
    with _connect(gateway) as sock:
        sock.sendall(request[:-500])  # the header and half the body, then nothing
        started = time.monotonic()
        _served(gateway)
        raw = _read_until_closed(sock)
        waited = time.monotonic() - started
    assert BODY_TIMEOUT * 0.8 <= waited < BODY_TIMEOUT + SLACK, waited
    status, error = _openai_error(raw)
    assert status == 408 and error["code"] == "request_timeout", error


def test_stalled_multipart_body_gets_408(gateway) -> None:
    boundary = b"st-ai-test-boundary"
    part = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n"
            + b"a cat " * 200 + b"\r\n--" + boundary + b"--\r\n")
    head = (b"POST /v1/videos HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + gateway.key.encode()
            + b"\r\nContent-Type: multipart/form-data; boundary=" + boundary
            + b"\r\nContent-Length: %d\r\n\r\n" % len(part))
    with _connect(gateway) as sock:
        sock.sendall(head + part[:300])
        started = time.monotonic()
        raw = _read_until_closed(sock)
        waited = time.monotonic() - started
    assert waited < BODY_TIMEOUT + SLACK, waited
    status, error = _openai_error(raw)
    assert status == 408 and error["code"] == "request_timeout", error


def test_a_stalled_body_the_gateway_did_not_need_is_cut_off_after_its_answer(gateway) -> None:
    """Refused before its body is read (an unknown URL), then stalled: the 404 is answered
    and the connection closed within the body timeout, with no error of the gateway's own."""
    request = _chat(gateway, "z" * 1000).replace(b"/v1/chat/completions", b"/v1/no-such-thing")
    with _connect(gateway) as sock:
        sock.sendall(request[:-500])
        started = time.monotonic()
        raw = _read_until_closed(sock)
        waited = time.monotonic() - started
    assert waited < BODY_TIMEOUT + SLACK, waited
    status, error = _openai_error(raw)
    assert status == 404, error
    _served(gateway)


def test_a_body_whose_reads_are_closer_than_the_body_timeout_is_served(gateway) -> None:
    """The body timeout is between two reads (nginx's meaning), not for the whole body."""
    request = _chat(gateway, "y" * 300)
    pieces = [request[:-300], request[-300:-150], request[-150:]]
    with _connect(gateway) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(BODY_TIMEOUT * 0.6)  # 1.2 body timeouts in all
        status, _, _ = _split(sock.recv(65536))
    assert status == 200


def test_idle_keepalive_connection_is_closed_after_the_keepalive_timeout(gateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_chat(gateway))
        status, headers, _ = _split(sock.recv(65536))
        assert status == 200 and headers.get("connection", "").lower() != "close"
        idle_from = time.monotonic()
        assert _read_until_closed(sock) == b""  # closed without a word
        idle = time.monotonic() - idle_from
    assert KEEPALIVE_TIMEOUT * 0.8 <= idle < KEEPALIVE_TIMEOUT + SLACK, idle


def test_a_connection_that_never_sends_is_closed_within_the_header_timeout(gateway) -> None:
    with _connect(gateway) as sock:
        started = time.monotonic()
        assert _read_until_closed(sock) == b""
        waited = time.monotonic() - started
    assert waited < HEADER_TIMEOUT + SLACK, waited


@pytest.mark.parametrize("command", ["serve", "bridge"])
def test_timeout_flags_take_seconds_above_zero_with_nginx_defaults(command: str, capsys) -> None:
    from server.cli import build_parser

    required = ["--grpc-target", "127.0.0.1:1"] if command == "bridge" else []
    args = build_parser().parse_args([command, *required])
    assert (args.client_header_timeout, args.client_body_timeout, args.keepalive_timeout) == (60, 60, 75)
    args = build_parser().parse_args([command, *required, "--client-header-timeout", "2.5",
                                      "--client-body-timeout", "7", "--keepalive-timeout", "0.5"])
    assert (args.client_header_timeout, args.client_body_timeout, args.keepalive_timeout) == (2.5, 7, 0.5)
    for flag in ("--client-header-timeout", "--client-body-timeout", "--keepalive-timeout"):
        for bad in ("0", "-1", "soon", "inf", "nan"):
            with pytest.raises(SystemExit):
                build_parser().parse_args([command, *required, flag, bad])
            assert "number of seconds" in capsys.readouterr().err


def test_expect_100_continue_is_met_and_any_other_expectation_is_a_417_openai_error(gateway) -> None:
    request = _chat(gateway).replace(b"Host: t\r\n", b"Host: t\r\nConnection: close\r\nExpect: 100-continue\r\n")
    head, _, body = request.partition(b"\r\n\r\n")
    with _connect(gateway, timeout=5) as sock:
        sock.sendall(head + b"\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        status, _, answer = _split(_read_until_closed(sock))
    assert status == 200 and json.loads(answer)["choices"], answer[:300]

    with _connect(gateway, timeout=5) as sock:
        sock.sendall(_chat(gateway).replace(b"Host: t\r\n", b"Host: t\r\nConnection: close\r\nExpect: junk\r\n"))
        status, error = _openai_error(_read_until_closed(sock))
    assert status == 417 and error["code"] == "expectation_failed"
    _served(gateway)
