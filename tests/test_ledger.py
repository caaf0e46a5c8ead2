"""The ledger: one row per client request whose token authenticated, against a real
`st-ai serve` in front of FakeOpenAI on 127.0.0.1. Rows are found by the request's
`x-request-id`. A request that tried several channels is one row with its attempts
beside it; requests refused before anything went upstream are rows too, at zero cost
with their status and code; a wrong key is no row; prices the CLI changes are used by
the running server from its next refresh; and the ledger always sums to `used`."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import grpc
import pytest

from server.billing.prices import PriceChanges
from server.store import prices as price_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store.db import open_db
from st_ai.v1 import chat_pb2, chat_pb2_grpc
from tests.conftest import ROOT, Gateway, start_gateway, stop_gateway
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.timeout(120)

HI = [{"role": "user", "content": "Hi"}]
UPSTREAM_DOWN = (500, {"error": {"message": "The server had an error.", "type": "server_error",
                                 "param": None, "code": None}})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def fakes():
    started = [FakeOpenAI().start() for _ in range(3)]
    yield started
    for fake in started:
        fake.stop()


@pytest.fixture
def upstreams(fakes):
    for fake in fakes:
        fake.fail_with, fake.completion, fake.stream_plan, fake.delay = None, None, None, 0.0
        fake.received.clear()
    return fakes


def add_channel(gateway: Gateway, fake: FakeOpenAI, models: list[str], priority: int = 0,
                type: str = "openai") -> str:
    name = unique("ch")
    gateway.channel(name, type, models, base_url=fake.base_url, key=fake.api_key, priority=priority)
    return name


def new_token(gateway: Gateway, quota: int | None = None, models: list[str] | None = None) -> tuple[str, str]:
    name = unique("t")
    db = open_db(gateway.db_path)
    try:
        _, key = token_store.create(db, name, models, quota=quota)
    finally:
        db.close()
    gateway.wait_for(lambda: gateway._status("/v1/models", key) == 200, f"token {name}")
    return name, key


def set_price(gateway: Gateway, model: str, changes: PriceChanges) -> None:
    db = open_db(gateway.db_path)
    try:
        price_store.set_price(db, model, changes)
    finally:
        db.close()


def post(gateway: Gateway, key: str, path: str, body: dict | bytes, request_id: str | None = None,
         timeout: float = 20) -> tuple[int, bytes]:
    url = urlsplit(gateway.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if request_id:
        headers["x-request-id"] = request_id
    try:
        conn.request("POST", path, body=body if isinstance(body, bytes) else json.dumps(body), headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def query(gateway: Gateway, sql: str, params: list) -> list[dict]:
    db = open_db(gateway.db_path)
    try:
        return [dict(r) for r in db.query(sql, params)]
    finally:
        db.close()


def rows_for(gateway: Gateway, request_id: str) -> list[dict]:
    return query(gateway, "SELECT * FROM ledger WHERE request_id = ?", [request_id])


def attempts_of(gateway: Gateway, ledger_id: int) -> list[dict]:
    return query(gateway, "SELECT a.*, c.name AS channel FROM attempts a LEFT JOIN channels c ON c.id = a.channel_id "
                          "WHERE ledger_id = ? ORDER BY a.id", [ledger_id])


def booked(gateway: Gateway, request_id: str) -> dict:
    """The request's one ledger row (refusals are committed before the answer is sent)."""
    rows = rows_for(gateway, request_id)
    assert len(rows) == 1, rows
    return rows[0]


def used_and_ledger_sum(gateway: Gateway, name: str) -> tuple[int, int]:
    db = open_db(gateway.db_path)
    try:
        token = token_store.get(db, name)
        return quota_store.status(db, name).used, quota_store.ledger_total(db, token.id)
    finally:
        db.close()


def sse_events(raw: bytes) -> list[str]:
    return [line[len(b"data: "):].decode() for line in raw.split(b"\n") if line.startswith(b"data: ")]


# -- one row per request, attempts beside it --------------------------------------------------

def test_a_request_that_tried_three_channels_is_one_row_with_three_attempts(gateway, upstreams):
    first, second, healthy = upstreams
    model = unique("fallback-model")
    down_a = add_channel(gateway, first, [model], priority=30)
    down_b = add_channel(gateway, second, [model], priority=20)
    up = add_channel(gateway, healthy, [model], priority=10)
    first.fail_with = second.fail_with = UPSTREAM_DOWN
    _, key = new_token(gateway)
    for stream in (False, True):
        rid = unique("req")
        status, raw = post(gateway, key, "/v1/chat/completions",
                           {"model": model, "messages": HI, "stream": stream}, rid)
        assert status == 200, raw
        if stream:
            assert sse_events(raw)[-1] == "[DONE]"
        row = booked(gateway, rid)
        assert (row["status"], row["stream"], row["model"], row["upstream_model"]) == (200, stream, model, model)
        # the fake's usage: 11/5 for a whole answer, 9/3 for a stream
        assert (row["prompt_tokens"], row["completion_tokens"]) == ((9, 3) if stream else (11, 5))
        assert row["latency_ms"] is not None
        assert (row["ttft_ms"] is not None) == stream
        tried = attempts_of(gateway, row["id"])
        assert [(a["channel"], a["status"]) for a in tried] == [(down_a, 502), (down_b, 502), (up, 200)]
        assert all(a["upstream_model"] == model and a["latency_ms"] >= 0 for a in tried)
        assert tried[0]["error_code"] == tried[1]["error_code"] == "upstream_error"
        assert row["channel_id"] == query(gateway, "SELECT id FROM channels WHERE name = ?", [up])[0]["id"]


