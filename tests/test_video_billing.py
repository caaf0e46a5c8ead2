"""Video money end to end: real `st-ai serve` processes in front of FakeOpenAI's Videos API
on 127.0.0.1. A create reserves the cost of the seconds it asks upstream; the task settles
exactly once (completed: billed, with its ledger row; failed, timed out, deleted while
open: refunded), also with two processes polling one database and with a delete racing a
completion; a create cut short before a channel accepted its task leaves no task and no
charge, one cut short after keeps its task; Idempotency-Key makes a retried create return
the same task."""
from __future__ import annotations

import http.client
import json
import random
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from urllib.parse import urlsplit

import grpc
import pytest

from server.billing.prices import PriceChanges
from server.store import prices as price_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store import video_money
from server.store import videos as video_store
from server.store.db import open_db
from server.store.videos import VideoTask
from st_ai.v1 import videos_pb2, videos_pb2_grpc
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.openai_upstream import FakeOpenAI, VideoPlan

pytestmark = pytest.mark.timeout(180)

POLL = "0.2"
TIMEOUT = 5  # --video-timeout of the gateways here
ASK = {"seconds": "4", "size": "1280x720"}
PRICE = PriceChanges(per_second={"1280x720": 300_000, "*": 100_000})  # 0.3 a second at 1280x720
COST = 1_200_000  # 4 seconds at 0.3
OPEN = ("queued", "in_progress")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- fixtures and helpers ----------------------------------------------------------------

@pytest.fixture(scope="module")
def fake():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("video-billing") / "st-ai.db")
    open_db(path).close()
    return path


@pytest.fixture(scope="module")
def gw(db_path):
    gateway = start_gateway(db_path, "--video-poll-interval", POLL, "--video-timeout", str(TIMEOUT))
    yield gateway
    stop_gateway(gateway)


@pytest.fixture
def upstream(fake):
    fake.video_plan = VideoPlan(polls_to_finish=3)
    fake.fail_with = None
    return fake


def db_do(path: str, fn, *args, **kwargs):
    db = open_db(path)
    try:
        return fn(db, *args, **kwargs)
    finally:
        db.close()


def priced_model(gw, fake: FakeOpenAI) -> str:
    """A public model of its own (priced per second), served by FakeOpenAI's sora-2."""
    model = unique("sora")
    db_do(gw.db_path, price_store.set_price, model, PRICE)
    gw.channel(unique("ch"), "openai", [model], base_url=fake.base_url, key=fake.api_key,
               model_map={model: "sora-2"})
    return model


def quota_token(gw, quota: int | None = 10 * COST) -> tuple[str, str]:
    name = unique("t")
    _, key = db_do(gw.db_path, lambda db: token_store.create(db, name, quota=quota))
    gw.wait_for(lambda: gw._status("/v1/models", key) == 200, f"token {name}")
    return name, key


def rest(gw, method: str, path: str, key: str, body: dict | None = None, headers: dict | None = None,
         timeout: float = 20) -> tuple[int, dict, dict]:
    url = urlsplit(gw.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        sent = {"Authorization": f"Bearer {key}", **(headers or {})}
        data = None
        if body is not None:
            data, sent["Content-Type"] = json.dumps(body), "application/json"
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw or b"{}")
    finally:
        conn.close()


def create(gw, key: str, model: str, prompt: str | None = None, headers: dict | None = None,
           **fields) -> tuple[int, dict, dict]:
    body = {"model": model, "prompt": prompt or unique("a lighthouse"), **ASK, **fields}
    return rest(gw, "POST", "/v1/videos", key, body, headers)


def created(gw, key: str, model: str, **fields) -> dict:
    status, headers, video = create(gw, key, model, **fields)
    assert status == 200, video
    video["request_id"] = headers["x-request-id"]
    return video


def video(gw, key: str, video_id: str) -> dict:
    status, _, answer = rest(gw, "GET", f"/v1/videos/{video_id}", key)
    assert status == 200, answer
    return answer


