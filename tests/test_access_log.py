"""Operators see every request: one access line each (REST and gRPC, text and JSON),
an x-request-id on every answer, and /healthz and /readyz on the REST port."""
from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

import grpc
import pytest

from server.store.db import open_db
from st_ai.v1 import chat_pb2, chat_pb2_grpc, models_pb2, models_pb2_grpc
from tests.conftest import ROOT, start_gateway, stop_gateway
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.timeout(90)

HI = [{"role": "user", "content": "Hi"}]
FIELDS = ("request_id", "status", "error_code", "token", "model", "channel", "stream", "latency_ms",
          "upstream_ms", "bytes_in", "bytes_out")
_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


class LogTail:
    """Everything a process writes, read on a thread so its pipe never fills."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def access(self, json_lines: bool = False) -> list[dict]:
        out = []
        for line in list(self.lines):
            if json_lines:
                if line.startswith("{") and '"logger":"st_ai.access"' in line:
                    out.append(json.loads(line))
            elif " st_ai.access: " in line:
                out.append({k: json.loads(v) if v.startswith('"') else v
                            for k, v in _PAIR.findall(line.split(" st_ai.access: ", 1)[1])})
        return out

    def for_request(self, request_id: str, json_lines: bool = False, timeout: float = 5.0) -> list[dict]:
        """The access lines of one request, once at least one is written (and a moment
        more, so that a second line would be seen too)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [a for a in self.access(json_lines) if a["request_id"] == request_id]
            if found:
                time.sleep(0.3)
                return [a for a in self.access(json_lines) if a["request_id"] == request_id]
            time.sleep(0.02)
        return []


@pytest.fixture(scope="module")
def upstream():
    fake = FakeOpenAI(f"sk-upstream-{uuid.uuid4().hex}").start()
    yield fake
    fake.stop()


def _serve(tmp_path_factory, upstream: FakeOpenAI, *extra: str):
    db_path = str(tmp_path_factory.mktemp("access") / "st-ai.db")
    open_db(db_path).close()
    # one channel serves every test here, some of which make it fail on purpose: no cooldown
    gw = start_gateway(db_path, "--cooldown-failures", "1000", *extra, env={"ST_AI_LOG_LEVEL": "INFO"})
    tail = LogTail(gw.proc)
    gw.channel("ch-fake", "openai", ["gpt-logged"], base_url=upstream.base_url, key=upstream.api_key)
    return gw, tail, gw.token("alice")


@pytest.fixture(scope="module")
def served(tmp_path_factory, upstream):
    gw, tail, key = _serve(tmp_path_factory, upstream)
    yield gw, tail, key
    stop_gateway(gw)


@pytest.fixture(scope="module")
def media_channel(served):
    gw, _, _ = served
    gw.channel("sim-media", "simulator", ["img-logged", "video-logged"])


@pytest.fixture(scope="module")
def served_json(tmp_path_factory, upstream):
    gw, tail, key = _serve(tmp_path_factory, upstream, "--log-format", "json")
    yield gw, tail, key
    stop_gateway(gw)


def request(gw, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 10) -> tuple[int, dict, bytes]:
    url = urlsplit(gw.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def chat(gw, key: str, rid: str | None = None, **body) -> tuple[int, dict, bytes]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if rid:
        headers["X-Request-Id"] = rid
    return request(gw, "POST", "/v1/chat/completions",
                   json.dumps({"model": "gpt-logged", "messages": HI, **body}).encode(), headers)


def new_id() -> str:
    return f"test-{uuid.uuid4().hex}"


# -- health ------------------------------------------------------------------------------

def test_healthz_answers_without_a_token_outside_v1(served):
    gw, _, _ = served
    status, headers, body = request(gw, "GET", "/healthz")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"status": "ok"}


