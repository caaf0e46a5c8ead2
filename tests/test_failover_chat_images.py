"""Chat (plain and streamed) and images when upstreams fail, over REST and gRPC: a real
`st-ai serve` in front of two or three FakeOpenAI servers on 127.0.0.1 whose faults each
test sets (tests/fakes/faults.py). A failure before the first byte falls over to the next
channel and the client gets one clean answer, booked once with every attempt beside it;
every channel failing ends after `--max-attempts` upstream calls; an upstream 400 is the
client's own and is not retried; a stream that stalls after its first bytes ends with an
error event, billed for what was sent; broken answers are a 502; a client that leaves
has its upstream request closed at once, even while the upstream is silent."""
from __future__ import annotations

import http.client
import json
import logging
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import grpc
import openai
import pytest
from google.rpc import status_pb2

from server.billing.prices import PriceChanges
from server.services.chat import CHUNK, COMPLETION
from server.services.images import RESPONSE as IMAGES
from server.store import channels as channel_store
from server.store import prices as price_store
from server.store import tokens as token_store
from server.store.db import open_db
from st_ai.v1 import chat_pb2, chat_pb2_grpc, errors_pb2, images_pb2, images_pb2_grpc
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.faults import Fault, refused_url
from tests.fakes.openai_upstream import FakeOpenAI, StreamPlan
from tests.test_relay_upstream import SSEStream, event_json

pytestmark = pytest.mark.timeout(90)

MAX_ATTEMPTS = 3
FIRST_BYTE = 1.0  # the first-byte limit of a channel a test makes late
IDLE = 1.0  # the idle limit of a channel a test makes stall
QUICKLY = 2.0  # how soon an upstream connection must close after its client left
CLIENT_TIMEOUT = 30  # generous: a test that waits this long has already failed
CHAT, IMAGES_PATH = "/v1/chat/completions", "/v1/images/generations"
PER_TOKEN = PriceChanges(input=1_000_000, output=1_000_000)  # one micro-unit a token
PER_IMAGE = PriceChanges(per_image={"1024x1024": 40_000})
KINDS = ("chat", "stream", "images")
TRANSPORTS = ("rest", "grpc")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("failover") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--max-attempts", str(MAX_ATTEMPTS))
    yield gw
    stop_gateway(gw)


@pytest.fixture
def fakes():
    started: list[FakeOpenAI] = []

    def start() -> FakeOpenAI:
        fake = FakeOpenAI(f"sk-upstream-{uuid.uuid4().hex}").start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        for gate in (fake.stream_plan.gates.values() if fake.stream_plan else ()):
            gate.set()  # a handler held at a gate can finish
        fake.stop()


# -- the gateway's channels and books ----------------------------------------------------

@dataclass
class Upstream:
    """A channel to add: a fake (or just a base URL where nothing listens) and its own limits."""
    fake: FakeOpenAI | None = None
    base_url: str | None = None
    first_byte: float | None = None
    idle: float | None = None

    def hits(self, path: str) -> int:
        return self.fake.faults.hits(path) if self.fake else 0


@dataclass
class Setup:
    model: str
    key: str
    token_name: str
    channel_ids: list[int]
    path: str


def serve(gateway, kind: str, *upstreams: Upstream) -> Setup:
    """A priced model served by `upstreams`, best first, and a token for it. The channels
    get the model (and their own limits) in one commit, so the gateway never routes to
    some of them only."""
    model = f"{kind}-{uuid.uuid4().hex[:10]}"
    db = open_db(gateway.db_path)
    try:
        price_store.set_price(db, model, PER_IMAGE if kind == "images" else PER_TOKEN)
        ids = []
        for rank, upstream in enumerate(upstreams):
            base_url = upstream.base_url or upstream.fake.base_url
            key = upstream.fake.api_key if upstream.fake else "sk-nobody-listens"
            ids.append(channel_store.add(db, f"{model}-{rank}", "openai", base_url, key, [f"{model}-idle"],
                                         priority=len(upstreams) - rank).id)
        with db.conn:
            for channel_id, upstream in zip(ids, upstreams):
                db.conn.execute("UPDATE channels SET models = ?, timeout_first_byte = ?, timeout_idle = ? "
                                "WHERE id = ?", [json.dumps([model]), upstream.first_byte, upstream.idle,
                                                 channel_id])
        token_name = f"t-{model}"
        _, key = token_store.create(db, token_name)
    finally:
        db.close()
    gateway.wait_for(lambda: model in gateway._models(key), f"model {model}")
    return Setup(model, key, token_name, ids, IMAGES_PATH if kind == "images" else CHAT)


