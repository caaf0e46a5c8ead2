"""A video create falls over across channels before it answers, over REST and gRPC: a real
`st-ai serve` in front of two fake OpenAI Videos APIs (and two fake Klings) on 127.0.0.1,
whose faults each test sets. The create answers `queued` once a channel accepted the task;
the task is then polled on that channel, completes and is billed once, its ledger row
carrying every attempt. When every attempt fails, the client gets one 502/503 after
--max-attempts upstream calls and no task is left behind; an upstream 400 is returned
after one call."""
from __future__ import annotations

import http.client
import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc
import pytest
from google.rpc import status_pb2

from server.billing.prices import PriceChanges
from server.store import prices as price_store
from server.store import tokens as token_store
from server.store.db import open_db
from st_ai.v1 import errors_pb2, videos_pb2, videos_pb2_grpc
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.faults import Fault, refused_url
from tests.fakes.kling import FakeKling
from tests.fakes.openai_upstream import FakeOpenAI, VideoPlan

pytestmark = pytest.mark.timeout(180)

POLL = "0.2"
FIRST_BYTE = 1.0  # the gateway's --timeout-first-byte
MAX_ATTEMPTS = 3
ASK = {"seconds": "4", "size": "1280x720"}
PRICE = PriceChanges(per_second={"1280x720": 300_000, "*": 100_000})
COST = 1_200_000  # 4 seconds at 0.3
CREATES = "/v1/videos"
KLING_CREATES = "/v1/videos/text2video"
TRANSPORTS = ["rest", "grpc"]
FAULTS = {
    "connection refused": None,
    "500": Fault.error(500),
    "503": Fault.error(503),
    "529": Fault.error(529),
    "429 with Retry-After": Fault.error(429, retry_after="2"),
    "404 on its endpoint (a misconfigured channel)": Fault.error(404),
    "first byte later than the limit": Fault.delay(3 * FIRST_BYTE),
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def first():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def second():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def klings():
    fakes = FakeKling().start(), FakeKling().start()
    yield fakes
    for fake in fakes:
        fake.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("video-failover") / "st-ai.db")
    open_db(path).close()
    gateway = start_gateway(path, "--video-poll-interval", POLL, "--timeout-first-byte", str(FIRST_BYTE),
                            "--max-attempts", str(MAX_ATTEMPTS))
    yield gateway
    stop_gateway(gateway)


@pytest.fixture(autouse=True)
def healthy(first, second, klings):
    """Every test starts with upstreams that work and count from zero."""
    for fake in (first, second, *klings):
        fake.faults.clear()
        fake.received.clear()
    for fake in (first, second):
        fake.video_plan = VideoPlan(polls_to_finish=2)


# -- helpers ---------------------------------------------------------------------------------

def db_do(gw, fn, *args):
    db = open_db(gw.db_path)
    try:
        return fn(db, *args)
    finally:
        db.close()


@dataclass(frozen=True)
class Pair:
    """A public model served by a primary channel (tried first) and a backup."""
    model: str
    primary: int
    backup: int


def channel_id(gw, name: str) -> int:
    return db_do(gw, lambda db: db.execute("SELECT id FROM channels WHERE name = ?", [name]).fetchone()[0])


def openai_pair(gw, first: FakeOpenAI, second: FakeOpenAI, primary_url: str | None = None) -> Pair:
    model = unique("sora")
    db_do(gw, price_store.set_price, model, PRICE)
    names = unique("primary"), unique("backup")
    gw.channel(names[0], "openai", [model], base_url=primary_url or first.base_url, key=first.api_key,
               model_map={model: "sora-2"}, priority=10)
    gw.channel(names[1], "openai", [model], base_url=second.base_url, key=second.api_key,
               model_map={model: "sora-2"}, priority=0)
    return Pair(model, channel_id(gw, names[0]), channel_id(gw, names[1]))


def token(gw) -> tuple[str, str]:
    name = unique("t")
    _, key = db_do(gw, lambda db: token_store.create(db, name, quota=10 * COST))
    gw.wait_for(lambda: gw._status("/v1/models", key) == 200, f"token {name}")
    return name, key