def test_readyz_is_ready_when_grpc_and_the_database_answer(served):
    gw, _, _ = served
    status, _, body = request(gw, "GET", "/readyz")
    assert status == 200
    assert json.loads(body)["status"] == "ok"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_readyz_is_503_when_the_bridges_grpc_server_does_not_answer():
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "bridge", "--grpc-target", f"127.0.0.1:{_closed_port()}",
         "--host", "127.0.0.1", "--http-port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "ST_AI_LOG_LEVEL": "INFO"})
    try:
        port = None
        for line in proc.stdout:
            if match := re.search(r"bridge ready: http://[\d.]+:(\d+)/v1", line):
                port = int(match.group(1))
                break
        assert port, "the bridge did not start"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/readyz")
        response = conn.getresponse()
        error = json.loads(response.read())["error"]
        assert response.status == 503
        assert error["code"] == "not_ready" and error["type"] == "service_unavailable_error"
        conn.request("GET", "/healthz")  # alive all the same
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)


# -- x-request-id ------------------------------------------------------------------------

def test_a_request_without_an_id_gets_a_new_one(served):
    gw, _, key = served
    _, first, _ = chat(gw, key)
    _, second, _ = chat(gw, key)
    assert re.fullmatch(r"[0-9a-f]{32}", first["x-request-id"])
    assert first["x-request-id"] != second["x-request-id"]


def test_a_clients_own_request_id_is_kept_on_answers_streams_and_errors(served):
    gw, _, key = served
    for rid, call in [
        ("req-A1.b:c/d+e=f@g_h", lambda rid: chat(gw, key, rid)),
        (new_id(), lambda rid: chat(gw, key, rid, stream=True)),
        (new_id(), lambda rid: chat(gw, "sk-wrong", rid)),
        (new_id(), lambda rid: request(gw, "GET", "/nowhere", headers={"X-Request-Id": rid})),
        (new_id(), lambda rid: request(gw, "GET", "/healthz", headers={"X-Request-Id": rid})),
    ]:
        _, headers, _ = call(rid)
        assert headers["x-request-id"] == rid


@pytest.mark.parametrize("bad", ["has space", "x" * 129, 'quo"te', "semi;colon", "<script>", "tab\there", ""])
def test_an_invalid_client_request_id_is_replaced(served, bad):
    gw, _, key = served
    _, headers, _ = chat(gw, key, None) if not bad else request(
        gw, "GET", "/v1/models", headers={"Authorization": f"Bearer {key}", "X-Request-Id": bad})
    assert headers["x-request-id"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])


# -- the access line over REST ------------------------------------------------------------

def test_a_chat_request_gets_one_line_naming_token_model_channel_and_times(served, upstream):
    gw, tail, key = served
    rid = new_id()
    status, _, body = chat(gw, key, rid)
    assert status == 200, body
    [line] = tail.for_request(rid)  # one line, not one from the bridge and one from gRPC
    assert set(FIELDS) <= set(line)
    assert line["status"] == "200" and line["token"] == "alice" and line["model"] == "gpt-logged"
    assert line["channel"] == "ch-fake" and line["stream"] == "false"
    assert line["method"] == "POST" and line["path"] == "/v1/chat/completions"
    assert int(line["upstream_ms"]) >= 0 and int(line["latency_ms"]) >= int(line["upstream_ms"])
    assert int(line["bytes_in"]) > 0 and int(line["bytes_out"]) >= len(body)
    assert line["error_code"] == "-"


def test_a_streamed_chat_gets_one_line_marked_stream(served):
    gw, tail, key = served
    rid = new_id()
    status, headers, body = chat(gw, key, rid, stream=True)
    assert status == 200 and b"[DONE]" in body and headers["x-request-id"] == rid
    [line] = tail.for_request(rid)
    assert line["stream"] == "true" and line["status"] == "200" and line["channel"] == "ch-fake"


@pytest.mark.parametrize("what, call, status, code", [
    ("wrong key", lambda gw, key, rid: chat(gw, "sk-not-a-token", rid), 401, "invalid_api_key"),
    ("unknown model", lambda gw, key, rid: chat(gw, key, rid, model="gpt-none"), 404, "model_not_found"),
    ("unknown URL", lambda gw, key, rid: request(gw, "GET", "/v2/x", headers={"X-Request-Id": rid}),
     404, "unknown_url"),
    ("bad JSON", lambda gw, key, rid: request(gw, "POST", "/v1/chat/completions", b"{nope", {
        "Authorization": f"Bearer {key}", "X-Request-Id": rid}), 400, "invalid_json"),
    ("wrong method", lambda gw, key, rid: request(gw, "PATCH", "/v1/models", headers={"X-Request-Id": rid}),
     405, "method_not_allowed"),
])
def test_a_failed_request_gets_one_line_with_its_status_and_error_code(served, what, call, status, code):
    gw, tail, key = served
    rid = new_id()
    got, _, body = call(gw, key, rid)
    assert got == status, (what, body)
    [line] = tail.for_request(rid)
    assert line["status"] == str(status) and line["error_code"] == code


