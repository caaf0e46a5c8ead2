"""Requests answered before any handler runs (HTTP the parser refuses, an expectation
st-ai does not meet) and bodies a client breaks: each answer still carries the
X-Request-Id its access line names, and no client fault is logged as a server error
with a traceback."""
from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlsplit

import pytest

from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway
from tests.test_access_log import LogTail

pytestmark = pytest.mark.timeout(90)

MODEL = "refused-sim"
BODY = b'{"model": "refused-sim", "messages": [{"role": "user", "content": "Hi"}]}'


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("refused") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, env={"ST_AI_LOG_LEVEL": "DEBUG"})
    tail = LogTail(gw.proc)
    gw.channel("sim", "simulator", [MODEL])
    yield gw, tail, gw.token("refused")
    stop_gateway(gw)


def _exchange(gw, raw: bytes, timeout: float = 5.0) -> bytes:
    url = urlsplit(gw.http_url)
    out = b""
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(raw)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
    return out


def _post(key: str, extra: bytes, body: bytes = BODY, method: bytes = b"POST",
          target: bytes = b"/v1/chat/completions", length: bool = True) -> bytes:
    return (method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n".encode() + extra
            + (f"Content-Length: {len(body)}\r\n".encode() if length else b"") + b"\r\n" + body)


REFUSED = {
    "unknown method": dict(method=b"FOO"),
    "lower-case method": dict(method=b"post"),
    "non-ASCII path": dict(target=b"/v1/models/\xc3\xa9"),
    "asterisk target": dict(target=b"*"),
    "two content lengths": dict(extra=b"Content-Length: 3\r\n"),
    "negative chunk size": dict(extra=b"Transfer-Encoding: chunked\r\n", body=b"-5\r\nab\r\n0\r\n\r\n", length=False),
    "header with a space before the colon": dict(extra=b"X-Odd : 1\r\n"),
    "too many headers": dict(extra=b"X-A: b\r\n" * 200),
    "query too long": dict(target=b"/v1/models?" + b"a=" * 5000),
    "unmet expectation": dict(extra=b"Expect: gold\r\n"),
    "unknown content encoding": dict(extra=b"Content-Encoding: zstd\r\n"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_request_answered_before_any_handler_carries_the_request_id_of_its_access_line(served, case):
    gw, tail, key = served
    answer = _exchange(gw, _post(key, **{"extra": b"", **REFUSED[case]}))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] 4\d\d ", head), (case, answer[:300])
    assert b'"error"' in body, (case, answer[:300])
    found = re.search(rb"\r\nX-Request-Id: ([^\r\n]+)", head, re.IGNORECASE)
    assert found, (case, head)
    lines = tail.for_request(found.group(1).decode())
    assert len(lines) == 1 and lines[0]["status"] == head.split()[1].decode(), (case, lines)


def test_a_header_that_never_finishes_gets_a_408_with_a_request_id(tmp_path):
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--client-header-timeout", "0.5")
    try:
        answer = _exchange(gw, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")
    finally:
        stop_gateway(gw)
    assert answer.startswith(b"HTTP/1.1 408 ") and re.search(rb"\r\nX-Request-Id: [0-9a-f]{32}\r\n", answer), answer


def _no_server_error_logged(tail: LogTail, since: int, what: str) -> None:
    time.sleep(0.5)  # aiohttp meets a broken body again after the answer: give it the time
    bad = [line for line in tail.lines[since:] if "Traceback" in line or " ERROR " in line]
    assert not bad, (what, bad[:5])


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
def test_a_body_that_is_not_its_content_encoding_is_a_400_and_no_logged_traceback(served, encoding):
    gw, tail, key = served
    since = len(tail.lines)
    answer = _exchange(gw, _post(key, b"Content-Encoding: " + encoding + b"\r\n", b"not compressed at all"))
    assert answer.startswith(b"HTTP/1.1 400 ") and b'"invalid_body"' in answer, answer[:300]
    _no_server_error_logged(tail, since, encoding)


def test_a_client_that_leaves_before_its_100_continue_is_no_server_error(served):
    gw, tail, key = served
    since = len(tail.lines)
    url = urlsplit(gw.http_url)
    for _ in range(5):
        with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
            sock.sendall(_post(key, b"Expect: 100-continue\r\n", b""))
            sock.shutdown(socket.SHUT_WR)
    _no_server_error_logged(tail, since, "left before 100 Continue")
    assert gw.proc.poll() is None