def wait_until(condition, what: str, timeout: float = 30, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_final(gw, key: str, video_id: str, timeout: float = 30) -> dict:
    return wait_until(lambda: (v := video(gw, key, video_id))["status"] not in OPEN and v, f"{video_id} to end",
                      timeout)


def submissions(fake: FakeOpenAI, prompts=None) -> list[str]:
    """The prompts FakeOpenAI received a create for (of `prompts`, when given)."""
    sent = [r.body.get("prompt") for r in list(fake.received)
            if r.method == "POST" and r.path == "/v1/videos" and isinstance(r.body, dict)]
    return [p for p in sent if prompts is None or p in prompts]


def status_of(gw, name: str) -> quota_store.QuotaStatus:
    return db_do(gw.db_path, quota_store.status, name)


def ledger(gw, name: str) -> list[dict]:
    def rows(db):
        token = token_store.get(db, name)
        return [dict(r) for r in db.query("SELECT * FROM ledger WHERE token_id = ? ORDER BY id", [token.id])]
    return db_do(gw.db_path, rows)


def video_rows(gw, name: str) -> list[dict]:
    return [r for r in ledger(gw, name) if r["kind"] == "video"]


def reservations(gw, name: str) -> list[dict]:
    def rows(db):
        token = token_store.get(db, name)
        return [dict(r) for r in db.query("SELECT * FROM reservations WHERE token_id = ?", [token.id])]
    return db_do(gw.db_path, rows)


def assert_settled_once(gw, name: str, billed: int) -> None:
    """`billed` tasks were charged, nothing is held any more, and the ledger is `used`."""
    assert reservations(gw, name) == []
    status = status_of(gw, name)
    assert status.used == billed * COST, status
    assert sum(r["cost"] for r in ledger(gw, name)) == status.used


# -- completed, failed, timed out, deleted -----------------------------------------------

def test_completed_video_is_billed_once_with_its_seconds_and_request_id_in_the_ledger(gw, upstream):
    upstream.video_plan = VideoPlan(polls_to_finish=8)
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)
    task = created(gw, key, model)
    # while it renders, its cost is held for it
    wait_until(lambda: submissions(upstream, [task["prompt"]]), "the submission")
    assert status_of(gw, name).reserved == COST and status_of(gw, name).used == 0
    assert wait_final(gw, key, task["id"])["status"] == "completed"
    time.sleep(1)  # more polls: none of them books it again
    assert_settled_once(gw, name, billed=1)
    [row] = video_rows(gw, name)
    assert (row["cost"], row["video_seconds"], row["status"], row["model"]) == (COST, "4", 200, model)
    assert row["request_id"] == task["request_id"] and row["upstream_model"] == "sora-2"


def test_failed_video_is_refunded_once(gw, upstream):
    upstream.video_plan = VideoPlan.moderated(at_poll=2)
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)
    task = created(gw, key, model)
    final = wait_final(gw, key, task["id"])
    assert final["status"] == "failed" and final["error"]["code"] == "moderation_blocked", final
    time.sleep(1)
    assert_settled_once(gw, name, billed=0)
    [row] = video_rows(gw, name)
    assert (row["cost"], row["status"], row["video_seconds"]) == (0, 502, "4")


def test_timed_out_video_is_refunded_once(gw, upstream):
    upstream.video_plan = VideoPlan(never_finish=True)
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)
    task = created(gw, key, model)
    final = wait_final(gw, key, task["id"], timeout=TIMEOUT + 15)
    assert final["status"] == "failed" and final["error"]["code"] == "timeout", final
    time.sleep(1)
    assert_settled_once(gw, name, billed=0)
    [row] = video_rows(gw, name)
    assert (row["cost"], row["status"], row["error_code"]) == (0, 504, "timeout")


def test_video_deleted_before_completion_is_refunded_once(gw, upstream):
    upstream.video_plan = VideoPlan(never_finish=True)
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)
    task = created(gw, key, model)
    wait_until(lambda: video(gw, key, task["id"])["status"] == "in_progress", "rendering")
    assert status_of(gw, name).reserved == COST
    status, _, answer = rest(gw, "DELETE", f"/v1/videos/{task['id']}", key)
    assert status == 200 and answer["deleted"] is True, answer
    assert rest(gw, "DELETE", f"/v1/videos/{task['id']}", key)[0] == 404  # once
    time.sleep(1)
    assert_settled_once(gw, name, billed=0)
    [row] = video_rows(gw, name)
    assert (row["cost"], row["status"], row["error_code"]) == (0, 499, "video_deleted")