def rest(gw, method: str, path: str, key: str, body: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    url = urlsplit(gw.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        sent = {"Authorization": f"Bearer {key}", **(headers or {})}
        data = None
        if body is not None:
            data, sent["Content-Type"] = json.dumps(body), "application/json"
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def create(gw, transport: str, key: str, model: str, prompt: str, ask: dict = ASK,
           idempotency_key: str | None = None) -> tuple[int, dict]:
    """(HTTP status, the video or {"error": ...}), as the client saw it over `transport`."""
    if transport == "rest":
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return rest(gw, "POST", "/v1/videos", key, {"model": model, "prompt": prompt, **ask}, headers)
    metadata = [("authorization", f"Bearer {key}")]
    if idempotency_key:
        metadata.append(("idempotency-key", idempotency_key))
    with grpc.insecure_channel(gw.grpc_target) as channel:
        try:
            video = videos_pb2_grpc.VideosStub(channel).CreateVideo(
                videos_pb2.CreateVideoRequest(model=model, prompt=prompt, **ask), metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            return grpc_error(error)
    return 200, {"id": video.id, "status": video.status}


def grpc_error(error: grpc.RpcError) -> tuple[int, dict]:
    trailers = dict(error.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    detail = errors_pb2.ErrorDetail()
    assert status.details[0].Unpack(detail)
    return detail.http_status, {"error": {"message": detail.message, "type": detail.type, "code": detail.code,
                                          "param": detail.param or None}}


def wait_final(gw, key: str, video_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, video = rest(gw, "GET", f"/v1/videos/{video_id}", key)
        assert status == 200, video
        if video["status"] not in ("queued", "in_progress"):
            return video
        time.sleep(0.1)
    raise AssertionError(f"{video_id} did not end within {timeout} s")


def listed(gw, key: str) -> list[dict]:
    status, page = rest(gw, "GET", "/v1/videos", key)
    assert status == 200, page
    return page["data"]


def sent_prompts(fake, path: str = CREATES) -> list[str]:
    return [r.body.get("prompt") for r in list(fake.received)
            if r.method == "POST" and r.path == path and isinstance(r.body, dict)]


def ledger(gw, name: str) -> list[dict]:
    def rows(db):
        token_id = token_store.get(db, name).id
        return [dict(r) for r in db.query("SELECT * FROM ledger WHERE token_id = ? ORDER BY id", [token_id])]
    return db_do(gw, rows)


def attempts(gw, ledger_id: int) -> list[tuple[int, int]]:
    return db_do(gw, lambda db: [tuple(r) for r in db.execute(
        "SELECT channel_id, status FROM attempts WHERE ledger_id = ? ORDER BY id", [ledger_id])])


def money(gw, name: str) -> tuple[int, int]:
    """(micro-units still reserved, used) for the token."""
    def read(db):
        token_id = token_store.get(db, name).id
        held = db.execute("SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE token_id = ?",
                          [token_id]).fetchone()[0]
        return held, token_store.get(db, name).used
    return db_do(gw, read)


def wait_for_row(gw, name: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = ledger(gw, name)
        if rows:
            assert len(rows) == 1, rows
            return rows[0]
        time.sleep(0.05)
    raise AssertionError(f"no ledger row for {name} within {timeout} s")


# -- a failing first channel: the create lands on the next ----------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_a_create_the_first_channel_fails_lands_on_the_next_completes_there_and_is_billed_once(
        gw, first, second, transport, fault):
    pair = openai_pair(gw, first, second, primary_url=refused_url() if fault is None else None)
    if fault is not None:
        first.faults.add(CREATES, fault)
    name, key = token(gw)
    prompt = unique("a harbour at dawn")

    status, video = create(gw, transport, key, pair.model, prompt)

    assert status == 200, video
    assert video["status"] == "queued" and video["id"].startswith("video_")
    assert sent_prompts(second) == [prompt]  # accepted by the backup, once
    if fault is not None:
        assert first.faults.hits(CREATES) == 1
    assert [v["id"] for v in listed(gw, key)] == [video["id"]]
    assert wait_final(gw, key, video["id"])["status"] == "completed"
    assert sent_prompts(second) == [prompt]  # polled where it was accepted, never sent again
    (row,) = ledger(gw, name)
    assert (row["status"], row["cost"], row["channel_id"]) == (200, COST, pair.backup)
    tried = attempts(gw, row["id"])
    assert [channel for channel, _ in tried] == [pair.primary, pair.backup]
    assert tried[0][1] >= 429 and tried[1][1] == 200
    assert money(gw, name) == (0, COST)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_when_every_channel_fails_the_create_is_one_error_after_max_attempts_and_leaves_no_task(
        gw, first, second, transport):
    pair = openai_pair(gw, first, second)
    first.faults.always(CREATES, Fault.error(503))
    second.faults.always(CREATES, Fault.error(500))
    name, key = token(gw)

    status, answer = create(gw, transport, key, pair.model, unique("a storm"))

    assert status in (502, 503), answer
    assert answer["error"]["message"] and answer["error"]["type"] in ("upstream_error", "service_unavailable_error")
    assert first.faults.hits(CREATES) + second.faults.hits(CREATES) == MAX_ATTEMPTS
    assert listed(gw, key) == []
    row = wait_for_row(gw, name)
    assert (row["status"], row["cost"]) == (status, 0)
    assert len(attempts(gw, row["id"])) == MAX_ATTEMPTS
    assert money(gw, name) == (0, 0)
    time.sleep(4 * float(POLL))  # nothing is left to be submitted later
    assert first.faults.hits(CREATES) + second.faults.hits(CREATES) == MAX_ATTEMPTS
    assert listed(gw, key) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_upstream_400_is_returned_after_one_call_and_leaves_no_task(gw, first, second, transport):
    pair = openai_pair(gw, first, second)
    first.faults.add(CREATES, Fault.error(400, "Your prompt was refused.", code="invalid_value"))
    name, key = token(gw)

    status, answer = create(gw, transport, key, pair.model, unique("a refused prompt"))

    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error"
    assert first.faults.hits(CREATES) == 1 and second.faults.hits(CREATES) == 0
    assert listed(gw, key) == []
    row = wait_for_row(gw, name)
    assert (row["status"], row["cost"]) == (400, 0)
    assert attempts(gw, row["id"]) == [(pair.primary, 400)]
    assert money(gw, name) == (0, 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_repeated_idempotency_key_answers_the_task_the_backup_accepted(gw, first, second, transport):
    pair = openai_pair(gw, first, second)
    first.faults.add(CREATES, Fault.error(503))
    name, key = token(gw)
    prompt, idempotency_key = unique("a lighthouse"), unique("key")

    answers = [create(gw, transport, key, pair.model, prompt, idempotency_key=idempotency_key) for _ in range(2)]

    assert [status for status, _ in answers] == [200, 200], answers
    assert answers[0][1]["id"] == answers[1][1]["id"]
    assert sent_prompts(second) == [prompt] and first.faults.hits(CREATES) == 1
    assert wait_final(gw, key, answers[0][1]["id"])["status"] == "completed"
    (row,) = ledger(gw, name)
    assert (row["status"], row["cost"]) == (200, COST)


def test_a_client_that_leaves_before_any_channel_accepted_leaves_no_task_and_no_charge(gw, first, second):
    pair = openai_pair(gw, first, second)
    first.faults.add(CREATES, Fault.delay(0.8 * FIRST_BYTE))  # slow, but within the limit
    name, key = token(gw)
    with grpc.insecure_channel(gw.grpc_target) as channel:
        call = videos_pb2_grpc.VideosStub(channel).CreateVideo.future(
            videos_pb2.CreateVideoRequest(model=pair.model, prompt=unique("a gone client"), **ASK),
            metadata=(("authorization", f"Bearer {key}"),), timeout=30)
        time.sleep(0.3)
        assert call.cancel(), "the create was answered before the client left"
    row = wait_for_row(gw, name)
    assert (row["status"], row["cost"], row["error_code"]) == (499, 0, "client_closed")
    assert attempts(gw, row["id"]) == [(pair.primary, 499)]
    assert second.faults.hits(CREATES) == 0  # the attempt was not carried on elsewhere
    assert listed(gw, key) == [] and money(gw, name) == (0, 0)


def test_a_client_that_leaves_after_a_channel_accepted_still_has_its_task_listed_polled_and_billed(
        gw, first, second):
    pair = openai_pair(gw, first, second)
    first.faults.add(CREATES, Fault.delay(0.5 * FIRST_BYTE))  # time to hold the database meanwhile
    name, key = token(gw)
    prompt = unique("a kept task")
    holder = sqlite3.connect(gw.db_path, timeout=10)
    try:
        with grpc.insecure_channel(gw.grpc_target) as channel:
            call = videos_pb2_grpc.VideosStub(channel).CreateVideo.future(
                videos_pb2.CreateVideoRequest(model=pair.model, prompt=prompt, **ASK),
                metadata=(("authorization", f"Bearer {key}"),), timeout=30)
            gw.wait_for(lambda: first.faults.hits(CREATES) == 1, "the create to reach the upstream")
            holder.execute("BEGIN IMMEDIATE")  # st-ai cannot record the acceptance until it ends
            gw.wait_for(lambda: sent_prompts(first) == [prompt], "the upstream to accept the task")
            time.sleep(0.3)  # st-ai has the answer and waits for the database
            assert call.cancel(), "the create was answered while the database was held"
    finally:
        holder.rollback()
        holder.close()
    gw.wait_for(lambda: len(listed(gw, key)) == 1, "the accepted task to be listed")
    (video,) = listed(gw, key)
    assert wait_final(gw, key, video["id"])["status"] == "completed"
    assert sent_prompts(first) == [prompt] and second.faults.hits(CREATES) == 0
    (row,) = ledger(gw, name)
    assert (row["status"], row["cost"], row["channel_id"]) == (200, COST, pair.primary)
    assert money(gw, name) == (0, COST)


def test_a_remix_the_source_channel_fails_once_is_tried_there_again_and_answers_queued(gw, first, second):
    pair = openai_pair(gw, first, second)
    name, key = token(gw)
    status, source = create(gw, "rest", key, pair.model, unique("a source"))
    assert status == 200 and wait_final(gw, key, source["id"])["status"] == "completed", source
    channel, upstream_id = db_do(gw, lambda db: db.execute(
        "SELECT channel_id, upstream_id FROM videos WHERE id = ?", [source["id"]]).fetchone())
    assert channel == pair.primary
    remixes = f"/v1/videos/{upstream_id}/remix"
    first.faults.add(remixes, Fault.error(503))

    status, remix = rest(gw, "POST", f"/v1/videos/{source['id']}/remix", key, {"prompt": "now at night"})

    assert status == 200 and remix["status"] == "queued", remix
    assert first.faults.hits(remixes) == 2  # the only channel with the source, tried again
    assert wait_final(gw, key, remix["id"])["status"] == "completed"
    remix_row = ledger(gw, name)[-1]
    assert (remix_row["status"], remix_row["cost"]) == (200, COST)
    assert attempts(gw, remix_row["id"]) == [(pair.primary, 502), (pair.primary, 200)]


# -- another provider type -------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", [None, Fault.error(503), Fault.error(500), Fault.error(404)],
                         ids=["connection refused", "503", "500", "404 on its endpoint"])
def test_a_kling_create_falls_over_to_the_next_kling_channel(gw, klings, transport, fault):
    one, other = klings
    model, names = unique("kling"), (unique("kling-primary"), unique("kling-backup"))
    gw.channel(names[0], "kling", [model], base_url=refused_url("") if fault is None else one.base_url, key=one.key,
               model_map={model: "kling-v2-6"}, priority=10)
    gw.channel(names[1], "kling", [model], base_url=other.base_url, key=other.key,
               model_map={model: "kling-v2-6"}, priority=0)
    if fault is not None:
        one.faults.add(KLING_CREATES, fault)
    name, key = token(gw)
    prompt = unique("a kite over dunes")

    status, video = create(gw, transport, key, model, prompt, ask={"seconds": "5"})

    assert status == 200 and video["status"] == "queued", video
    assert sent_prompts(other, KLING_CREATES) == [prompt]
    assert wait_final(gw, key, video["id"])["status"] == "completed"
    (row,) = ledger(gw, name)
    assert row["status"] == 200 and row["channel_id"] == channel_id(gw, names[1])
    assert [channel for channel, _ in attempts(gw, row["id"])] == [channel_id(gw, n) for n in names]
