"""Embeddings in the relay core, without transports: the request checks, the encoding
conversion (pure), and the relay itself on a real database, calling the real OpenAI
provider against a real fake upstream on 127.0.0.1."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import struct

import aiohttp
import pytest

from server.billing.admission import Admission
from server.billing.embedding_tokens import input_tokens
from server.billing.group_commit import GroupCommit
from server.billing.prices import PriceChanges
from server.catalog import Catalog
from server.core.attempts import AttemptLoop
from server.core.resilience import Resilience
from server.embedding_vectors import BadVector, fit, from_base64, to_base64
from server.embeddings_relay import MAX_INPUTS, EmbeddingsRelay, validate_embeddings
from server.errors import GatewayError
from server.providers.interface import Upstream
from server.providers.registry import Registry
from server.store import channels as channel_store
from server.store import prices as price_store
from server.store import tokens as token_store
from server.store.db import DbWorker, open_db
from server.store.rate_limits import Limits
from tests.fakes.faults import Fault
from tests.fakes.openai_upstream import FakeOpenAI, fake_embedding

pytestmark = pytest.mark.timeout(60)
PATH = "/v1/embeddings"


# -- encodings (pure) ---------------------------------------------------------------------

def test_base64_is_little_endian_float32_as_openai_writes_it():
    vector = [0.5, -0.25, 1.0, 0.1]
    raw = base64.b64decode(to_base64(vector))
    assert raw == struct.pack("<4f", *vector)
    assert from_base64(to_base64(vector)) == list(struct.unpack("<4f", raw))


def test_floats_read_from_base64_are_the_float32_values_openai_would_have_written():
    vector = fake_embedding("a lighthouse", 16)
    assert from_base64(to_base64(vector)) == vector


def test_fit_turns_each_vector_into_the_encoding_the_client_asked_for():
    floats = {"object": "list", "model": "m", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 2]}]}
    as_base64 = fit(floats, "base64", 1)
    assert as_base64["data"][0]["embedding"] == to_base64([0.5, 2.0])
    assert fit(as_base64, "float", 1)["data"][0]["embedding"] == [0.5, 2.0]
    assert fit(floats, "float", 1)["data"][0]["embedding"] == [0.5, 2]  # floats pass through as sent


def test_fit_puts_embeddings_in_input_order():
    answer = {"data": [{"index": 1, "embedding": [1.0]}, {"index": 0, "embedding": [0.0]}]}
    assert [d["embedding"] for d in fit(answer, "float", 2)["data"]] == [[0.0], [1.0]]


@pytest.mark.parametrize("answer", [
    {"data": [{"index": 0, "embedding": [0.1]}]},                            # one embedding for two inputs
    {"data": [{"index": 0, "embedding": [0.1]}, {"index": 0, "embedding": [0.2]}]},  # an input twice
    {"data": [{"index": 0, "embedding": "not base64!"}, {"index": 1, "embedding": [0.1]}]},
    {"data": [{"index": 0, "embedding": "AAAAAAA="}, {"index": 1, "embedding": [0.1]}]},  # 5 bytes
    {"data": [{"index": 0, "embedding": [0.1, "x"]}, {"index": 1, "embedding": [0.1]}]},
    {"data": [{"index": 0, "embedding": None}, {"index": 1, "embedding": [0.1]}]},
    {"data": "nothing"},
])
def test_an_answer_that_is_not_one_embedding_per_input_is_refused(answer):
    with pytest.raises(BadVector):
        fit(answer, "float", 2)


# -- request checks -----------------------------------------------------------------------

@pytest.mark.parametrize("body, param, code", [
    ({"input": "x"}, "model", "missing_required_parameter"),
    ({"model": "m"}, "input", "missing_required_parameter"),
    ({"model": "m", "input": ""}, "input", "invalid_value"),
    ({"model": "m", "input": []}, "input", "invalid_value"),
    ({"model": "m", "input": ["a", ""]}, "input[1]", "invalid_value"),
    ({"model": "m", "input": ["a"] * (MAX_INPUTS + 1)}, "input", "invalid_value"),
    ({"model": "m", "input": [[1, 2], []]}, "input[1]", "invalid_value"),
    ({"model": "m", "input": [1, 2.5]}, "input[1]", "invalid_value"),
    ({"model": "m", "input": [1, -2]}, "input[1]", "invalid_value"),
    ({"model": "m", "input": [[1, True]]}, "input[0][1]", "invalid_value"),
    ({"model": "m", "input": 42}, "input", "invalid_type"),
    ({"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format", "invalid_value"),
    ({"model": "m", "input": "x", "dimensions": 0}, "dimensions", "invalid_value"),
    ({"model": "m", "input": "x", "dimensions": -3}, "dimensions", "invalid_value"),
    ({"model": "m", "input": "x", "dimensions": 2.5}, "dimensions", "invalid_value"),
])
def test_a_bad_request_is_a_400_naming_the_field(body, param, code):
    with pytest.raises(GatewayError) as caught:
        validate_embeddings(body)
    assert (caught.value.http_status, caught.value.param, caught.value.code) == (400, param, code)


@pytest.mark.parametrize("given, inputs", [
    ("one text", ["one text"]),
    (["a", "b"], ["a", "b"]),
    ([1, 2, 3], [[1, 2, 3]]),
    ([[1, 2], [3]], [[1, 2], [3]]),
    (["a"] * MAX_INPUTS, ["a"] * MAX_INPUTS),
])
def test_every_input_shape_openai_takes_is_accepted(given, inputs):
    assert validate_embeddings({"model": "m", "input": given, "encoding_format": "base64", "dimensions": 8}) == inputs


def test_token_ids_count_one_token_each_and_texts_by_the_models_encoding():
    assert input_tokens([[1, 2, 3], [4]], "text-embedding-3-small") == 4
    assert input_tokens(["hello world"], "text-embedding-3-small") == 2


# -- the relay on a real database and a real upstream --------------------------------------

@pytest.fixture
def upstream():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def db_path(tmp_path, upstream) -> str:
    path = str(tmp_path / "st-ai.db")
    db = open_db(path)
    token_store.create(db, "alice", quota=10_000_000)
    price_store.set_price(db, "embed", PriceChanges(input=20_000_000, output=999_000_000))  # $20 per 1M
    channel_store.add(db, "first", "openai", upstream.base_url, upstream.api_key, ["embed"],
                      {"embed": "text-embedding-3-small"}, priority=1)
    channel_store.add(db, "second", "openai", upstream.base_url, upstream.api_key, ["embed"],
                      {"embed": "text-embedding-3-small"}, priority=0)
    channel_store.add(db, "sim", "simulator", "", "", ["chat-only"])
    db.close()
    return path


@contextlib.asynccontextmanager
async def relay(db_path: str):
    worker = await asyncio.to_thread(DbWorker, db_path)
    catalog = Catalog(worker)
    await catalog.load()
    writer = GroupCommit(worker)
    running = asyncio.create_task(writer.run())
    async with aiohttp.ClientSession() as http:
        try:
            admission = Admission(worker, writer, "this-process", catalog)
            loop = AttemptLoop(Resilience(backoff=0.0))
            yield EmbeddingsRelay(catalog, Registry.build(Upstream(http)), admission, loop), catalog
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await asyncio.to_thread(worker.close)


def alice(catalog: Catalog):
    return next(t for t in catalog.snapshot.tokens_by_hash.values() if t.name == "alice")


def rows(db_path: str, sql: str) -> list[dict]:
    db = open_db(db_path)
    try:
        return [dict(r) for r in db.query(sql)]
    finally:
        db.close()


def embed(db_path: str, body: dict, token: str = "alice") -> dict:
    async def go() -> dict:
        async with relay(db_path) as (embeddings, catalog):
            holder = next(t for t in catalog.snapshot.tokens_by_hash.values() if t.name == token)
            return await embeddings.embed(holder, body, 10)
    return asyncio.run(asyncio.wait_for(go(), 30))


def test_an_embedding_is_booked_once_at_the_upstreams_prompt_tokens_priced_as_input(db_path, upstream):
    answer = embed(db_path, {"model": "embed", "input": ["hello world", "a lighthouse at dusk"]})
    assert [d["index"] for d in answer["data"]] == [0, 1]
    assert answer["data"][0]["embedding"] == fake_embedding("hello world", 1536)
    assert upstream.received[-1].body["model"] == "text-embedding-3-small"
    [row] = rows(db_path, "SELECT * FROM ledger")
    tokens = answer["usage"]["prompt_tokens"]
    assert (row["kind"], row["status"], row["prompt_tokens"], row["completion_tokens"], row["estimate"]) == (
        "embeddings", 200, tokens, 0, 0)
    assert row["cost"] == tokens * 20 > 0  # the input price; the output price is never used
    [token] = rows(db_path, "SELECT used FROM tokens")
    assert token["used"] == row["cost"]
    assert rows(db_path, "SELECT COUNT(*) AS n FROM reservations") == [{"n": 0}]


def test_without_upstream_usage_the_input_is_counted_here_and_marked_an_estimate(db_path, upstream):
    upstream.embeddings_usage = False
    answer = embed(db_path, {"model": "embed", "input": [[1, 2, 3], [4, 5]]})
    assert answer["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    [row] = rows(db_path, "SELECT prompt_tokens, estimate FROM ledger")
    assert row == {"prompt_tokens": 5, "estimate": 1}


def test_base64_asked_goes_upstream_as_base64_and_comes_back_as_it(db_path, upstream):
    answer = embed(db_path, {"model": "embed", "input": "x", "encoding_format": "base64", "dimensions": 8})
    sent = upstream.received[-1].body
    assert (sent["encoding_format"], sent["dimensions"]) == ("base64", 8)
    assert from_base64(answer["data"][0]["embedding"]) == fake_embedding("x", 8)


def test_an_upstream_503_falls_over_to_the_next_channel_and_both_attempts_are_recorded(db_path, upstream):
    upstream.faults.add(PATH, Fault.error(503))
    answer = embed(db_path, {"model": "embed", "input": "x"})
    assert len(answer["data"]) == 1
    [row] = rows(db_path, "SELECT id, channel_id, status FROM ledger")
    attempts = rows(db_path, f"SELECT channel_id, status FROM attempts WHERE ledger_id = {row['id']} ORDER BY id")
    names = {r["id"]: r["name"] for r in rows(db_path, "SELECT id, name FROM channels")}
    # an upstream's 5xx is booked as what st-ai made of it: a 502 upstream_error
    assert [(names[a["channel_id"]], a["status"]) for a in attempts] == [("first", 502), ("second", 200)]
    assert names[row["channel_id"]] == "second" and row["status"] == 200


def test_an_unreadable_answer_is_retried_elsewhere_never_billed_when_all_fail(db_path, upstream):
    upstream.faults.always(PATH, Fault.not_an_object())
    with pytest.raises(GatewayError) as caught:
        embed(db_path, {"model": "embed", "input": "x"})
    assert caught.value.http_status == 502
    [row] = rows(db_path, "SELECT status, cost FROM ledger")
    assert row == {"status": 502, "cost": 0}
    assert rows(db_path, "SELECT used FROM tokens") == [{"used": 0}]


def test_an_upstream_400_is_relayed_once(db_path, upstream):
    with pytest.raises(GatewayError) as caught:
        embed(db_path, {"model": "embed", "input": "x", "dimensions": 5000})
    assert (caught.value.http_status, caught.value.param) == (400, "dimensions")
    assert upstream.faults.hits(PATH) == 1


def test_a_model_no_embeddings_channel_serves_is_refused_before_anything_is_sent(db_path, upstream):
    with pytest.raises(GatewayError) as caught:
        embed(db_path, {"model": "chat-only", "input": "x"})
    assert caught.value.http_status == 503 and caught.value.code == "no_available_channel"
    assert upstream.faults.hits(PATH) == 0


def test_the_inputs_tokens_count_against_a_tokens_per_minute_limit(db_path, upstream):
    db = open_db(db_path)
    try:
        token_store.create(db, "bob", limits=Limits(tpm=10))
    finally:
        db.close()
    assert embed(db_path, {"model": "embed", "input": [[1, 2, 3, 4]]}, "bob")["usage"]["prompt_tokens"] == 4
    with pytest.raises(GatewayError) as caught:
        embed(db_path, {"model": "embed", "input": [list(range(20))]}, "bob")  # 20 tokens: more than a minute's
    assert (caught.value.http_status, caught.value.code) == (429, "rate_limit_exceeded")
    assert upstream.faults.hits(PATH) == 1
    refused = rows(db_path, "SELECT kind, status, cost FROM ledger WHERE status = 429")
    assert refused == [{"kind": "embeddings", "status": 429, "cost": 0}]