def test_deleting_a_completed_video_refunds_nothing(gw, upstream):
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)
    task = created(gw, key, model)
    assert wait_final(gw, key, task["id"])["status"] == "completed"
    assert rest(gw, "DELETE", f"/v1/videos/{task['id']}", key)[0] == 200
    assert_settled_once(gw, name, billed=1)
    assert len(video_rows(gw, name)) == 1


def test_deletes_racing_completions_settle_each_task_once(gw, upstream):
    """Each task is deleted around the moment it completes: whichever wins, it is billed
    (completed first) or refunded (deleted first), never both, never twice."""
    upstream.video_plan = VideoPlan(seconds_to_finish=1.0)
    model = priced_model(gw, upstream)
    name, key = quota_token(gw, quota=None)
    tasks = [created(gw, key, model) for _ in range(8)]
    rng = random.Random(8)
    for task in tasks:
        time.sleep(rng.uniform(0.0, 0.3))
        assert rest(gw, "DELETE", f"/v1/videos/{task['id']}", key)[0] == 200
    time.sleep(3)
    rows = video_rows(gw, name)
    assert sorted(r["request_id"] for r in rows) == sorted(t["request_id"] for t in tasks)  # one row each
    billed = [r for r in rows if r["cost"]]
    assert all(r["status"] == 200 and r["cost"] == COST for r in billed)
    assert all(r["status"] == 499 and r["error_code"] == "video_deleted" for r in rows if not r["cost"])
    assert_settled_once(gw, name, billed=len(billed))


def test_two_processes_polling_one_database_bill_each_task_once(gw, upstream):
    second = start_gateway(gw.db_path, "--video-poll-interval", POLL, "--video-timeout", str(TIMEOUT))
    try:
        model = priced_model(gw, upstream)
        second.wait_for(lambda: second._status("/v1/models", "x") == 401, "second gateway")
        name, key = quota_token(gw)
        second.wait_for(lambda: second._status("/v1/models", key) == 200, "token on the second gateway")
        tasks = [created(g, key, model) for g in (gw, second) * 4]
        for i, task in enumerate(tasks):
            assert wait_final((gw, second)[i % 2], key, task["id"])["status"] == "completed"
        time.sleep(1)
        assert_settled_once(gw, name, billed=len(tasks))
        assert len(video_rows(gw, name)) == len(tasks)
    finally:
        stop_gateway(second)


def test_insufficient_quota_for_a_video_is_429_and_nothing_is_submitted(gw, upstream):
    model = priced_model(gw, upstream)
    name, key = quota_token(gw, quota=COST - 1)
    prompt = unique("too dear")
    status, _, answer = create(gw, key, model, prompt=prompt)
    assert status == 429, answer
    assert answer["error"]["type"] == "insufficient_quota" and answer["error"]["code"] == "insufficient_quota"
    time.sleep(1)
    assert submissions(upstream, [prompt]) == []
    assert rest(gw, "GET", "/v1/videos", key)[2]["data"] == []
    assert status_of(gw, name).used == 0 and reservations(gw, name) == []


def test_a_quota_covering_two_videos_gets_two_then_insufficient_quota(gw, upstream):
    model = priced_model(gw, upstream)
    name, key = quota_token(gw, quota=2 * COST)
    statuses = [create(gw, key, model)[0] for _ in range(3)]
    assert statuses == [200, 200, 429]


# -- creates cut short ----------------------------------------------------------------------

def grpc_create(target: str, key: str, model: str, prompt: str, timeout: float,
                metadata: tuple = ()) -> str | None:
    """The id the client received, or None (DEADLINE_EXCEEDED, CANCELLED...)."""
    with grpc.insecure_channel(target) as channel:
        stub = videos_pb2_grpc.VideosStub(channel)
        try:
            answer = stub.CreateVideo(videos_pb2.CreateVideoRequest(model=model, prompt=prompt, **ASK),
                                      metadata=(("authorization", f"Bearer {key}"), *metadata), timeout=timeout)
        except grpc.RpcError as error:
            assert error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED), error
            return None
        return answer.id


def grpc_cancel(target: str, key: str, model: str, prompt: str, after: float = 0.3) -> None:
    """A create the client cancels after `after` seconds, before any answer came."""
    with grpc.insecure_channel(target) as channel:
        call = videos_pb2_grpc.VideosStub(channel).CreateVideo.future(
            videos_pb2.CreateVideoRequest(model=model, prompt=prompt, **ASK),
            metadata=(("authorization", f"Bearer {key}"),), timeout=10)
        time.sleep(after)
        assert call.cancel(), "the create was answered while the database was locked"


