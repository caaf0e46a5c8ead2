"""SIGTERM while streams are in flight, against a real `st-ai serve` (and a real `st-ai
bridge`) in front of FakeOpenAI on 127.0.0.1 whose streams wait at a gate after their
first chunks, so the signal lands while every stream is mid-answer.

Readiness goes false at once, new requests are refused with a 503 `shutting_down`, the
streams in flight finish normally when the upstream goes on (within the grace), or are
cut after the grace with an error event and billed for what they sent; the process exits 0
either way, with one ledger row per request."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.billing.prices import PriceChanges
from server.store import channels as channel_store
from server.store import prices as price_store
from server.store import tokens as token_store
from server.store.db import open_db
from st_ai.v1 import chat_pb2, chat_pb2_grpc
from tests.conftest import ROOT, Gateway, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI, StreamPlan

pytestmark = pytest.mark.timeout(120)

MODEL = "drain-model"
HELD_AT = 4  # chunks sent before the gate: the role chunk and the first three pieces
PIECES = ("one ", "two ", "three ", "four ", "five")


def held_streams(gate: threading.Event) -> StreamPlan:
    base = {"id": "chatcmpl-drain", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    chunks = [base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                   "finish_reason": None}]}]
    chunks += [base | {"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in PIECES]
    chunks.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append(base | {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}})
    return StreamPlan(chunks, gates={HELD_AT: gate})


@pytest.fixture
def gate():
    gate = threading.Event()
    yield gate
    gate.set()  # never leave the fake's streams waiting


@pytest.fixture
def fake(gate):
    fake = FakeOpenAI().start()
    fake.stream_plan = held_streams(gate)
    yield fake
    fake.stop()


def priced_db(tmp_path) -> tuple[str, str]:
    db_path = str(tmp_path / "st-ai.db")
    db = open_db(db_path)
    try:
        price_store.set_price(db, MODEL, PriceChanges(input=1_500_000, output=6_000_000))
        _, key = token_store.create(db, "drainer")
    finally:
        db.close()
    return db_path, key


def serving(tmp_path, fake: FakeOpenAI, *extra: str) -> tuple[Gateway, str]:
    db_path, key = priced_db(tmp_path)
    gateway = start_gateway(db_path, *extra)
    gateway.channel("upstream", "openai", [MODEL], base_url=fake.base_url, key=fake.api_key)
    return gateway, key


@dataclass
class Stream:
    """One client's stream, read on its own thread: what arrived and how it ended."""
    contents: list[str] = field(default_factory=list)  # each chunk's content ("" for none)
    ending: str | None = None   # "[DONE]", "error:<code>", "closed", or a gRPC "status:<code>"
    ended_at: float | None = None
    held: threading.Event = field(default_factory=threading.Event)  # all chunks before the gate arrived

    def saw(self, content: str) -> None:
        self.contents.append(content)
        if len(self.contents) == HELD_AT:
            self.held.set()

    def end(self, ending: str) -> None:
        self.ending, self.ended_at = ending, time.monotonic()


def rest_stream(gateway: Gateway, key: str, stream: Stream) -> None:
    url = urlsplit(gateway.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps({
            "model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Count"}]}),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        for line in response:
            if not line.startswith(b"data: "):
                continue
            data = line[len(b"data: "):].strip()
            if data == b"[DONE]":
                return stream.end("[DONE]")
            event = json.loads(data)
            if "error" in event:
                return stream.end(f"error:{event['error']['code']}")
            for choice in event["choices"]:
                stream.saw(choice["delta"].get("content") or "")
        stream.end("closed")
    except (OSError, http.client.HTTPException):
        stream.end("closed")
    finally:
        conn.close()