def booked(gateway, model: str) -> list[dict]:
    """The model's ledger rows, each with its attempts as (channel_id, status)."""
    db = sqlite3.connect(gateway.db_path, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in db.execute("SELECT * FROM ledger WHERE model = ? ORDER BY id", [model])]
        for row in rows:
            row["attempts"] = [tuple(a) for a in db.execute(
                "SELECT channel_id, status FROM attempts WHERE ledger_id = ? ORDER BY id", [row["id"]])]
        return rows
    finally:
        db.close()


def the_row(gateway, model: str) -> dict:
    """The one ledger row of a request (settled before its answer; a refund may trail by a moment)."""
    deadline = time.monotonic() + 5
    while not (rows := booked(gateway, model)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(rows) == 1, rows
    return rows[0]


# -- asking, over either transport ---------------------------------------------------------

@dataclass
class Reply:
    status: int  # the HTTP status (over gRPC, the one its error detail carries)
    error: dict | None = None  # the error: the whole answer's, or a stream's closing event
    answer: dict | None = None  # chat or images, whole
    chunks: list[dict] = field(default_factory=list)  # a stream's chunks, in order
    done: bool = False  # a stream's `data: [DONE]` (REST) or clean end (gRPC)
    retry_after: str | None = None  # an error answer's Retry-After header (REST) or trailer (gRPC)

    @property
    def text(self) -> str:
        if self.answer is not None:
            return self.answer["choices"][0]["message"]["content"]
        return "".join(c["choices"][0]["delta"].get("content", "") for c in self.chunks if c.get("choices"))


def ask(gateway, transport: str, kind: str, setup: Setup) -> Reply:
    if transport == "rest":
        return _rest(gateway, kind, setup)
    return _grpc(gateway, kind, setup)


def _body(kind: str, model: str) -> dict:
    if kind == "images":
        return {"model": model, "prompt": "a lighthouse", "size": "1024x1024", "response_format": "b64_json"}
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], **({"stream": True} if kind == "stream" else {})}


def _connection(gateway) -> http.client.HTTPConnection:
    url = urlsplit(gateway.http_url)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=CLIENT_TIMEOUT)