def all_listed(gw, key: str) -> list[dict]:
    videos, after = [], ""
    while True:
        page = rest(gw, "GET", f"/v1/videos?limit=100&order=asc{after}", key)[2]
        videos += page["data"]
        if not page["has_more"]:
            return videos
        after = f"&after={page['last_id']}"


def test_creates_whose_deadline_passes_keep_exactly_the_tasks_a_channel_accepted_billed_once(gw, upstream):
    """The issue's probe (0.5-3 ms deadlines), then deadlines from 3 ms to 1 s, so calls
    end at every point of a create (admission, storing the task, the upstream call,
    recording its acceptance, answering): a task exists exactly when the upstream accepted
    it and st-ai recorded it, whether or not its client got the id; it is billed once;
    nothing cut short is kept, reserved or submitted later."""
    model = priced_model(gw, upstream)
    name, key = quota_token(gw, quota=None)
    rng = random.Random(200)
    deadlines = ([rng.uniform(0.0005, 0.003) for _ in range(100)]
                 + [0.003 * 333 ** rng.random() for _ in range(140)])  # log-uniform, 3 ms to 1 s
    rng.shuffle(deadlines)
    prompts = [unique("probe") for _ in deadlines]
    received: dict[str, str] = {}
    lock = threading.Lock()

    def one(i: int) -> None:
        video_id = grpc_create(gw.grpc_target, key, model, prompts[i], deadlines[i])
        if video_id is not None:
            with lock:
                received[prompts[i]] = video_id

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(deadlines))]
    for batch in range(0, len(threads), 20):
        for thread in threads[batch:batch + 20]:
            thread.start()
        for thread in threads[batch:batch + 20]:
            thread.join(30)
    assert received, "no client received an id: the probe proves nothing"
    assert len(received) < len(prompts), "no create was cut short: the probe proves nothing"
    time.sleep(1.5)  # what the cut-short creates still finish (recording an acceptance) is done
    sent = submissions(upstream, prompts)
    kept = {v["prompt"]: v["id"] for v in all_listed(gw, key)}
    assert received.items() <= kept.items(), "a client got the id of a task that was not kept"
    assert sorted(p for p in sent if p in kept) == sorted(kept), "a kept task was never accepted upstream"
    for video_id in kept.values():
        assert wait_final(gw, key, video_id)["status"] == "completed"
    assert submissions(upstream, prompts) == sent, "a cut-short create was submitted later"
    assert_settled_once(gw, name, billed=len(kept))
    assert len([r for r in video_rows(gw, name) if r["status"] == 200]) == len(kept)


def test_creates_cancelled_while_waiting_are_never_submitted_nor_billed(gw, upstream):
    """The database is busy while the creates run: REST clients leave, gRPC clients cancel
    or their deadlines pass. None of them received an id; none is submitted, reserved or
    billed."""
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)
    prompts = [unique("cancelled") for _ in range(8)]
    url = urlsplit(gw.http_url)
    holder = sqlite3.connect(gw.db_path, timeout=10)
    holder.execute("BEGIN IMMEDIATE")  # every write (the reservation) waits for it
    try:
        grpc_calls = [threading.Thread(target=grpc_create, args=(gw.grpc_target, key, model, p, 0.3))
                      for p in prompts[:2]] + [threading.Thread(target=grpc_cancel, args=(gw.grpc_target, key, model, p))
                                                for p in prompts[2:4]]
        for thread in grpc_calls:
            thread.start()
        for prompt in prompts[4:]:
            with socket.create_connection((url.hostname, url.port), timeout=5) as client:
                body = json.dumps({"model": model, "prompt": prompt, **ASK}).encode()
                client.sendall(b"POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                               + body)
                time.sleep(0.3)  # and the client leaves without an answer
        for thread in grpc_calls:
            thread.join(10)
    finally:
        holder.rollback()
        holder.close()
    time.sleep(2)
    assert submissions(upstream, prompts) == []
    assert rest(gw, "GET", "/v1/videos", key)[2]["data"] == []
    assert status_of(gw, name).used == 0 and reservations(gw, name) == []
    # and the gateway still works for this token
    task = created(gw, key, model)
    assert wait_final(gw, key, task["id"])["status"] == "completed"
    assert_settled_once(gw, name, billed=1)


# -- Idempotency-Key ---------------------------------------------------------------------

def test_a_repeated_idempotency_key_returns_the_same_task_once_submitted_once_billed(gw, upstream):
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)
    prompt, retry = unique("retried"), {"Idempotency-Key": unique("key")}
    first = create(gw, key, model, prompt=prompt, headers=retry)
    again = create(gw, key, model, prompt=prompt, headers=retry)
    assert first[0] == again[0] == 200 and first[2]["id"] == again[2]["id"], (first, again)
    assert wait_final(gw, key, first[2]["id"])["status"] == "completed"
    third = create(gw, key, model, prompt=prompt, headers=retry)  # also after it finished
    assert third[2]["id"] == first[2]["id"] and third[2]["status"] == "completed"
    assert submissions(upstream, [prompt]) == [prompt]
    assert_settled_once(gw, name, billed=1)
    # the same key over gRPC, with the same request: the same task
    assert grpc_create(gw.grpc_target, key, model, prompt, 10, (("idempotency-key", retry["Idempotency-Key"]),)) \
        == first[2]["id"]


