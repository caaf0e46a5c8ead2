"""Quotas end to end: a real `st-ai serve` (one or two processes on one database) in front of
FakeOpenAI on 127.0.0.1. Every request is reserved at its worst case before it goes upstream
and settled at its real cost before the client gets its answer; the ledger's sum is always the
token's `used`."""
from __future__ import annotations

import http.client
import json
import threading
import uuid
from urllib.parse import urlsplit

import pytest

from server.billing import estimate
from server.billing.prices import PriceChanges
from server.store import prices as price_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.timeout(120)

HI = [{"role": "user", "content": "Hi"}]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def fake():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def upstream(fake):
    fake.fail_with, fake.completion, fake.stream_plan, fake.delay = None, None, None, 0.0
    fake.received.clear()
    return fake


def priced_model(gateway, fake: FakeOpenAI, changes: PriceChanges) -> str:
    model = unique("gpt-4o-mini")
    db = open_db(gateway.db_path)
    try:
        price_store.set_price(db, model, changes)
    finally:
        db.close()
    gateway.channel(unique("ch"), "openai", [model], base_url=fake.base_url, key=fake.api_key)
    return model


def quota_token(gateway, quota: int | None) -> tuple[str, str]:
    """A token with `quota` micro-units, known to the server; returns (name, key)."""
    name = unique("t")
    db = open_db(gateway.db_path)
    try:
        _, key = token_store.create(db, name, quota=quota)
    finally:
        db.close()
    gateway.wait_for(lambda: gateway._status("/v1/models", key) == 200, f"token {name}")
    return name, key


def post(gateway, key: str, path: str, body: dict, timeout: float = 20) -> tuple[int, dict]:
    url = urlsplit(gateway.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def chat(gateway, key: str, model: str, **extra) -> tuple[int, dict]:
    return post(gateway, key, "/v1/chat/completions", {"model": model, "messages": HI, **extra})


def chat_at_once(gateways: list, key: str, model: str) -> list[int]:
    """One chat request per entry of `gateways`, all in flight together; their statuses."""
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda gw=gw: statuses.append(chat(gw, key, model)[0])) for gw in gateways]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def status_of(gateway, name: str) -> quota_store.QuotaStatus:
    db = open_db(gateway.db_path)
    try:
        return quota_store.status(db, name)
    finally:
        db.close()


def ledger(gateway, name: str) -> list[dict]:
    db = open_db(gateway.db_path)
    try:
        token = token_store.get(db, name)
        return [dict(r) for r in db.query("SELECT * FROM ledger WHERE token_id = ? ORDER BY id", [token.id])]
    finally:
        db.close()


def assert_ledger_matches_used(gateway, name: str) -> None:
    assert sum(r["cost"] for r in ledger(gateway, name)) == status_of(gateway, name).used


# -- one process -----------------------------------------------------------------------------

def test_a_quota_covering_five_requests_gets_five_answers_then_insufficient_quota(gateway, upstream):
    model = priced_model(gateway, upstream, PriceChanges(per_request=10_000))  # 0.01 a request
    name, key = quota_token(gateway, 50_000)
    for _ in range(5):
        assert chat(gateway, key, model)[0] == 200
    sent = len(upstream.received)
    status, body = chat(gateway, key, model)
    assert status == 429
    assert body["error"]["type"] == "insufficient_quota" and body["error"]["code"] == "insufficient_quota"
    assert len(upstream.received) == sent  # nothing went upstream
    quota = status_of(gateway, name)
    assert (quota.used, quota.reserved, quota.remaining) == (50_000, 0, 0)
    assert_ledger_matches_used(gateway, name)


def test_fifty_concurrent_requests_never_overspend_a_small_quota(gateway, upstream):
    upstream.delay = 0.05  # requests overlap in flight
    model = priced_model(gateway, upstream, PriceChanges(per_request=10_000))
    name, key = quota_token(gateway, 50_000)
    statuses = chat_at_once([gateway] * 50, key, model)
    assert statuses.count(200) == 5 and statuses.count(429) == 45
    assert status_of(gateway, name).used == 50_000
    assert_ledger_matches_used(gateway, name)


def test_token_and_cached_token_prices_give_the_exact_cost_in_token_show(gateway, upstream):
    # 2.00 per 1M input, 1.00 per 1M cached input, 8.00 per 1M output
    model = priced_model(gateway, upstream, PriceChanges(input=2_000_000, cached_input=1_000_000, output=8_000_000))
    name, key = quota_token(gateway, 1_000_000)
    upstream.completion = {
        "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1100, "completion_tokens": 500, "total_tokens": 1600,
                  "prompt_tokens_details": {"cached_tokens": 400}}}
    assert chat(gateway, key, model, max_tokens=1000)[0] == 200
    # 700 * 2 + 400 * 1 + 500 * 8 = 5800 micro-units
    from tests.test_cli import run
    shown = json.loads(run("token", "show", name, "--json", db=gateway.db_path).out)
    assert (shown["used"], shown["remaining"]) == ("0.0058", "0.9942")
    [row] = ledger(gateway, name)
    assert (row["prompt_tokens"], row["cached_tokens"], row["completion_tokens"], row["cost"], row["estimate"]) == (
        1100, 400, 500, 5800, 0)


