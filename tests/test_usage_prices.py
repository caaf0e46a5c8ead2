"""Each kind of price gives the exact cost the table says, seen by the operator in
`st-ai token show` and in `st-ai usage`: chat and images after real requests through a
running st-ai in front of FakeOpenAI (127.0.0.1); video seconds from ledger rows written as
video settlement writes them (a video is settled by the poller, not by a client request)."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from server.billing.cost import video_cost
from server.billing.prices import DEFAULT_RESOLUTION, PriceChanges
from server.store import channels as channel_store
from server.store import prices as price_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store.db import open_db
from server.store.quota import LedgerRow, Settlement
from tests.test_cli import run
from tests.test_quota_relay import chat, post, priced_model, quota_token
from tests.test_quota_relay import fake, upstream  # noqa: F401  (pytest fixtures)

pytestmark = pytest.mark.timeout(120)


def answer_with_usage(model: str, prompt: int, completion: int, cached: int = 0) -> dict:
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": cached}}}


def operator_sees(gateway, name: str) -> tuple[str, dict]:
    """(`token show --json`'s used, the one total row of `usage --token NAME --json`)."""
    shown = run("token", "show", name, "--json", db=gateway.db_path)
    assert shown.code == 0, shown.err
    usage = run("usage", "--token", name, "--by", "model", "--json", db=gateway.db_path)
    assert usage.code == 0, usage.err
    [row] = json.loads(usage.out)
    return json.loads(shown.out)["used"], row


CHAT_CASES = {
    # price, (prompt, completion, cached) the upstream reports, the exact cost
    "input": (PriceChanges(input=2_500_000), (1000, 100, 0), "0.0025"),
    "cached input": (PriceChanges(input=2_000_000, cached_input=500_000), (1000, 0, 600), "0.0011"),
    "output": (PriceChanges(output=10_000_000), (1000, 300, 0), "0.003"),
    "per request": (PriceChanges(per_request=7_000), (1000, 300, 0), "0.007"),
    "rounded once, half up": (PriceChanges(input=1_500_000), (1, 0, 0), "0.000002"),
    # 234 * 2.5 + 1000 * 1.25 + 77 * 10 = 2605 micro-units, + 0.001 per request
    "all together": (PriceChanges(input=2_500_000, cached_input=1_250_000, output=10_000_000, per_request=1_000),
                     (1234, 77, 1000), "0.003605"),
}


@pytest.mark.parametrize("case", CHAT_CASES)
def test_each_token_price_gives_the_exact_cost_in_token_show_and_usage(gateway, upstream, case):
    price, (prompt, completion, cached), cost = CHAT_CASES[case]
    model = priced_model(gateway, upstream, price)
    name, key = quota_token(gateway, 1_000_000)
    upstream.completion = answer_with_usage(model, prompt, completion, cached)
    assert chat(gateway, key, model, max_tokens=500)[0] == 200
    used, row = operator_sees(gateway, name)
    assert used == cost
    assert row == {"model": model, "requests": 1, "errors": 0, "prompt_tokens": prompt, "cached_tokens": cached,
                   "cache_write_tokens": 0, "completion_tokens": completion, "images": 0, "video_seconds": "0", "cost": cost}


def test_images_are_priced_by_size_and_quality_in_token_show_and_usage(gateway, upstream):
    model = priced_model(gateway, upstream, PriceChanges(
        per_image={"1024x1024:hd": 80_000, "1024x1024": 40_000, "512x512": 18_000}))
    name, key = quota_token(gateway, 1_000_000)
    for n, size, quality in ((2, "1024x1024", "hd"), (1, "1024x1024", "standard"), (3, "512x512", None)):
        body = {"model": model, "prompt": "a fox", "n": n, "size": size, **({"quality": quality} if quality else {})}
        assert post(gateway, key, "/v1/images/generations", body)[0] == 200
    used, row = operator_sees(gateway, name)
    # 2 * 0.08 (hd) + 1 * 0.04 (any other quality of the size) + 3 * 0.018
    assert used == row["cost"] == "0.254"
    assert (row["requests"], row["images"]) == (3, 6)


def test_video_seconds_are_priced_by_resolution_in_token_show_and_usage(gateway):
    """Ledger rows as a completed video's settlement writes them: kind video, the seconds
    asked upstream as exact decimal text, the cost from the model's price."""
    model = f"sora-{uuid.uuid4().hex[:8]}"
    name = f"t-{uuid.uuid4().hex[:8]}"
    db = open_db(gateway.db_path)
    try:
        price_store.set_price(db, model, PriceChanges(per_second={"720p": 300_000, DEFAULT_RESOLUTION: 100_000}))
        channel = channel_store.add(db, f"ch-{model}", "simulator", "", "", [model], {}, 0)
        token, _ = token_store.create(db, name, quota=10_000_000)
        price = price_store.lookup(db, model)
        rows = []
        for seconds, size in (("5.5", "1280x720"), ("4", "1920x1080")):
            rows.append(LedgerRow(ts=time.time(), request_id=None, token_id=token.id, model=model, upstream_model=model,
                                  channel_id=channel.id, kind="video", status=200, video_seconds=seconds,
                                  cost=video_cost(price, model, seconds=seconds, size=size)))
        quota_store.settle_many(db, [Settlement(None, r) for r in rows])
    finally:
        db.close()
    used, row = operator_sees(gateway, name)
    # 5.5 s at 720p * 0.3 + 4 s at any other resolution * 0.1
    assert used == row["cost"] == "2.05"
    assert (row["requests"], row["video_seconds"]) == (2, "9.5")