def test_an_idempotency_key_reused_with_another_request_is_409(gw, upstream):
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)
    retry = {"Idempotency-Key": unique("key")}
    assert create(gw, key, model, prompt="a fox", headers=retry)[0] == 200
    status, _, answer = create(gw, key, model, prompt="a different fox", headers=retry)
    assert status == 409, answer
    error = answer["error"]
    assert error["code"] == "idempotency_key_reused" and error["type"] == "invalid_request_error"
    assert "Idempotency-Key" in error["message"]
    assert len(rest(gw, "GET", "/v1/videos", key)[2]["data"]) == 1
    # another token's same key is its own
    _, other = quota_token(gw)
    assert create(gw, other, model, prompt="a different fox", headers=retry)[0] == 200


def test_concurrent_creates_with_one_idempotency_key_make_one_task(gw, upstream):
    model = priced_model(gw, upstream)
    name, key = quota_token(gw, quota=2 * COST)  # the repeats must not each reserve the task's cost
    prompt, retry = unique("at once"), {"Idempotency-Key": unique("key")}
    answers: list[tuple[int, dict, dict]] = []
    threads = [threading.Thread(target=lambda: answers.append(create(gw, key, model, prompt=prompt, headers=retry)))
               for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a[0] for a in answers] == [200] * 12, [a[2] for a in answers if a[0] != 200]
    assert len({a[2]["id"] for a in answers}) == 1
    assert wait_final(gw, key, answers[0][2]["id"])["status"] == "completed"
    assert submissions(upstream, [prompt]) == [prompt]
    assert_settled_once(gw, name, billed=1)


def test_a_malformed_idempotency_key_is_400(gw, upstream):
    model = priced_model(gw, upstream)
    _, key = quota_token(gw)
    status, _, answer = create(gw, key, model, headers={"Idempotency-Key": "k" * 256})
    assert status == 400 and answer["error"]["code"] == "invalid_idempotency_key", answer


def test_remix_is_billed_as_a_new_task_and_honours_its_idempotency_key(gw, upstream):
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)
    source = created(gw, key, model)
    assert wait_final(gw, key, source["id"])["status"] == "completed"
    retry = {"Idempotency-Key": unique("remix")}
    remixes = [rest(gw, "POST", f"/v1/videos/{source['id']}/remix", key, {"prompt": "now at night"}, retry)
               for _ in range(2)]
    assert [r[0] for r in remixes] == [200, 200] and remixes[0][2]["id"] == remixes[1][2]["id"], remixes
    assert wait_final(gw, key, remixes[0][2]["id"])["status"] == "completed"
    time.sleep(0.5)
    assert_settled_once(gw, name, billed=2)