def test_an_upstream_failure_names_the_channel_and_the_error(served, upstream):
    gw, tail, key = served
    rid = new_id()
    upstream.fail_with = (500, {"error": {"message": "boom", "type": "server_error", "code": None}})
    try:
        status, _, _ = chat(gw, key, rid)
    finally:
        upstream.fail_with = None
    assert status >= 500
    [line] = tail.for_request(rid)
    assert line["status"] == str(status) and line["channel"] == "ch-fake" and line["error_code"] != "-"


@pytest.mark.parametrize("path, body", [
    ("/v1/images/generations", {"model": "img-logged", "prompt": "a red square", "response_format": "b64_json"}),
    ("/v1/videos", {"model": "video-logged", "prompt": "a red square", "seconds": "1"}),
])
def test_image_and_video_requests_name_their_channel(served, media_channel, path, body):
    gw, tail, key = served
    rid = new_id()
    status, _, answer = request(gw, "POST", path, json.dumps(body).encode(), {
        "Authorization": f"Bearer {key}", "Content-Type": "application/json", "X-Request-Id": rid})
    assert status == 200, answer
    [line] = tail.for_request(rid)
    assert line["channel"] == "sim-media" and line["model"] == body["model"] and line["token"] == "alice"
    assert line["upstream_ms"] != "-"  # a video too is sent upstream before its create answers


def test_a_client_leaving_a_stream_is_logged_once_as_499(served, upstream):
    gw, tail, key = served
    rid = new_id()
    url = urlsplit(gw.http_url)
    upstream.delay = 2.0
    try:
        sock = socket.create_connection((url.hostname, url.port), timeout=5)
        body = json.dumps({"model": "gpt-logged", "messages": HI, "stream": True}).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {key}\r\nX-Request-Id: {rid}\r\n".encode()
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.5)
        sock.close()
        [line] = tail.for_request(rid, timeout=8)
    finally:
        upstream.delay = 0.0
    assert line["status"] == "499"


def test_no_access_line_holds_a_key_a_base_url_or_a_body(served, upstream):
    gw, tail, key = served
    secret_text = f"secret-prompt-{uuid.uuid4().hex}"
    chat(gw, key, None, messages=[{"role": "user", "content": secret_text}])
    chat(gw, key, None, stream=True)
    chat(gw, key, None, model=f"gpt-{secret_text}")  # the model name is logged, bounded
    time.sleep(0.5)
    lines = [line for line in tail.lines if "st_ai.access" in line]
    assert lines
    url = urlsplit(upstream.base_url)
    for line in lines:
        assert key not in line and upstream.api_key not in line
        assert upstream.base_url not in line and f"{url.hostname}:{url.port}" not in line
        assert secret_text not in line or f"model=gpt-{secret_text}" in line


def test_json_access_lines_parse_and_carry_every_field(served_json):
    gw, tail, key = served_json
    ids = {new_id(): 200, new_id(): 200, new_id(): 401}
    (ok, streamed, refused) = ids
    chat(gw, key, ok)
    chat(gw, key, streamed, stream=True)
    chat(gw, "sk-nope", refused)
    for rid, status in ids.items():
        [line] = tail.for_request(rid, json_lines=True)
        assert set(FIELDS) <= set(line)
        assert line["status"] == status and isinstance(line["latency_ms"], int)
    [line] = tail.for_request(streamed, json_lines=True)
    assert line["stream"] is True and line["token"] == "alice" and line["channel"] == "ch-fake"
    assert isinstance(line["upstream_ms"], int)
    [line] = tail.for_request(refused, json_lines=True)
    assert line["error_code"] == "invalid_api_key" and line["token"] is None


# -- gRPC -----------------------------------------------------------------------------------

