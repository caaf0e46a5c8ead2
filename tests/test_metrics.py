"""GET /metrics and Server-Timing, on a real `st-ai serve` in front of FakeOpenAI servers on
127.0.0.1: requests counted by model, channel, status and code; every upstream attempt by
its channel and code; a stream's time to first token; nothing in flight once answers end;
no key, token or base URL in what a scrape shows; a client's model name is never a label.
Every REST answer (plain, streamed, an error) and every gRPC call carries Server-Timing,
whose upstream part is the time st-ai waited on its upstream."""
from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.store.db import open_db
from st_ai.v1 import chat_pb2, chat_pb2_grpc
from tests.conftest import ROOT, start_gateway, stop_gateway
from tests.fakes.faults import Fault
from tests.fakes.openai_upstream import VideoPlan
from tests.test_failover_chat_images import CHAT, Upstream, ask, assert_clean_answer, serve
from tests.test_relay_upstream import fakes  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timeout(90)

TIMEOUT = 30  # generous: a test that waits this long has already failed
TIMING = re.compile(r"^gateway;dur=(\d+(?:\.\d+)?), upstream;dur=(\d+(?:\.\d+)?)$")
SLOW = 0.3  # an upstream made this slow shows it in the upstream part
MAX_BODY = 64 * 1024  # the module gateway's --max-body-bytes
HEADER_TIMEOUT = 2  # its --client-header-timeout
ADMIN_KEY = "sk-admin-metrics-" + "x" * 24


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("metrics") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--cooldown-failures", "1000", "--video-poll-interval", "0.2",
                       "--max-body-bytes", str(MAX_BODY), "--client-header-timeout", str(HEADER_TIMEOUT),
                       env={"ST_AI_SIMULATOR_VIDEO_SECONDS": "1"})
    yield gw
    stop_gateway(gw)