def _rest(gateway, kind: str, setup: Setup) -> Reply:
    if kind == "stream":
        stream = SSEStream(gateway, setup.key, _body(kind, setup.model), timeout=CLIENT_TIMEOUT)
        try:
            if stream.response.status != 200:
                return Reply(stream.response.status, json.loads(stream.response.read())["error"],
                             retry_after=stream.response.getheader("Retry-After"))
            reply = Reply(200)
            for event in stream.rest():
                if event == b"data: [DONE]\n\n":
                    reply.done = True
                elif "error" in (data := event_json(event)):
                    reply.error = data["error"]
                else:
                    reply.chunks.append(data)
            return reply
        finally:
            stream.close()
    conn = _connection(gateway)
    try:
        conn.request("POST", setup.path, body=json.dumps(_body(kind, setup.model)),
                     headers={"Authorization": f"Bearer {setup.key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        data = json.loads(response.read())
    finally:
        conn.close()
    if response.status == 200:
        return Reply(response.status, answer=data)
    return Reply(response.status, data["error"], retry_after=response.getheader("Retry-After"))


def _request(kind: str, model: str):
    if kind == "images":
        return images_pb2.CreateImageRequest(model=model, prompt="a lighthouse", size="1024x1024",
                                             response_format="b64_json")
    return chat_pb2.ChatCompletionRequest(model=model, messages=[chat_pb2.ChatMessage(role="user", text="Hi")])


def _grpc_error(error: grpc.RpcError) -> tuple[int, dict]:
    trailers = dict(error.trailing_metadata() or ())
    assert "grpc-status-details-bin" in trailers, (error.code(), error.details())
    detail = errors_pb2.ErrorDetail()
    assert status_pb2.Status.FromString(trailers["grpc-status-details-bin"]).details[0].Unpack(detail)
    return detail.http_status, {"message": detail.message, "type": detail.type, "code": detail.code or None}


def _grpc(gateway, kind: str, setup: Setup) -> Reply:
    metadata = (("authorization", f"Bearer {setup.key}"),)
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        request = _request(kind, setup.model)
        reply = Reply(200)
        try:
            if kind == "images":
                reply.answer = IMAGES.to_dict(images_pb2_grpc.ImagesStub(channel).CreateImage(
                    request, metadata=metadata, timeout=CLIENT_TIMEOUT))
            elif kind == "chat":
                reply.answer = COMPLETION.to_dict(chat_pb2_grpc.ChatStub(channel).CreateChatCompletion(
                    request, metadata=metadata, timeout=CLIENT_TIMEOUT))
            else:
                for message in chat_pb2_grpc.ChatStub(channel).StreamChatCompletion(
                        request, metadata=metadata, timeout=CLIENT_TIMEOUT):
                    reply.chunks.append(CHUNK.to_dict(message))
                reply.done = True
        except grpc.RpcError as error:
            status, reply.error = _grpc_error(error)
            if not reply.chunks:  # the error is the answer; after chunks, it is the stream's end
                reply.status = status
                reply.retry_after = dict(error.trailing_metadata() or ()).get("retry-after")
        return reply


def assert_clean_answer(kind: str, reply: Reply) -> None:
    assert reply.status == 200 and reply.error is None, reply
    if kind == "images":
        assert len(reply.answer["data"]) == 1 and reply.answer["data"][0]["b64_json"]
    elif kind == "chat":
        assert reply.text == "Hello from the fake."
    else:
        assert reply.done and reply.text == "Hello!", reply
        assert [c["choices"][0]["delta"].get("content") for c in reply.chunks if c.get("choices")] == \
            ["", "Hel", "lo", "!", None]  # each chunk once, in order


# What one request costs on FakeOpenAI's answers: its usage (11+5 plain, 9+3 streamed) at
# one micro-unit a token, or one 1024x1024 image.
COST = {"chat": 16, "stream": 12, "images": 40_000}


# -- failures before the first byte fall over ----------------------------------------------

FAULTS = {
    "connection refused": None,
    "reset": Fault.reset(),
    "500": Fault.error(500),
    "502": Fault.error(502),
    "503": Fault.error(503, retry_after="1"),
    "504": Fault.error(504),
    "529": Fault.error(529, "Overloaded"),
    "429 with Retry-After": Fault.error(429, "Rate limit reached", retry_after="2", code="rate_limit_exceeded"),
    "first byte too late": Fault.delay(FIRST_BYTE + 3),
    "malformed SSE": Fault.malformed_sse(),
    "non-JSON chunk": Fault.non_json_chunk(),
    "truncated JSON": Fault.truncated_json(),
    "JSON that is no object": Fault.not_an_object(),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_failing_channel_falls_over_to_the_next_and_the_client_gets_one_answer_billed_once(
        gateway, fakes, transport, kind, fault):
    good = Upstream(fakes())
    if fault == "connection refused":
        bad = Upstream(base_url=refused_url())
    else:
        bad = Upstream(fakes(), first_byte=FIRST_BYTE)
    setup = serve(gateway, kind, bad, good)
    if bad.fake:
        bad.fake.faults.add(setup.path, FAULTS[fault])

    reply = ask(gateway, transport, kind, setup)

    assert_clean_answer(kind, reply)
    assert (bad.hits(setup.path), good.hits(setup.path)) == ((0, 1) if fault == "connection refused" else (1, 1))
    row = the_row(gateway, setup.model)
    assert (row["status"], row["channel_id"], row["cost"]) == (200, setup.channel_ids[1], COST[kind])
    (failed_on, failed_status), won = row["attempts"]
    assert failed_on == setup.channel_ids[0] and failed_status in (429, 502, 503, 504), row["attempts"]
    assert won == (setup.channel_ids[1], 200)
    if fault == "first byte too late":  # the late attempt's connection was not left open
        assert wait(lambda: bad.fake.faults.gone(setup.path) == 1, QUICKLY + FIRST_BYTE)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stream_whose_first_event_is_late_falls_over_though_its_headers_came(gateway, fakes, transport):
    thinking, good = Upstream(fakes(), first_byte=FIRST_BYTE), Upstream(fakes())
    setup = serve(gateway, "stream", thinking, good)
    thinking.fake.stream_plan = StreamPlan([_chunk(setup.model, "late")], gates={0: threading.Event()})

    reply = ask(gateway, transport, "stream", setup)

    assert_clean_answer("stream", reply)
    assert thinking.fake.connection_closed.wait(QUICKLY), "the late stream was left open"
    row = the_row(gateway, setup.model)
    assert (row["status"], row["cost"]) == (200, COST["stream"])
    assert row["attempts"] == [(setup.channel_ids[0], 504), (setup.channel_ids[1], 200)]


# -- every channel failing --------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_channel_failing_ends_after_max_attempts_with_one_clear_error(gateway, fakes, transport, kind):
    first, second = Upstream(fakes()), Upstream(fakes())
    setup = serve(gateway, kind, first, second)
    for upstream in (first, second):
        upstream.fake.faults.always(setup.path, Fault.error(503))

    reply = ask(gateway, transport, kind, setup)

    assert reply.status in (502, 503) and not reply.chunks, reply
    assert reply.error["code"] in ("upstream_error", "no_available_channel"), reply.error
    assert "upstream" in reply.error["message"].lower(), reply.error
    assert first.hits(setup.path) + second.hits(setup.path) == MAX_ATTEMPTS
    row = the_row(gateway, setup.model)
    assert (row["status"], row["cost"]) == (reply.status, 0)
    assert len(row["attempts"]) == MAX_ATTEMPTS and all(s >= 500 for _, s in row["attempts"])


# -- upstreams rate limiting st-ai ---------------------------------------------------------------

def rate_limited(retry_after: str) -> Fault:
    return Fault.error(429, "Rate limit reached", retry_after=retry_after, code="rate_limit_exceeded")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_upstreams_rate_limiting_st_ai_tell_the_client_when_the_soonest_channel_is_free_again(
        gateway, fakes, transport, kind):
    first, second = Upstream(fakes()), Upstream(fakes())
    setup = serve(gateway, kind, first, second)
    first.fake.faults.add(setup.path, rate_limited("30"))
    second.fake.faults.add(setup.path, rate_limited("10"))

    reply = ask(gateway, transport, kind, setup)

    assert (reply.status, reply.error["code"]) == (503, "upstream_rate_limited"), reply
    assert reply.retry_after in ("9", "10"), reply  # second's ten seconds, counted from its answer
    assert first.hits(setup.path) == second.hits(setup.path) == 1  # both rest until then
    assert the_row(gateway, setup.model)["status"] == 503


def test_the_openai_sdk_waits_the_retry_after_and_its_retry_is_answered(gateway, fakes, caplog):
    first, second = Upstream(fakes()), Upstream(fakes())
    setup = serve(gateway, "chat", first, second)
    first.fake.faults.add(CHAT, rate_limited("2"))
    second.fake.faults.add(CHAT, rate_limited("2"))
    client = openai.OpenAI(base_url=gateway.base_url, api_key=setup.key, max_retries=1,
                           timeout=CLIENT_TIMEOUT)

    with caplog.at_level(logging.INFO, logger="openai._base_client"):
        completion = client.chat.completions.create(model=setup.model, messages=[{"role": "user", "content": "Hi"}])

    # The SDK's own backoff would be under a second, while both channels still rest: it
    # waited the gateway's Retry-After instead, and by then a channel could answer.
    assert "Retrying request in 2.000000 seconds" in caplog.text, caplog.text
    assert completion.choices[0].message.content == "Hello from the fake."
    assert first.hits(CHAT) + second.hits(CHAT) == 3


# -- the client's own fault ---------------------------------------------------------------------

@pytest.mark.parametrize("status", [400, 413, 422])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_upstream_client_error_is_returned_to_the_client_and_not_retried(gateway, fakes, transport, kind, status):
    first, second = Upstream(fakes()), Upstream(fakes())
    setup = serve(gateway, kind, first, second)
    first.fake.faults.add(setup.path, Fault.error(status, "Invalid value for 'temperature'.", code="invalid_value"))

    reply = ask(gateway, transport, kind, setup)

    assert reply.status == status, reply
    assert reply.error["message"] == "Invalid value for 'temperature'." and reply.error["code"] == "invalid_value"
    assert (first.hits(setup.path), second.hits(setup.path)) == (1, 0)
    row = the_row(gateway, setup.model)
    assert (row["status"], row["cost"], row["attempts"]) == (status, 0, [(setup.channel_ids[0], status)])


# -- after the first byte: no retry ---------------------------------------------------------------

def _chunk(model: str, content: str | None, finish: str | None = None) -> dict:
    delta = {} if content is None else {"content": content}
    return {"id": "chatcmpl-plan", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stream_that_stalls_after_three_chunks_ends_with_an_error_event_billed_for_the_three(
        gateway, fakes, transport):
    stalling, spare = Upstream(fakes(), idle=IDLE), Upstream(fakes())
    setup = serve(gateway, "stream", stalling, spare)
    planned = [_chunk(setup.model, text) for text in ("Once", " upon", " a")]
    stalling.fake.stream_plan = StreamPlan([*planned, _chunk(setup.model, " time"), _chunk(setup.model, None, "stop")],
                                           gates={3: threading.Event()})

    started = time.monotonic()
    reply = ask(gateway, transport, "stream", setup)

    assert reply.status == 200 and reply.chunks == planned and not reply.done, reply
    assert reply.error["code"] == "upstream_timeout" and "stalled" in reply.error["message"], reply.error
    assert time.monotonic() - started < IDLE + 10
    assert (stalling.hits(CHAT), spare.hits(CHAT)) == (1, 0)
    assert stalling.fake.connection_closed.wait(QUICKLY), "the stalled upstream request was left open"
    row = the_row(gateway, setup.model)
    assert (row["status"], row["error_code"]) == (504, "upstream_timeout")
    assert row["completion_tokens"] > 0 and row["cost"] > 0
    assert row["attempts"] == [(setup.channel_ids[0], 504)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_broken_event_after_the_first_bytes_ends_the_stream_with_a_502_event(gateway, fakes, transport):
    broken, spare = Upstream(fakes()), Upstream(fakes())
    setup = serve(gateway, "stream", broken, spare)
    planned = [_chunk(setup.model, "Half")]
    broken.fake.stream_plan = StreamPlan([*planned, ["not", "an", "object"], _chunk(setup.model, " more")])

    reply = ask(gateway, transport, "stream", setup)

    assert reply.status == 200 and reply.chunks == planned and not reply.done, reply
    assert reply.error["type"] == "upstream_error" and reply.error["code"] in ("upstream_error", "upstream_bad_answer")
    assert (broken.hits(CHAT), spare.hits(CHAT)) == (1, 0)
    row = the_row(gateway, setup.model)
    assert row["status"] == 502 and row["cost"] > 0


# -- broken answers with nowhere to fall over to ----------------------------------------------------

BROKEN = ("malformed SSE", "non-JSON chunk", "truncated JSON", "JSON that is no object")


@pytest.mark.parametrize("fault", BROKEN)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_broken_upstream_answer_is_a_502_never_a_500_nor_a_hang(gateway, fakes, transport, kind, fault):
    only = Upstream(fakes())
    setup = serve(gateway, kind, only)
    only.fake.faults.always(setup.path, FAULTS[fault])

    started = time.monotonic()
    reply = ask(gateway, transport, kind, setup)

    assert reply.status == 502 and not reply.chunks, reply
    assert reply.error["type"] == "upstream_error" and reply.error["code"] in ("upstream_error", "upstream_bad_answer")
    assert time.monotonic() - started < 10
    assert only.hits(setup.path) == MAX_ATTEMPTS  # retryable: the one channel was asked again
    assert the_row(gateway, setup.model)["cost"] == 0


# -- the client leaves ------------------------------------------------------------------------------

def wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _raw_request(gateway, kind: str, setup: Setup) -> socket.socket:
    url = urlsplit(gateway.http_url)
    body = json.dumps(_body(kind, setup.model)).encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=CLIENT_TIMEOUT)
    sock.sendall(f"POST {setup.path} HTTP/1.1\r\nHost: st-ai\r\nAuthorization: Bearer {setup.key}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


class Leaving:
    """A request whose client goes away on `leave()`: a closed socket (REST) or a
    cancelled call (gRPC)."""

    def __init__(self, gateway, transport: str, kind: str, setup: Setup) -> None:
        self.transport = transport
        if transport == "rest":
            self.sock = _raw_request(gateway, kind, setup)
            return
        self.channel = grpc.insecure_channel(gateway.grpc_target)
        metadata = (("authorization", f"Bearer {setup.key}"),)
        request = _request(kind, setup.model)
        if kind == "images":
            self.call = images_pb2_grpc.ImagesStub(self.channel).CreateImage.future(
                request, metadata=metadata, timeout=CLIENT_TIMEOUT)
        elif kind == "chat":
            self.call = chat_pb2_grpc.ChatStub(self.channel).CreateChatCompletion.future(
                request, metadata=metadata, timeout=CLIENT_TIMEOUT)
        else:
            self.call = chat_pb2_grpc.ChatStub(self.channel).StreamChatCompletion(
                request, metadata=metadata, timeout=CLIENT_TIMEOUT)

    def first_chunk(self) -> None:
        """Reads the stream until its first chunk has come."""
        if self.transport == "rest":
            seen = b""
            while b"data: " not in seen:
                data = self.sock.recv(65536)
                assert data, seen
                seen += data
        else:
            next(self.call)

    def leave(self) -> float:
        if self.transport == "rest":
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        else:
            self.call.cancel()
            self.channel.close()
        return time.monotonic()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_client_leaving_while_the_upstream_is_silent_before_answering_closes_the_upstream_request(
        gateway, fakes, transport, kind):
    silent = Upstream(fakes())
    setup = serve(gateway, kind, silent)
    silent.fake.faults.add(setup.path, Fault.delay(60))  # no status line, no byte

    client = Leaving(gateway, transport, kind, setup)
    assert wait(lambda: silent.hits(setup.path) == 1, 10), "the request never reached the upstream"
    time.sleep(0.3)  # the gateway is now waiting on the upstream
    left = client.leave()

    assert wait(lambda: silent.fake.faults.gone(setup.path) == 1, QUICKLY), "the upstream request outlived its client"
    assert time.monotonic() - left < QUICKLY
    assert silent.hits(setup.path) == 1  # not sent again elsewhere
    row = the_row(gateway, setup.model)
    assert (row["status"], row["cost"]) == (499, 0)


@pytest.mark.parametrize("held_before", [0, 1], ids=["before the first event", "between events"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_client_leaving_a_silent_stream_closes_the_upstream_request(gateway, fakes, transport, held_before):
    silent = Upstream(fakes())
    setup = serve(gateway, "stream", silent)
    silent.fake.stream_plan = StreamPlan([_chunk(setup.model, "Hi"), _chunk(setup.model, "!")],
                                         gates={held_before: threading.Event()})

    client = Leaving(gateway, transport, "stream", setup)
    assert wait(lambda: silent.hits(CHAT) == 1, 10)
    if held_before:
        client.first_chunk()
    else:
        time.sleep(0.3)  # headers sent, the upstream "thinking"
    left = client.leave()

    assert silent.fake.connection_closed.wait(QUICKLY), "the upstream request outlived its client"
    assert time.monotonic() - left < QUICKLY
    row = the_row(gateway, setup.model)
    assert row["status"] == 499
    assert (row["cost"] > 0) == bool(held_before)  # what was streamed is owed, nothing else