def grpc_stream(gateway: Gateway, key: str, stream: Stream) -> None:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        request = chat_pb2.ChatCompletionRequest(
            model=MODEL, messages=[chat_pb2.ChatMessage(role="user", text="Count")])
        try:
            for chunk in chat_pb2_grpc.ChatStub(channel).StreamChatCompletion(
                    request, metadata=(("authorization", f"Bearer {key}"),), timeout=60):
                for choice in chunk.choices:
                    stream.saw(choice.delta.text)
            stream.end("status:OK")
        except grpc.RpcError as error:
            stream.end(f"status:{error.code().name}:{error.details()}")


def start_streams(gateway: Gateway, key: str, rest: int, over_grpc: int) -> tuple[list[Stream], list[threading.Thread]]:
    streams = [Stream() for _ in range(rest + over_grpc)]
    threads = [threading.Thread(target=rest_stream if i < rest else grpc_stream, args=(gateway, key, s), daemon=True)
               for i, s in enumerate(streams)]
    for thread in threads:
        thread.start()
    for stream in streams:
        assert stream.held.wait(30), f"a stream did not reach the gate: {stream}"
    return streams, threads


def readiness(gateway: Gateway) -> int:
    url = urlsplit(gateway.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status
    finally:
        conn.close()


def grpc_health(gateway: Gateway) -> int:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def new_rest_request(gateway: Gateway, key: str) -> tuple[int, dict, str | None]:
    url = urlsplit(gateway.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps({
            "model": MODEL, "messages": [{"role": "user", "content": "Too late"}]}),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read()), response.getheader("Connection")
    finally:
        conn.close()


def new_grpc_request(gateway: Gateway, key: str) -> grpc.RpcError:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        request = chat_pb2.ChatCompletionRequest(
            model=MODEL, messages=[chat_pb2.ChatMessage(role="user", text="Too late")])
        with pytest.raises(grpc.RpcError) as refused:
            chat_pb2_grpc.ChatStub(channel).CreateChatCompletion(
                request, metadata=(("authorization", f"Bearer {key}"),), timeout=10)
        return refused.value


def until(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds}s: {what}")


def ledger(db_path: str) -> list[dict]:
    db = open_db(db_path)
    try:
        return list(db.query("SELECT * FROM ledger WHERE model = ?", [MODEL]))
    finally:
        db.close()


def attempt_statuses(db_path: str) -> list[tuple[int, str | None]]:
    db = open_db(db_path)
    try:
        return [(r["status"], r["error_code"]) for r in db.query(
            "SELECT a.status, a.error_code FROM attempts a JOIN ledger l ON l.id = a.ledger_id WHERE l.model = ?",
            [MODEL])]
    finally:
        db.close()


def reservations(db_path: str) -> int:
    db = open_db(db_path)
    try:
        return db["reservations"].count
    finally:
        db.close()


def test_sigterm_with_20_streams_in_flight_lets_them_all_finish_and_refuses_new_requests(tmp_path, fake, gate):
    gateway, key = serving(tmp_path, fake)  # the default grace, 30 s
    try:
        assert readiness(gateway) == 200
        streams, threads = start_streams(gateway, key, rest=16, over_grpc=4)

        gateway.proc.send_signal(signal.SIGTERM)
        until(lambda: readiness(gateway) == 503, 5, "/readyz answering 503 after SIGTERM")
        assert grpc_health(gateway) == health_pb2.HealthCheckResponse.NOT_SERVING

        status, body, connection = new_rest_request(gateway, key)
        assert (status, body["error"]["code"], connection) == (503, "shutting_down", "close")
        assert body["error"]["type"] == "service_unavailable_error"
        refused = new_grpc_request(gateway, key)
        assert refused.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in refused.details()

        assert gateway.proc.poll() is None, "st-ai exited with streams in flight"
        assert all(stream.ending is None for stream in streams)
        gate.set()  # the upstream goes on: every stream runs to its end
        for thread in threads:
            thread.join(30)
        assert gateway.proc.wait(30) == 0
    finally:
        gate.set()
        if gateway.proc.poll() is None:
            gateway.proc.kill()
            gateway.proc.wait(10)

    assert [s.ending for s in streams] == ["[DONE]"] * 16 + ["status:OK"] * 4
    assert all("".join(s.contents) == "".join(PIECES) for s in streams)
    rows = ledger(gateway.db_path)
    assert len(rows) == 20
    assert all(r["status"] == 200 and r["completion_tokens"] == 5 and r["cost"] > 0 for r in rows)
    assert reservations(gateway.db_path) == 0


def test_a_stream_longer_than_the_grace_is_cut_after_it_with_an_error_event_and_billed_for_what_was_sent(
        tmp_path, fake):
    gateway, key = serving(tmp_path, fake, "--shutdown-grace", "1")
    try:
        streams, threads = start_streams(gateway, key, rest=2, over_grpc=1)
        # and a plain request whose upstream has not answered yet
        fake.delay = 60
        plain: list = []
        asking = threading.Thread(target=lambda: plain.append(new_rest_request(gateway, key)), daemon=True)
        asking.start()
        until(lambda: len(fake.received) == 4, 10, "the plain request reaching the upstream")
        signalled = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        for thread in (*threads, asking):
            thread.join(20)
        assert gateway.proc.wait(20) == 0
        exited = time.monotonic()
    finally:
        if gateway.proc.poll() is None:
            gateway.proc.kill()
            gateway.proc.wait(10)

    rest, over_grpc = streams[:2], streams[2]
    assert [s.ending for s in rest] == ["error:shutting_down"] * 2
    assert over_grpc.ending.startswith("status:UNAVAILABLE:") and "shut down" in over_grpc.ending
    for stream in streams:
        assert "".join(stream.contents) == "".join(PIECES[:HELD_AT - 1])  # nothing lost, nothing repeated
        # cut after the 1 s grace, not before it, and not at the default 30 s
        assert 0.9 <= stream.ended_at - signalled < 8, stream.ended_at - signalled
    assert exited - signalled < 15
    [(status, body, connection)] = plain
    assert (status, body["error"]["code"]) == (503, "shutting_down")
    rows = ledger(gateway.db_path)
    assert len(rows) == 4
    streamed = [r for r in rows if r["stream"]]
    # billed for the three pieces each client received (counted, as the usage never came),
    # booked as what ended them: the gateway shutting down, not a client that left
    assert len(streamed) == 3
    assert all((r["status"], r["error_code"]) == (503, "shutting_down") for r in rows)
    assert all(r["completion_tokens"] > 0 and r["cost"] > 0 for r in streamed)
    # the plain request got no answer: it costs nothing
    assert [r["cost"] for r in rows if not r["stream"]] == [0]
    assert attempt_statuses(gateway.db_path) == [(503, "shutting_down")] * 4
    assert reservations(gateway.db_path) == 0


@pytest.mark.parametrize("second", ["SIGTERM", "SIGINT"])
def test_a_second_signal_during_the_drain_cuts_the_streams_at_once_billed_and_exits_0(tmp_path, fake, second):
    # a grace longer than the test may last: only the second signal can end the drain in time
    gateway, key = serving(tmp_path, fake, "--shutdown-grace", "600")
    try:
        streams, threads = start_streams(gateway, key, rest=2, over_grpc=1)
        gateway.proc.send_signal(signal.SIGTERM)
        until(lambda: readiness(gateway) == 503, 5, "/readyz answering 503 after SIGTERM")
        assert all(stream.ending is None for stream in streams)  # draining: the streams go on

        gateway.proc.send_signal(getattr(signal, second))
        for thread in threads:
            thread.join(20)
        assert all(stream.ending is not None for stream in streams), streams
        assert gateway.proc.wait(20) == 0
    finally:
        if gateway.proc.poll() is None:
            gateway.proc.kill()
            gateway.proc.wait(10)

    rest, over_grpc = streams[:2], streams[2]
    assert [s.ending for s in rest] == ["error:shutting_down"] * 2
    assert over_grpc.ending.startswith("status:UNAVAILABLE:") and "shut down" in over_grpc.ending
    assert all("".join(s.contents) == "".join(PIECES[:HELD_AT - 1]) for s in streams)
    rows = ledger(gateway.db_path)
    assert len(rows) == 3
    assert all((r["status"], r["error_code"]) == (503, "shutting_down") for r in rows)
    assert all(r["completion_tokens"] > 0 and r["cost"] > 0 for r in rows)  # settled and flushed
    assert reservations(gateway.db_path) == 0


def test_a_request_whose_body_was_still_arriving_at_sigterm_is_answered(tmp_path, fake):
    """Accepted before the signal, it reaches the gRPC side only after it (through serve's
    private socket): it is in flight, not new, and is served."""
    gateway, key = serving(tmp_path, fake)
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Slowly"}]}).encode()
    url = urlsplit(gateway.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    try:
        conn.putrequest("POST", "/v1/chat/completions")
        for name, value in (("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))):
            conn.putheader(name, value)
        conn.endheaders(body[:10])
        time.sleep(0.3)  # the bridge has the request and waits for the rest of its body
        gateway.proc.send_signal(signal.SIGTERM)
        until(lambda: readiness(gateway) == 503, 5, "/readyz answering 503 after SIGTERM")
        conn.send(body[10:])
        response = conn.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        assert answer["choices"][0]["message"]["content"] == "Hello from the fake."
        assert gateway.proc.wait(20) == 0
    finally:
        conn.close()
        if gateway.proc.poll() is None:
            gateway.proc.kill()
            gateway.proc.wait(10)
    assert [r["status"] for r in ledger(gateway.db_path)] == [200]


def test_an_idle_gateway_exits_at_once_on_sigterm(tmp_path, fake):
    gateway, _ = serving(tmp_path, fake)
    signalled = time.monotonic()
    gateway.proc.send_signal(signal.SIGTERM)
    try:
        assert gateway.proc.wait(10) == 0
    finally:
        if gateway.proc.poll() is None:
            gateway.proc.kill()
    assert time.monotonic() - signalled < 5


def _start(args: list[str], ready: str) -> tuple[subprocess.Popen, re.Match]:
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "ST_AI_LOG_LEVEL": "WARNING"})
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if match := re.search(ready, line):
            return proc, match
    proc.kill()
    raise AssertionError("did not start:\n" + "".join(seen))


def test_a_bridge_alone_honours_its_shutdown_grace(tmp_path, fake):
    """`st-ai bridge --shutdown-grace 1`: its stream is ended after 1 s with an error event
    saying it is shutting down, and a plain request waiting for its answer gets the 503;
    the gRPC server behind it bills what was sent, the bridge exits 0."""
    db_path, key = priced_db(tmp_path)
    db = open_db(db_path)
    channel_store.add(db, "upstream", "openai", fake.base_url, fake.api_key, [MODEL])
    db.close()
    server, server_ready = _start(["grpc", "--db", db_path, "--grpc-port", "0",
                                   "--assets-dir", str(tmp_path / "assets")], r"st-ai gRPC ready: (\S+)")
    try:
        bridge, bridge_ready = _start(["bridge", "--grpc-target", server_ready.group(1), "--http-port", "0",
                                       "--shutdown-grace", "1"], r"st-ai REST bridge ready: (http://\S+)/v1")
        try:
            gateway = Gateway(bridge, db_path, bridge_ready.group(1), server_ready.group(1))
            streams, threads = start_streams(gateway, key, rest=1, over_grpc=0)
            fake.delay = 60  # and a plain request whose upstream has not answered yet
            plain: list = []
            asking = threading.Thread(target=lambda: plain.append(new_rest_request(gateway, key)), daemon=True)
            asking.start()
            until(lambda: len(fake.received) == 2, 10, "the plain request reaching the upstream")
            signalled = time.monotonic()
            bridge.send_signal(signal.SIGTERM)
            for thread in (*threads, asking):
                thread.join(20)
            assert bridge.wait(20) == 0
        finally:
            if bridge.poll() is None:
                bridge.kill()
                bridge.wait(10)
        assert streams[0].ending == "error:shutting_down"
        assert "".join(streams[0].contents) == "".join(PIECES[:HELD_AT - 1])
        assert 0.9 <= streams[0].ended_at - signalled < 8
        [(status, body, _)] = plain
        assert (status, body["error"]["code"]) == (503, "shutting_down")
        rows = until(lambda: len(rows := ledger(db_path)) == 2 and rows, 10, "both requests' ledger rows")
        [streamed] = [r for r in rows if r["stream"]]
        assert streamed["completion_tokens"] > 0 and streamed["cost"] > 0
        assert [r["cost"] for r in rows if not r["stream"]] == [0]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            assert server.wait(20) == 0
        finally:
            if server.poll() is None:
                server.kill()


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted bridge", "untrusted bridge"])
def test_a_separate_bridges_request_accepted_before_the_grpc_servers_sigterm_is_served(
        tmp_path, fake, gate, trusted):
    """`st-ai grpc` drains (a stream held upstream keeps it draining) while a separate
    `st-ai bridge` goes on: a request the bridge accepted before the signal (its body still
    arriving) is in flight, not new, when the server trusts that bridge (`--trusted-bridge`);
    one accepted after is refused."""
    db_path, key = priced_db(tmp_path)
    db = open_db(db_path)
    channel_store.add(db, "upstream", "openai", fake.base_url, fake.api_key, [MODEL])
    db.close()
    trust = ["--trusted-bridge", "127.0.0.1/32"] if trusted else []
    server, server_ready = _start(["grpc", "--db", db_path, "--grpc-port", "0", "--assets-dir",
                                   str(tmp_path / "assets"), *trust], r"st-ai gRPC ready: (\S+)")
    bridge = None
    try:
        bridge, bridge_ready = _start(["bridge", "--grpc-target", server_ready.group(1), "--http-port", "0"],
                                      r"st-ai REST bridge ready: (http://\S+)/v1")
        gateway = Gateway(bridge, db_path, bridge_ready.group(1), server_ready.group(1))
        streams, threads = start_streams(gateway, key, rest=1, over_grpc=0)
        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Slowly"}]}).encode()
        url = urlsplit(gateway.http_url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
        try:
            conn.putrequest("POST", "/v1/chat/completions")
            for name, value in (("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"),
                                ("Content-Length", str(len(body)))):
                conn.putheader(name, value)
            conn.endheaders(body[:10])
            time.sleep(0.3)  # the bridge has the request and waits for the rest of its body
            server.send_signal(signal.SIGTERM)
            until(lambda: grpc_health(gateway) == health_pb2.HealthCheckResponse.NOT_SERVING, 5,
                  "the gRPC server draining")
            conn.send(body[10:])
            response = conn.getresponse()
            answer = json.loads(response.read())
        finally:
            conn.close()
        late_status, late_body, _ = new_rest_request(gateway, key)
        gate.set()  # the held stream ends, and with it the drain
        threads[0].join(20)
        assert server.wait(20) == 0
    finally:
        gate.set()
        for proc in (bridge, server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    assert streams[0].ending == "[DONE]"
    if trusted:
        assert response.status == 200, answer
        assert answer["choices"][0]["message"]["content"] == "Hello from the fake."
        assert [r["status"] for r in ledger(db_path)] == [200, 200]
    else:  # anyone may send the claim: only a trusted bridge is believed
        assert (response.status, answer["error"]["code"]) == (503, "shutting_down")
    assert (late_status, late_body["error"]["code"]) == (503, "shutting_down")