def _get(url: str, path: str, headers: dict | None = None, body: dict | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request("POST" if body is not None else "GET", path,
                     body=json.dumps(body) if body is not None else None,
                     headers={**(headers or {}), **({"Content-Type": "application/json"} if body else {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def scrape(url: str) -> str:
    status, headers, body = _get(url, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain"), (status, headers)
    return body.decode()


def samples(text: str, name: str) -> list[tuple[dict, float]]:
    return [(s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name]


def value(text: str, name: str, **labels: str) -> float:
    return sum(v for found, v in samples(text, name) if all(found.get(k) == w for k, w in labels.items()))


def timing(header: str) -> tuple[float, float]:
    match = TIMING.match(header)
    assert match, header
    return float(match.group(1)), float(match.group(2))


# -- /metrics ------------------------------------------------------------------------------

def test_a_chat_answer_is_counted_by_model_channel_and_status(gateway, fakes):
    setup = serve(gateway, "chat", Upstream(fakes()))
    before = scrape(gateway.http_url)
    assert_clean_answer("chat", ask(gateway, "rest", "chat", setup))
    assert_clean_answer("chat", ask(gateway, "grpc", "chat", setup))
    text = scrape(gateway.http_url)
    channel = f"{setup.model}-0"
    assert value(text, "st_ai_requests_total", model=setup.model, channel=channel, status="200", code="") == 2
    assert value(text, "st_ai_upstream_attempts_total", channel=channel, status="200") == 2
    assert value(text, "st_ai_upstream_attempt_seconds_count", channel=channel) == 2
    assert value(text, "st_ai_gateway_overhead_seconds_count") >= value(before, "st_ai_gateway_overhead_seconds_count") + 2
    assert value(text, "st_ai_ledger_rows_written_total") >= value(before, "st_ai_ledger_rows_written_total") + 2
    assert value(text, "st_ai_ledger_write_seconds_count") > value(before, "st_ai_ledger_write_seconds_count")


def test_an_upstream_failure_is_counted_with_its_channel_and_code(gateway, fakes):
    failing, working = fakes(), fakes()
    setup = serve(gateway, "chat", Upstream(failing), Upstream(working))
    failing.faults.always(CHAT, Fault.error(503))
    assert_clean_answer("chat", ask(gateway, "rest", "chat", setup))
    text = scrape(gateway.http_url)
    failed = [(labels, v) for labels, v in samples(text, "st_ai_upstream_attempts_total")
              if labels["channel"] == f"{setup.model}-0"]
    # one failed attempt, booked as st-ai books it (an upstream 503 is a retryable 5xx)
    assert len(failed) == 1 and failed[0][1] == 1 and failed[0][0]["status"].startswith("5"), failed
    assert failed[0][0]["code"], failed  # the failure's code names what went wrong
    assert value(text, "st_ai_upstream_attempts_total", channel=f"{setup.model}-1", status="200") == 1
    # the request itself is one, answered by the channel that worked
    assert value(text, "st_ai_requests_total", model=setup.model, channel=f"{setup.model}-1", status="200") == 1


def test_an_answer_no_channel_served_is_counted_without_the_clients_model_name(gateway, fakes):
    setup = serve(gateway, "chat", Upstream(fakes()))
    invented = f"invented-{uuid.uuid4().hex}"
    status, _, _ = _get(gateway.http_url, CHAT, {"Authorization": f"Bearer {setup.key}"},
                        {"model": invented, "messages": [{"role": "user", "content": "Hi"}]})
    assert status == 404
    text = scrape(gateway.http_url)
    assert invented not in text
    assert value(text, "st_ai_requests_total", model="-", status="404") >= 1


def test_a_stream_records_its_time_to_first_token_and_leaves_nothing_in_flight(gateway, fakes):
    setup = serve(gateway, "stream", Upstream(fakes()))
    assert_clean_answer("stream", ask(gateway, "rest", "stream", setup))
    assert_clean_answer("stream", ask(gateway, "grpc", "stream", setup))
    text = scrape(gateway.http_url)
    channel = f"{setup.model}-0"
    assert value(text, "st_ai_time_to_first_token_seconds_count", model=setup.model, channel=channel) == 2
    assert value(text, "st_ai_requests_total", model=setup.model, channel=channel, status="200") == 2
    assert value(text, "st_ai_streams_in_flight") == 0


def test_video_tasks_are_counted_by_the_states_they_reach(gateway):
    model = f"video-{uuid.uuid4().hex[:8]}"
    gateway.channel(f"sim-{model}", "simulator", [model])
    key = gateway.token(f"t-{model}")
    before = scrape(gateway.http_url)
    status, _, body = _get(gateway.http_url, "/v1/videos", {"Authorization": f"Bearer {key}"},
                           {"model": model, "prompt": "a lighthouse", "duration": 1.0, "width": 160, "height": 96,
                            "fps": 12})
    assert status == 200, body
    video_id = json.loads(body)["id"]
    deadline = time.monotonic() + TIMEOUT
    while (state := json.loads(_get(gateway.http_url, f"/v1/videos/{video_id}",
                                    {"Authorization": f"Bearer {key}"})[2])["status"]) in ("queued", "in_progress"):
        assert time.monotonic() < deadline, "the video did not finish"
        time.sleep(0.1)
    assert state == "completed"
    text = scrape(gateway.http_url)
    for reached in ("queued", "completed"):
        assert value(text, "st_ai_video_tasks_total", state=reached) == \
            value(before, "st_ai_video_tasks_total", state=reached) + 1, reached


def test_metrics_show_no_key_token_or_base_url(gateway, fakes):
    failing, working = fakes(), fakes()
    setup = serve(gateway, "chat", Upstream(failing), Upstream(working))
    failing.faults.always(CHAT, Fault.error(401, message=f"bad key {failing.api_key}"))
    assert_clean_answer("chat", ask(gateway, "rest", "chat", setup))
    text = scrape(gateway.http_url)
    for secret in (setup.key, failing.api_key, working.api_key, failing.base_url, working.base_url,
                   urlsplit(failing.base_url).netloc, urlsplit(working.base_url).netloc):
        assert secret not in text


def test_metrics_need_no_token(gateway):
    status, headers, body = _get(gateway.http_url, "/metrics")
    assert status == 200 and b"st_ai_requests_total" in body
    timing(headers["server-timing"])


def test_several_processes_write_one_multiprocess_directory(tmp_path, fakes):
    """PROMETHEUS_MULTIPROC_DIR: a scrape adds up what every process sharing it counted."""
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    shared = tmp_path / "prometheus"
    shared.mkdir()
    gw = start_gateway(db_path, env={"PROMETHEUS_MULTIPROC_DIR": str(shared)})
    try:
        setup = serve(gw, "chat", Upstream(fakes()))
        assert_clean_answer("chat", ask(gw, "rest", "chat", setup))
        text = scrape(gw.http_url)
        assert value(text, "st_ai_requests_total", model=setup.model, status="200") == 1
        assert list(shared.glob("*.db")), "the process wrote its numbers to the shared directory"
    finally:
        stop_gateway(gw)


def test_a_grpc_only_process_serves_metrics_on_its_metrics_port(tmp_path):
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "grpc", "--db", db_path, "--host", "127.0.0.1", "--grpc-port", "0",
         "--metrics-port", "0", "--assets-dir", str(tmp_path / "assets")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = _metrics_url(proc)
        assert url, "no ready line naming the metrics port"
        text = scrape(url)  # open: no --metrics-auth
        assert "st_ai_requests_total" in text and "st_ai_video_tasks_by_state" in text
    finally:
        _stop(proc)


def scrape_until(url: str, holds, what: str, timeout: float = 10) -> str:
    """A scrape for which `holds(text)`: a video count is reused for up to two seconds,
    and a REST request is counted just after its last byte went out."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(url)
        if holds(text):
            return text
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_each_request_is_counted_once_and_its_overhead_measured_at_the_front_it_came_in_by(gateway, fakes):
    setup = serve(gateway, "chat", Upstream(fakes()))
    channel = f"{setup.model}-0"
    for front, other in (("rest", "grpc"), ("grpc", "rest")):
        before = scrape(gateway.http_url)
        assert_clean_answer("chat", ask(gateway, front, "chat", setup))
        overheads = "st_ai_gateway_overhead_seconds_count"
        after = scrape_until(gateway.http_url, lambda text: value(text, overheads, front=front)
                             > value(before, overheads, front=front), f"the {front} request's overhead")
        assert value(after, "st_ai_requests_total", model=setup.model, channel=channel) == \
            value(before, "st_ai_requests_total", model=setup.model, channel=channel) + 1
        assert value(after, overheads, front=front, stream="false") == \
            value(before, overheads, front=front, stream="false") + 1
        assert value(after, overheads, front=other) == value(before, overheads, front=other), \
            f"a {front} request was measured at the {other} front too"


def _send(url: str, data: bytes) -> bytes:
    """`data` as it is, on a connection of its own; all that came back before it closed."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _refuse(url: str, case: str, unique: str) -> int:
    """One request the bridge refuses itself, before calling any service; its status."""
    host = urlsplit(url).netloc
    json_head = f"Content-Type: application/json\r\nConnection: close\r\nHost: {host}\r\n"
    chat = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}).encode()
    raw = {
        "unknown_url": f"GET /v1/{unique} HTTP/1.1\r\n{json_head}\r\n".encode(),
        "wrong_method": f"DELETE {CHAT} HTTP/1.1\r\n{json_head}\r\n".encode(),
        "bad_json": f"POST {CHAT} HTTP/1.1\r\n{json_head}Content-Length: 9\r\n\r\n{{not json".encode(),
        "too_large": f"POST {CHAT} HTTP/1.1\r\n{json_head}Content-Length: {MAX_BODY + 1}\r\n\r\n".encode()
                     + b"x" * (MAX_BODY + 1),
        "expectation": f"POST {CHAT} HTTP/1.1\r\n{json_head}Expect: {unique}\r\n"
                       "Content-Length: 2\r\n\r\n{}".encode(),
        "header_never_ends": f"GET /v1/{unique} HTTP/1.1\r\n{json_head}".encode(),  # answered after HEADER_TIMEOUT
        "not_http": f"{unique} \x01\r\n\r\n".encode(),
        "non_ascii_key": f"POST {CHAT} HTTP/1.1\r\n{json_head}Content-Length: {len(chat)}\r\n".encode()
                         + b"Authorization: Bearer sk-\xc3\xa9\r\n\r\n" + chat,
    }[case]
    answer = _send(url, raw)
    return int(answer.split(b" ", 2)[1])


REFUSALS = {"unknown_url": (404, "unknown_url"), "wrong_method": (405, "method_not_allowed"),
            "bad_json": (400, "invalid_json"), "too_large": (413, "request_too_large"),
            "expectation": (417, "expectation_failed"), "not_http": (400, "invalid_http"),
            "non_ascii_key": (401, "invalid_api_key"), "header_never_ends": (408, "request_timeout")}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_request_the_bridge_refuses_itself_is_counted_by_status_and_code(gateway, case):
    status, code = REFUSALS[case]
    unique = f"client-{uuid.uuid4().hex}"
    before = scrape(gateway.http_url)
    assert _refuse(gateway.http_url, case, unique) == status
    labels = {"model": "-", "channel": "", "status": str(status), "code": code}
    text = scrape_until(gateway.http_url, lambda text: value(text, "st_ai_requests_total", **labels)
                        > value(before, "st_ai_requests_total", **labels), f"the {case} refusal to be counted")
    assert value(text, "st_ai_requests_total", **labels) == value(before, "st_ai_requests_total", **labels) + 1
    assert unique not in text  # nothing the client sent became a label


def test_health_checks_and_scrapes_are_not_counted_as_requests(gateway):
    before = scrape(gateway.http_url)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert _get(gateway.http_url, path)[0] == 200
    after = scrape(gateway.http_url)
    assert value(after, "st_ai_requests_total") == value(before, "st_ai_requests_total")


GAUGE = "st_ai_video_tasks_by_state"


def _open(text: str) -> float:
    return value(text, GAUGE, state="queued") + value(text, GAUGE, state="in_progress")


def test_video_tasks_are_gauged_by_the_state_they_are_in_now(gateway, fakes):
    rendering = fakes()
    rendering.video_plan = VideoPlan(never_finish=True)
    quick, slow = f"video-{uuid.uuid4().hex[:8]}", f"sora-{uuid.uuid4().hex[:8]}"
    gateway.channel(f"sim-{quick}", "simulator", [quick])
    gateway.channel(f"fake-{slow}", "openai", [slow], base_url=rendering.base_url, key=rendering.api_key,
                    model_map={slow: "sora-2"})
    auth = {"Authorization": f"Bearer {gateway.token(f't-{quick}')}"}
    before = scrape_until(gateway.http_url, lambda text: _open(text) == 0, "no open video task", timeout=TIMEOUT)
    assert {labels["state"] for labels, _ in samples(before, GAUGE)} >= \
        {"submitting", "queued", "in_progress", "completed", "failed", "cancelled"}  # shown at 0 too

    status, _, answer = _get(gateway.http_url, "/v1/videos", auth, {
        "model": quick, "prompt": "a lighthouse", "duration": 1.0, "width": 160, "height": 96, "fps": 12})
    assert status == 200, answer
    scrape_until(gateway.http_url, lambda text: value(text, GAUGE, state="completed")
                 == value(before, GAUGE, state="completed") + 1 and _open(text) == 0,
                 "the finished task, counted completed", timeout=TIMEOUT)

    status, _, answer = _get(gateway.http_url, "/v1/videos", auth,
                             {"model": slow, "prompt": "a harbour", "seconds": "4", "size": "1280x720"})
    assert status == 200, answer
    scrape_until(gateway.http_url, lambda text: _open(text) == 1, "the task the upstream still renders")
    parts = urlsplit(gateway.http_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request("DELETE", f"/v1/videos/{json.loads(answer)['id']}", headers=auth)
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    text = scrape_until(gateway.http_url, lambda text: value(text, GAUGE, state="cancelled")
                        == value(before, GAUGE, state="cancelled") + 1, "the task deleted while open")
    assert _open(text) == 0
    assert value(text, GAUGE, state="completed") == value(before, GAUGE, state="completed") + 1


def test_the_process_asyncio_tasks_are_a_gauge(gateway):
    tasks = samples(scrape(gateway.http_url), "st_ai_asyncio_tasks")
    assert len(tasks) == 1 and tasks[0][1] >= 1, tasks  # one process, its own background tasks at least


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A gateway started with --metrics-auth admin."""
    db_path = str(tmp_path_factory.mktemp("guarded") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--metrics-auth", "admin", env={"ST_AI_ADMIN_KEY": ADMIN_KEY})
    yield gw
    stop_gateway(gw)


def assert_401(status: int, headers: dict, body: bytes) -> None:
    assert status == 401 and headers["content-type"].startswith("application/json"), (status, body)
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "invalid_api_key", error
    assert b"st_ai_" not in body and ADMIN_KEY.encode() not in body


def test_metrics_auth_admin_refuses_a_scrape_without_the_admin_key(guarded):
    client_key = guarded.token("a-client")
    for presented in ({}, {"Authorization": "Bearer sk-admin-not-the-key-000000000000"},
                      {"Authorization": f"Bearer {client_key}"}, {"Authorization": ADMIN_KEY}):
        assert_401(*_get(guarded.http_url, "/metrics", presented))
    status, headers, body = _get(guarded.http_url, "/metrics", {"Authorization": f"Bearer {ADMIN_KEY}"})
    assert status == 200 and b"st_ai_requests_total" in body
    assert _get(guarded.http_url, "/healthz")[0] == 200  # only /metrics is guarded


def test_metrics_auth_admin_guards_a_grpc_only_process_metrics_port(tmp_path):
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "grpc", "--db", db_path, "--host", "127.0.0.1", "--grpc-port", "0",
         "--metrics-port", "0", "--metrics-auth", "admin", "--assets-dir", str(tmp_path / "assets")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "ST_AI_ADMIN_KEY": ADMIN_KEY})
    try:
        match = _metrics_url(proc)
        assert match, "no ready line naming the metrics port"
        assert_401(*_get(match, "/metrics"))
        status, _, body = _get(match, "/metrics", {"Authorization": f"Bearer {ADMIN_KEY}"})
        assert status == 200 and b"st_ai_video_tasks_by_state" in body
    finally:
        _stop(proc)


def _metrics_url(proc: subprocess.Popen) -> str | None:
    for _ in range(200):
        line = proc.stdout.readline()
        if not line or "st-ai gRPC ready" in line:
            match = re.search(r"metrics (http://\S+)/metrics", line)
            return match.group(1) if match else None
    return None


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# -- Server-Timing -------------------------------------------------------------------------

def test_a_plain_answer_tells_its_gateway_and_upstream_time(gateway, fakes):
    fake = fakes()
    setup = serve(gateway, "chat", Upstream(fake))
    fake.faults.add(CHAT, Fault.delay(SLOW))
    status, headers, _ = _get(gateway.http_url, CHAT, {"Authorization": f"Bearer {setup.key}"},
                              {"model": setup.model, "messages": [{"role": "user", "content": "Hi"}]})
    assert status == 200
    gateway_ms, upstream_ms = timing(headers["server-timing"])
    assert upstream_ms >= SLOW * 1000
    assert gateway_ms < upstream_ms  # the wait was upstream, not st-ai's own time


def test_a_stream_tells_its_time_to_the_first_upstream_event_in_its_headers(gateway, fakes):
    fake = fakes()
    setup = serve(gateway, "stream", Upstream(fake))
    fake.faults.add(CHAT, Fault.delay(SLOW))
    status, headers, body = _get(gateway.http_url, CHAT, {"Authorization": f"Bearer {setup.key}"},
                                 {"model": setup.model, "stream": True,
                                  "messages": [{"role": "user", "content": "Hi"}]})
    assert status == 200 and body.endswith(b"data: [DONE]\n\n")
    _, upstream_ms = timing(headers["server-timing"])
    assert upstream_ms >= SLOW * 1000


@pytest.mark.parametrize("case", ["no_token", "unknown_model", "upstream_400", "bad_json"])
def test_an_error_answer_carries_server_timing(gateway, fakes, case):
    fake = fakes()
    setup = serve(gateway, "chat", Upstream(fake))
    if case == "upstream_400":
        fake.faults.add(CHAT, Fault.error(400))
    headers = {} if case == "no_token" else {"Authorization": f"Bearer {setup.key}"}
    model = f"nobody-{uuid.uuid4().hex}" if case == "unknown_model" else setup.model
    if case == "bad_json":
        parts = urlsplit(gateway.http_url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
        try:
            conn.request("POST", CHAT, body=b"{not json", headers={**headers, "Content-Type": "application/json"})
            response = conn.getresponse()
            status, answer = response.status, {k.lower(): v for k, v in response.getheaders()}
            response.read()
        finally:
            conn.close()
    else:
        status, answer, _ = _get(gateway.http_url, CHAT, headers,
                                 {"model": model, "messages": [{"role": "user", "content": "Hi"}]})
    assert 400 <= status < 500
    gateway_ms, upstream_ms = timing(answer["server-timing"])
    assert upstream_ms == 0 or case == "upstream_400"


def test_grpc_calls_carry_server_timing_in_their_metadata(gateway, fakes):
    setup = serve(gateway, "chat", Upstream(fakes()))
    metadata = (("authorization", f"Bearer {setup.key}"),)
    request = chat_pb2.ChatCompletionRequest(model=setup.model, messages=[chat_pb2.ChatMessage(role="user", text="Hi")])
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = chat_pb2_grpc.ChatStub(channel)
        _, call = stub.CreateChatCompletion.with_call(request, metadata=metadata, timeout=TIMEOUT)
        timing(dict(call.trailing_metadata())["server-timing"])
        stream = stub.StreamChatCompletion(request, metadata=metadata, timeout=TIMEOUT)
        assert list(stream)
        timing(dict(stream.initial_metadata())["server-timing"])
        timing(dict(stream.trailing_metadata())["server-timing"])