def test_a_request_every_channel_failed_is_one_row_naming_the_last_channel_tried(gateway, upstreams):
    first, second, _ = upstreams
    model = unique("all-down-model")
    better = add_channel(gateway, first, [model], priority=20)
    worse = add_channel(gateway, second, [model], priority=10)
    first.fail_with = second.fail_with = UPSTREAM_DOWN
    _, key = new_token(gateway)
    rid = unique("req")
    status, _ = post(gateway, key, "/v1/chat/completions", {"model": model, "messages": HI}, rid)
    assert status == 502
    gateway.wait_for(lambda: len(rows_for(gateway, rid)) == 1, "the failed request's row")
    row = booked(gateway, rid)
    assert (row["status"], row["error_code"], row["cost"]) == (502, "upstream_error", 0)
    tried = attempts_of(gateway, row["id"])
    # `serve --max-attempts` (3 by default): each channel once, then round again from the best
    assert [(a["channel"], a["status"]) for a in tried] == [(better, 502), (worse, 502), (better, 502)]
    assert row["channel_id"] == tried[-1]["channel_id"]


def test_images_are_one_row_with_their_attempt_and_image_count(gateway, upstreams):
    fake = upstreams[0]
    model = unique("img-model")
    add_channel(gateway, fake, [model])
    set_price(gateway, model, PriceChanges(per_image={"1024x1024": 40_000}))
    name, key = new_token(gateway, quota=1_000_000)
    rid = unique("req")
    status, raw = post(gateway, key, "/v1/images/generations",
                       {"model": model, "prompt": "a red fox", "n": 2, "size": "1024x1024"}, rid)
    assert status == 200, raw
    row = booked(gateway, rid)
    assert (row["kind"], row["api"], row["images"], row["cost"], row["status"]) == ("images", "images", 2, 80_000, 200)
    assert [a["status"] for a in attempts_of(gateway, row["id"])] == [200]
    assert used_and_ledger_sum(gateway, name) == (80_000, 80_000)


# -- refusals ---------------------------------------------------------------------------------

def test_every_kind_of_refusal_is_one_zero_cost_row_with_its_status_and_code(gateway, upstreams):
    fake = upstreams[0]
    model, forbidden, video_only = unique("m"), unique("forbidden"), unique("video-only")
    add_channel(gateway, fake, [model, forbidden])
    add_channel(gateway, fake, [video_only], type="runway")  # serves no chat: no channel for it
    set_price(gateway, model, PriceChanges(per_request=10_000))
    name, key = new_token(gateway, quota=5_000, models=[model, video_only])  # less than one request
    refusals = {
        "validation": ("/v1/chat/completions", {"model": model, "messages": HI, "temperature": 3},
                       400, "invalid_value"),
        "unknown model": ("/v1/chat/completions", {"model": unique("nobody-serves"), "messages": HI},
                          404, "model_not_found"),
        "model not allowed": ("/v1/chat/completions", {"model": forbidden, "messages": HI},
                              403, "model_not_allowed"),
        "no channel": ("/v1/chat/completions", {"model": video_only, "messages": HI},
                       503, "no_available_channel"),
        "insufficient quota": ("/v1/chat/completions", {"model": model, "messages": HI},
                               429, "insufficient_quota"),
        "insufficient quota, streamed": ("/v1/chat/completions", {"model": model, "messages": HI, "stream": True},
                                         429, "insufficient_quota"),
        "bad image request": ("/v1/images/generations", {"model": model, "prompt": "x", "n": 11}, 400, "invalid_value"),
        "bad video body": ("/v1/videos", {"model": model}, 400, "missing_required_parameter"),
        "unknown video model": ("/v1/videos", {"model": unique("no-video"), "prompt": "a cat"},
                                404, "model_not_found"),
    }
    for what, (path, body, status, code) in refusals.items():
        rid = unique("req")
        got, raw = post(gateway, key, path, body, rid)
        assert got == status, (what, raw)
        assert json.loads(raw)["error"]["code"] == code, (what, raw)
        row = booked(gateway, rid)
        assert (row["status"], row["error_code"], row["cost"]) == (status, code, 0), what
        assert row["kind"] == ("video" if "video" in path else "images" if "images" in path else "chat"), what
        assert row["api"] == ("videos" if "video" in path else "images" if "images" in path else "chat"), what
        assert attempts_of(gateway, row["id"]) == [], what
        if isinstance(body.get("model"), str):
            assert row["model"] == body["model"], what
    assert fake.received == []  # none of them went upstream
    assert used_and_ledger_sum(gateway, name) == (0, 0)