def test_an_answer_without_usage_is_counted_locally_and_marked_an_estimate(gateway, upstream):
    model = priced_model(gateway, upstream, PriceChanges(input=1_000_000, output=1_000_000))
    name, key = quota_token(gateway, 1_000_000)
    upstream.completion = {
        "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "one two three four"},
                     "finish_reason": "stop"}]}
    assert chat(gateway, key, model, max_tokens=50)[0] == 200
    [row] = ledger(gateway, name)
    # the prompt as counted with the model's encoding, not the bytes it was reserved at
    prompt = estimate.Prompt({"model": model, "messages": HI, "max_tokens": 50}, model)
    assert row["estimate"] == 1 and row["completion_tokens"] == 4
    assert row["prompt_tokens"] == prompt.exact() < prompt.bound
    assert row["cost"] == row["prompt_tokens"] + 4 == status_of(gateway, name).used


def test_a_quota_below_the_prompts_byte_bound_but_above_its_exact_count_is_enough(gateway, upstream):
    model = priced_model(gateway, upstream, PriceChanges(input=1_000_000, output=1_000_000))  # 1 a token
    asked = {"model": model, "messages": [{"role": "user", "content": "hello " * 300}], "max_tokens": 20}
    prompt = estimate.Prompt(asked, model)
    quota = prompt.exact() + 20 + 10
    assert quota < prompt.bound + 20
    name, key = quota_token(gateway, quota)
    status, _ = post(gateway, key, "/v1/chat/completions", asked)
    assert status == 200
    assert status_of(gateway, name).used == 16  # FakeOpenAI's usage


def test_a_request_refused_upstream_costs_nothing_and_releases_its_reservation(gateway, upstream):
    model = priced_model(gateway, upstream, PriceChanges(per_request=10_000))
    name, key = quota_token(gateway, 50_000)
    upstream.fail_with = (400, {"error": {"message": "bad", "type": "invalid_request_error",
                                          "param": None, "code": "bad_thing"}})
    assert chat(gateway, key, model)[0] == 400
    gateway.wait_for(lambda: len(ledger(gateway, name)) == 1, "the failure's ledger row")
    quota = status_of(gateway, name)
    assert (quota.used, quota.reserved) == (0, 0)
    [row] = ledger(gateway, name)
    assert (row["status"], row["cost"]) == (400, 0)


def test_images_are_charged_per_image_by_size_and_quality(gateway, upstream):
    model = priced_model(gateway, upstream, PriceChanges(per_image={"1024x1024:hd": 80_000, "1024x1024": 40_000}))
    name, key = quota_token(gateway, 1_000_000)
    status, body = post(gateway, key, "/v1/images/generations",
                        {"model": model, "prompt": "a cat", "n": 2, "size": "1024x1024", "quality": "hd"})
    assert status == 200 and len(body["data"]) == 2
    assert status_of(gateway, name).used == 160_000
    [row] = ledger(gateway, name)
    assert (row["kind"], row["images"], row["cost"]) == ("images", 2, 160_000)


def test_images_the_quota_cannot_cover_are_refused_before_going_upstream(gateway, upstream):
    model = priced_model(gateway, upstream, PriceChanges(per_image={"1024x1024": 40_000}))
    _, key = quota_token(gateway, 100_000)
    sent = len(upstream.received)
    status, body = post(gateway, key, "/v1/images/generations",
                        {"model": model, "prompt": "a cat", "n": 3, "size": "1024x1024"})
    assert status == 429 and body["error"]["code"] == "insufficient_quota"
    assert len(upstream.received) == sent


def test_an_unpriced_model_is_served_free_with_one_warning(tmp_path, upstream):
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path)
    try:
        model = unique("no-price-model")
        gw.channel(unique("ch"), "openai", [model], base_url=upstream.base_url, key=upstream.api_key)
        name, key = quota_token(gw, 1)
        for _ in range(3):
            assert chat(gw, key, model)[0] == 200
        assert status_of(gw, name).used == 0
    finally:
        stop_gateway(gw)
    output = gw.proc.stdout.read()
    assert output.count(f"model '{model}' has no price") == 1


def test_under_unpriced_deny_a_model_without_a_price_is_refused_until_it_has_one(tmp_path, upstream):
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--unpriced", "deny")
    try:
        model = unique("no-price-model")
        gw.channel(unique("ch"), "openai", [model], base_url=upstream.base_url, key=upstream.api_key)
        name, key = quota_token(gw, None)
        status, answer = chat(gw, key, model)
        assert status == 403, answer
        assert answer["error"]["code"] == "model_not_priced" and answer["error"]["param"] == "model"
        assert answer["error"]["type"] == "permission_error" and model in answer["error"]["message"]
        assert upstream.received == []  # refused before anything went upstream
        db = open_db(db_path)
        try:
            price_store.set_price(db, model, PriceChanges(per_request=10_000))
        finally:
            db.close()
        # prices are held in memory: the new one is used from the server's next refresh
        gw.wait_for(lambda: chat(gw, key, model)[0] == 200, "the new price to be used")
        assert status_of(gw, name).used == 10_000
    finally:
        stop_gateway(gw)


# -- two processes on one database ------------------------------------------------------------

def test_two_processes_on_one_database_never_overspend_a_quota(tmp_path, upstream):
    upstream.delay = 0.05
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    first = start_gateway(db_path)
    second = start_gateway(db_path)
    try:
        model = priced_model(first, upstream, PriceChanges(per_request=10_000))
        second.wait_for(lambda: model in second._models(quota_token(second, None)[1]), "the channel")
        name, key = quota_token(first, 50_000)
        second.wait_for(lambda: second._status("/v1/models", key) == 200, "the token")
        statuses = chat_at_once([first, second] * 25, key, model)
        assert statuses.count(200) == 5 and statuses.count(429) == 45
        assert status_of(first, name).used == 50_000
        assert_ledger_matches_used(first, name)
    finally:
        stop_gateway(first)
        stop_gateway(second)