def test_a_task_whose_process_died_while_submitting_it_is_dropped_unbilled_and_frees_its_key(gw, upstream):
    """A kill -9 between storing a task and a channel's acceptance being recorded: its
    client never got an answer, so the task (never visible) is dropped, its reservation
    released, its create booked at zero as `not_submitted`, and its key is free again."""
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)
    ended = subprocess.Popen(["true"])
    ended.wait(5)  # a pid no process has any more: the owner is dead
    retry_key = unique("key")

    def left_by_a_killed_process(db) -> str:
        token = token_store.get(db, name)
        channel_id = next(r["id"] for r in db.query("SELECT id, models FROM channels") if model in r["models"])
        now = time.time()
        task = VideoTask(id=video_store.new_id(), token_id=token.id, model=model, channel_id=channel_id,
                         upstream_model="sora-2", request={"model": "sora-2", "prompt": unique("orphan")},
                         asked={"duration": 4.0, "width": 1280, "height": 720}, created_at=int(now),
                         updated_at=int(now), confirmed=0, lease_owner=f"{socket.gethostname()}:{ended.pid}:dead",
                         lease_until=now + 600, next_poll_at=now, charge=COST, request_id=unique("req"),
                         idempotency_key=retry_key, request_hash="0" * 64)
        reservation = quota_store.reserve(db, token.id, COST, "killed-owner")
        task.reservation_id = reservation
        assert video_money.insert(db, task, reservation, 0) is None
        return task.id

    orphan = db_do(gw.db_path, left_by_a_killed_process)
    assert status_of(gw, name).reserved == COST
    assert rest(gw, "GET", f"/v1/videos/{orphan}", key)[0] == 404  # never answered: never seen
    assert rest(gw, "GET", "/v1/videos", key)[2]["data"] == []
    # the poller's housekeeping runs every 5 s
    wait_until(lambda: db_do(gw.db_path, video_store.get, orphan) is None, "the orphan dropped", timeout=20)
    assert_settled_once(gw, name, billed=0)
    [row] = video_rows(gw, name)
    assert (row["cost"], row["status"], row["error_code"]) == (0, 499, "not_submitted")
    status, _, again = create(gw, key, model, headers={"Idempotency-Key": retry_key})
    assert status == 200 and again["id"] != orphan, again


def test_a_task_an_earlier_release_left_unsubmitted_fails_unbilled_and_is_never_sent(gw, upstream):
    """Earlier releases answered a create first and submitted it later; a task they left
    unsubmitted is no longer sent (no one waits on it now): it fails `not_submitted`,
    refunded."""
    model = priced_model(gw, upstream)
    name, key = quota_token(gw)

    def left_by_an_earlier_release(db) -> str:
        token = token_store.get(db, name)
        channel_id = next(r["id"] for r in db.query("SELECT id, models FROM channels") if model in r["models"])
        now = time.time()
        task = VideoTask(id=video_store.new_id(), token_id=token.id, model=model, channel_id=channel_id,
                         upstream_model="sora-2", request={"model": "sora-2", "prompt": unique("old")},
                         asked={"duration": 4.0, "width": 1280, "height": 720}, created_at=int(now),
                         updated_at=int(now), confirmed=1, next_poll_at=now, charge=COST, request_id=unique("req"))
        task.reservation_id = quota_store.reserve(db, token.id, COST, "earlier-release")
        assert video_money.insert(db, task, task.reservation_id, 0) is None
        return task.id

    old = db_do(gw.db_path, left_by_an_earlier_release)
    final = wait_final(gw, key, old, timeout=10)
    assert final["status"] == "failed" and final["error"]["code"] == "not_submitted", final
    assert submissions(upstream, [final["prompt"]]) == []
    assert_settled_once(gw, name, billed=0)


def test_a_video_of_a_model_without_a_price_is_403_under_unpriced_deny(tmp_path, upstream):
    path = str(tmp_path / "st-ai.db")
    open_db(path).close()
    strict = start_gateway(path, "--video-poll-interval", POLL, "--unpriced", "deny")
    try:
        model = unique("unpriced")
        strict.channel(unique("ch"), "openai", [model], base_url=upstream.base_url, key=upstream.api_key,
                       model_map={model: "sora-2"})
        key = strict.token(unique("t"))
        prompt = unique("free ride")
        status, _, answer = create(strict, key, model, prompt=prompt)
        assert status == 403 and answer["error"]["code"] == "model_not_priced", answer
        time.sleep(1)
        assert submissions(upstream, [prompt]) == [] and rest(strict, "GET", "/v1/videos", key)[2]["data"] == []
    finally:
        stop_gateway(strict)