def test_a_model_without_a_price_under_unpriced_deny_is_a_403_row(tmp_path, upstreams):
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--unpriced", "deny")
    try:
        model = unique("unpriced")
        add_channel(gw, upstreams[0], [model])
        _, key = new_token(gw)
        rid = unique("req")
        assert post(gw, key, "/v1/chat/completions", {"model": model, "messages": HI}, rid)[0] == 403
        row = booked(gw, rid)
        assert (row["status"], row["error_code"], row["cost"], row["model"]) == (403, "model_not_priced", 0, model)
    finally:
        stop_gateway(gw)


def test_a_wrong_key_is_no_ledger_row(gateway):
    rid = unique("req")
    status, _ = post(gateway, "sk-not-a-key", "/v1/chat/completions", {"model": "m", "messages": HI}, rid)
    assert status == 401
    time.sleep(0.3)  # a row, were one written, would be committed before the answer
    assert rows_for(gateway, rid) == []


# -- prices in memory -------------------------------------------------------------------------

def test_a_price_set_by_the_cli_is_used_by_the_running_server_from_its_next_refresh(gateway, upstreams):
    model = unique("m")
    add_channel(gateway, upstreams[0], [model])
    set_price(gateway, model, PriceChanges(per_request=1_000))
    name, key = new_token(gateway, quota=10_000_000)
    gateway.wait_for(lambda: post(gateway, key, "/v1/chat/completions", {"model": model, "messages": HI})[0] == 200
                     and used_and_ledger_sum(gateway, name)[0] > 0, "the first price")
    cli = subprocess.run([sys.executable, "-m", "server.cli", "price", "set", model, "--per-request", "0.25",
                          "--db", gateway.db_path], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "ST_AI_LOG_LEVEL": "WARNING"})
    assert cli.returncode == 0, cli.stderr
    changed = time.monotonic()

    def charged_at_new_price() -> bool:
        rid = unique("req")
        assert post(gateway, key, "/v1/chat/completions", {"model": model, "messages": HI}, rid)[0] == 200
        return booked(gateway, rid)["cost"] == 250_000

    gateway.wait_for(charged_at_new_price, "the new price", timeout=5)
    assert time.monotonic() - changed < 2.0  # the server refreshes every 0.25 s
    used, total = used_and_ledger_sum(gateway, name)
    assert used == total and used > 250_000


# -- client address, request id, stream flag ---------------------------------------------------

def grpc_chat(gateway: Gateway, key: str, model: str, request_id: str) -> None:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        chat_pb2_grpc.ChatStub(channel).CreateChatCompletion(
            chat_pb2.ChatCompletionRequest(model=model, messages=[chat_pb2.ChatMessage(role="user", text="Hi")]),
            metadata=(("authorization", f"Bearer {key}"), ("x-request-id", request_id)), timeout=20)


def test_a_grpc_request_is_booked_under_its_request_id(gateway, upstreams):
    model = unique("m")
    add_channel(gateway, upstreams[0], [model])
    _, key = new_token(gateway)
    rid = unique("req")
    grpc_chat(gateway, key, model, rid)
    row = booked(gateway, rid)
    assert (row["status"], row["model"], row["stream"]) == (200, model, 0)


def test_the_client_address_is_recorded_over_rest_and_grpc(gateway, upstreams):
    model = unique("m")
    add_channel(gateway, upstreams[0], [model])
    _, key = new_token(gateway)
    rest, over_grpc = unique("req"), unique("req")
    assert post(gateway, key, "/v1/chat/completions", {"model": model, "messages": HI}, rest)[0] == 200
    grpc_chat(gateway, key, model, over_grpc)
    assert booked(gateway, rest)["client_address"] == "127.0.0.1"
    assert booked(gateway, over_grpc)["client_address"] == "127.0.0.1"


def test_the_ledger_sums_to_used_after_answers_refusals_and_failures(gateway, upstreams):
    fake = upstreams[0]
    model = unique("m")
    add_channel(gateway, fake, [model])
    set_price(gateway, model, PriceChanges(input=1_000_000, output=2_000_000))
    name, key = new_token(gateway, quota=100_000)
    for body in ({"model": model, "messages": HI}, {"model": model, "messages": HI, "stream": True},
                 {"model": model, "messages": HI, "temperature": 9}, {"model": model, "messages": HI}):
        post(gateway, key, "/v1/chat/completions", body)
    fake.fail_with = UPSTREAM_DOWN
    post(gateway, key, "/v1/chat/completions", {"model": model, "messages": HI})
    gateway.wait_for(lambda: len(query(gateway, "SELECT id FROM ledger WHERE token_id = "
                                                "(SELECT id FROM tokens WHERE name = ?)", [name])) == 5, "5 rows")
    used, total = used_and_ledger_sum(gateway, name)
    assert used == total > 0
    db = open_db(gateway.db_path)
    try:
        assert quota_store.status(db, name).reserved == 0
    finally:
        db.close()