def _chat_request() -> chat_pb2.ChatCompletionRequest:
    return chat_pb2.ChatCompletionRequest(model="gpt-logged", messages=[chat_pb2.ChatMessage(role="user", text="Hi")])


def test_grpc_calls_carry_the_request_id_in_trailing_metadata_and_get_one_line(served):
    gw, tail, key = served
    channel = grpc.insecure_channel(gw.grpc_target)
    stub = chat_pb2_grpc.ChatStub(channel)
    try:
        rid = new_id()
        _, call = stub.CreateChatCompletion.with_call(
            _chat_request(), metadata=(("authorization", f"Bearer {key}"), ("x-request-id", rid)), timeout=10)
        assert dict(call.trailing_metadata())["x-request-id"] == rid
        [line] = tail.for_request(rid)
        assert line["method"] == "/st_ai.v1.Chat/CreateChatCompletion" and line["status"] == "200"
        assert line["token"] == "alice" and line["channel"] == "ch-fake" and line["model"] == "gpt-logged"
        # no facts for the bridge leave through the network port
        assert not any(k.startswith("st-ai-") for k, _ in call.trailing_metadata())

        rid = new_id()
        stream = stub.StreamChatCompletion(
            _chat_request(), metadata=(("authorization", f"Bearer {key}"), ("x-request-id", rid)), timeout=10)
        assert list(stream)
        assert dict(stream.trailing_metadata())["x-request-id"] == rid
        [line] = tail.for_request(rid)
        assert line["stream"] == "true" and line["method"] == "/st_ai.v1.Chat/StreamChatCompletion"

        with pytest.raises(grpc.RpcError) as refused:
            models_pb2_grpc.ModelsStub(channel).ListModels(
                models_pb2.ListModelsRequest(), metadata=(("x-request-id", "not valid!"),), timeout=10)
        generated = dict(refused.value.trailing_metadata())["x-request-id"]
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert generated != "not valid!" and re.fullmatch(r"[0-9a-f]{32}", generated)
        [line] = tail.for_request(generated)
        assert line["status"] == "401" and line["error_code"] == "invalid_api_key"
    finally:
        channel.close()


def test_an_unknown_grpc_method_is_unimplemented_and_logged(served):
    gw, tail, _ = served
    channel = grpc.insecure_channel(gw.grpc_target)
    try:
        rid = new_id()
        call = channel.unary_unary("/st_ai.v1.Nothing/Here")
        with pytest.raises(grpc.RpcError) as refused:
            call(b"", metadata=(("x-request-id", rid),), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert dict(refused.value.trailing_metadata())["x-request-id"] == rid
        [line] = tail.for_request(rid)
        assert line["method"] == "/st_ai.v1.Nothing/Here" and line["error_code"] == "unknown_method"
    finally:
        channel.close()


def test_a_request_refused_before_the_app_sees_it_is_logged_too(served):
    gw, tail, _ = served
    url = urlsplit(gw.http_url)
    before = len(tail.access())
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
        answer = sock.recv(65536)
    assert re.match(rb"HTTP/1\.[01] 400 ", answer)
    # lines of the fixture's own requests may still be on their way: look for this one's
    deadline = time.monotonic() + 5
    refused: list = []
    while not refused and time.monotonic() < deadline:
        time.sleep(0.02)
        refused = [line for line in tail.access()[before:] if line["status"] == "400"]
    [line] = refused
    assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])


def test_a_header_that_never_arrives_in_full_gets_its_408_logged_with_its_request_id(tmp_path_factory, upstream):
    gw, tail, _ = _serve(tmp_path_factory, upstream, "--client-header-timeout", "1")
    try:
        url = urlsplit(gw.http_url)
        with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert re.match(rb"HTTP/1\.1 408 ", answer), answer[:200]
        request_id = re.search(rb"\r\nX-Request-Id: ([0-9a-f]{32})\r\n", answer).group(1).decode()
        [line] = tail.for_request(request_id)
        assert line["status"] == "408" and line["error_code"] == "request_timeout", line
        assert line["method"] == "-" and line["peer"] == "127.0.0.1" and int(line["bytes_out"]) == len(answer)
    finally:
        stop_gateway(gw)
