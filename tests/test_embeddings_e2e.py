"""POST /v1/embeddings end to end: the official `openai` SDK, unchanged but for its base URL
and key, against a real `st-ai serve` relaying to fake OpenAI upstreams on 127.0.0.1; and
the same RPC over gRPC by a client that knows only what server reflection tells it."""
from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import urllib.error
import urllib.request

import grpc
import openai
import pytest
from openai import OpenAI

from server.billing.prices import PriceChanges
from server.store import prices as price_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.conftest import ROOT
from tests.fakes.faults import Fault, refused_url
from tests.fakes.openai_upstream import FakeOpenAI, fake_embedding
from tests.reflection_client import Reflected, auth, error_detail

pytestmark = pytest.mark.timeout(120)
PATH = "/v1/embeddings"
MODEL = "embed-small"          # public name, mapped to text-embedding-3-small
PRICED = "embed-priced"        # the same upstream model with a price: $20 per 1M input tokens


@pytest.fixture(scope="module")
def upstreams(gateway):
    primary, backup = FakeOpenAI().start(), FakeOpenAI().start()
    renames = {MODEL: "text-embedding-3-small", PRICED: "text-embedding-3-small"}
    gateway.channel("embed-primary", "openai", [MODEL, PRICED], base_url=primary.base_url, key=primary.api_key,
                    model_map=renames, priority=1)
    gateway.channel("embed-backup", "openai", [MODEL, PRICED], base_url=backup.base_url, key=backup.api_key,
                    model_map=renames, priority=0)
    db = open_db(gateway.db_path)
    try:
        price_store.set_price(db, PRICED, PriceChanges(input=20_000_000, output=90_000_000))
    finally:
        db.close()
    yield primary, backup
    primary.stop()
    backup.stop()


@pytest.fixture(scope="module")
def key(gateway, upstreams) -> str:
    return gateway.token("embed-user")


def client(gateway, key: str) -> OpenAI:
    return OpenAI(base_url=gateway.base_url, api_key=key, timeout=10, max_retries=0)


def ledger(gateway, token_name: str) -> list[dict]:
    db = open_db(gateway.db_path)
    try:
        return [dict(r) for r in db.query(
            "SELECT l.* FROM ledger l JOIN tokens t ON t.id = l.token_id WHERE t.name = ? ORDER BY l.id",
            [token_name])]
    finally:
        db.close()


def last_sent(fake: FakeOpenAI) -> dict:
    return [r for r in fake.received if r.path == PATH][-1].body


# -- the SDK ------------------------------------------------------------------------------

def test_the_sdks_default_asks_for_base64_and_decodes_the_upstreams_vector(gateway, upstreams, key):
    primary, _ = upstreams
    answer = client(gateway, key).embeddings.create(model=MODEL, input="The food was delicious.")
    assert last_sent(primary)["encoding_format"] == "base64"
    assert last_sent(primary)["model"] == "text-embedding-3-small"
    assert answer.object == "list" and answer.model == "text-embedding-3-small"
    assert answer.data[0].object == "embedding" and answer.data[0].index == 0
    assert answer.data[0].embedding == fake_embedding("The food was delicious.", 1536)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0


def test_float_encoding_gives_the_vector_as_json_numbers(gateway, upstreams, key):
    primary, _ = upstreams
    raw = client(gateway, key).embeddings.with_raw_response.create(model=MODEL, input="x", encoding_format="float")
    body = raw.http_response.json()
    assert last_sent(primary)["encoding_format"] == "float"
    assert body["data"][0]["embedding"] == fake_embedding("x", 1536)
    assert raw.parse().data[0].embedding == fake_embedding("x", 1536)


def test_base64_asked_explicitly_is_openais_little_endian_float32(gateway, upstreams, key):
    raw = client(gateway, key).embeddings.with_raw_response.create(model=MODEL, input="x", encoding_format="base64")
    text = raw.http_response.json()["data"][0]["embedding"]
    packed = base64.b64decode(text)
    assert list(struct.unpack(f"<{len(packed) // 4}f", packed)) == fake_embedding("x", 1536)


def test_dimensions_shorten_the_vector(gateway, upstreams, key):
    primary, _ = upstreams
    answer = client(gateway, key).embeddings.create(model=MODEL, input="x", dimensions=256)
    assert last_sent(primary)["dimensions"] == 256
    assert answer.data[0].embedding == fake_embedding("x", 256)


def test_a_list_of_texts_gives_one_embedding_each_in_order(gateway, upstreams, key):
    texts = [f"text number {i}" for i in range(5)]
    answer = client(gateway, key).embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert [d.index for d in answer.data] == list(range(5))
    assert [d.embedding for d in answer.data] == [fake_embedding(t, 1536) for t in texts]


def test_token_arrays_go_upstream_as_token_arrays(gateway, upstreams, key):
    primary, _ = upstreams
    one = client(gateway, key).embeddings.create(model=MODEL, input=[9906, 1917])
    assert last_sent(primary)["input"] == [9906, 1917]
    assert one.data[0].embedding == fake_embedding([9906, 1917], 1536) and one.usage.prompt_tokens == 2
    many = client(gateway, key).embeddings.create(model=MODEL, input=[[1, 2, 3], [4]])
    assert last_sent(primary)["input"] == [[1, 2, 3], [4]]
    assert len(many.data) == 2 and many.usage.prompt_tokens == 4


@pytest.mark.parametrize("kwargs, param", [
    ({"input": ""}, "input"),
    ({"input": []}, "input"),
    ({"input": ["fine", ""]}, "input[1]"),
    ({"input": ["x"] * 2049}, "input"),
    ({"input": [1, -5]}, "input[1]"),
    ({"input": [[1, 2], ["a"]]}, "input[1][0]"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"input": "x", "dimensions": 0}, "dimensions"),
])
def test_a_bad_request_is_an_openai_400_and_never_reaches_the_upstream(gateway, upstreams, key, kwargs, param):
    primary, backup = upstreams
    before = primary.faults.hits(PATH) + backup.faults.hits(PATH)
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway, key).embeddings.create(model=MODEL, **kwargs)
    error = caught.value.body
    assert caught.value.status_code == 400 and error["param"] == param and error["type"] == "invalid_request_error"
    assert primary.faults.hits(PATH) + backup.faults.hits(PATH) == before


def test_the_upstreams_own_refusal_is_relayed_with_its_words(gateway, upstreams, key):
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway, key).embeddings.create(model=MODEL, input="x", dimensions=5000)
    assert caught.value.body["param"] == "dimensions"
    assert "1536" in caught.value.body["message"]


def test_a_wrong_key_and_an_unknown_model_are_openais_401_and_404(gateway, upstreams, key):
    with pytest.raises(openai.AuthenticationError):
        client(gateway, "sk-not-a-token").embeddings.create(model=MODEL, input="x")
    with pytest.raises(openai.NotFoundError):
        client(gateway, key).embeddings.create(model="no-such-embedder", input="x")


def test_an_unreachable_upstream_is_a_502_naming_neither_its_address_nor_its_key(gateway, upstreams, key):
    address = refused_url()
    gateway.channel("embed-down", "openai", ["embed-down"], base_url=address, key="sk-down-0123456789abcdef",
                    model_map={"embed-down": "text-embedding-3-small"})
    with pytest.raises(openai.APIStatusError) as caught:
        client(gateway, key).embeddings.create(model="embed-down", input="x")
    assert caught.value.status_code == 502 and caught.value.body["type"] == "upstream_error"
    shown = json.dumps(caught.value.body)
    assert address.split("//")[1].split("/")[0] not in shown and "0123456789abcdef" not in shown


def test_a_503_falls_over_to_the_backup_channel(gateway, upstreams, key):
    primary, backup = upstreams
    primary.faults.add(PATH, Fault.error(503))
    answer = client(gateway, key).embeddings.create(model=MODEL, input="falls over", encoding_format="float")
    assert answer.data[0].embedding == fake_embedding("falls over", 1536)
    assert last_sent(backup)["input"] == "falls over"
    [row] = [r for r in ledger(gateway, "embed-user") if r["status"] == 200][-1:]
    db = open_db(gateway.db_path)
    try:
        attempts = [(a["name"], a["status"]) for a in db.query(
            "SELECT c.name, a.status FROM attempts a JOIN channels c ON c.id = a.channel_id "
            "WHERE a.ledger_id = ? ORDER BY a.id", [row["id"]])]
    finally:
        db.close()
    assert attempts == [("embed-primary", 502), ("embed-backup", 200)]  # the upstream's 503 as st-ai books it


def test_usage_is_booked_once_as_embeddings_priced_like_input_tokens(gateway, upstreams):
    key = gateway.token("embed-billed")
    answer = client(gateway, key).embeddings.create(model=PRICED, input=["one two three", "four"])
    [row] = ledger(gateway, "embed-billed")
    tokens = answer.usage.prompt_tokens
    assert (row["kind"], row["model"], row["status"], row["prompt_tokens"], row["completion_tokens"],
            row["estimate"]) == ("embeddings", PRICED, 200, tokens, 0, 0)
    assert row["cost"] == tokens * 20 > 0  # 20 micro-units a token; the output price is never used
    db = open_db(gateway.db_path)
    try:
        assert db.execute("SELECT used FROM tokens WHERE name = 'embed-billed'").fetchone()[0] == row["cost"]
    finally:
        db.close()


def test_a_token_whose_quota_cannot_cover_the_input_is_refused_429(gateway, upstreams):
    primary, backup = upstreams
    db = open_db(gateway.db_path)
    try:
        _, key = token_store.create(db, "embed-poor", quota=1)  # one micro-unit
    finally:
        db.close()
    gateway.wait_for(lambda: gateway._status("/v1/models", key) == 200, "token embed-poor")
    before = primary.faults.hits(PATH) + backup.faults.hits(PATH)
    with pytest.raises(openai.RateLimitError) as caught:
        client(gateway, key).embeddings.create(model=PRICED, input="word " * 200)
    assert caught.value.body["code"] == "insufficient_quota"
    assert primary.faults.hits(PATH) + backup.faults.hits(PATH) == before
    [row] = ledger(gateway, "embed-poor")
    assert (row["kind"], row["status"], row["cost"]) == ("embeddings", 429, 0)


def test_the_model_list_shows_embeddings_models(gateway, upstreams, key):
    assert {MODEL, PRICED} <= {m.id for m in client(gateway, key).models.list()}


# -- gRPC by reflection --------------------------------------------------------------------

@pytest.fixture(scope="module")
def reflected(gateway):
    channel = grpc.insecure_channel(gateway.grpc_target)
    yield Reflected(channel)
    channel.close()


def test_the_embeddings_service_is_listed_by_reflection(reflected):
    assert "st_ai.v1.Embeddings" in reflected.services()


def test_embeddings_over_grpc_by_reflection(reflected, upstreams, key):
    call, request_class = reflected.callable("st_ai.v1.Embeddings", "CreateEmbedding")
    request = request_class(model=MODEL, encoding_format="float", dimensions=8)
    request.input_texts.items.extend(["a", "b"])
    answer = call(request, metadata=auth(key), timeout=10)
    assert answer.object == "list" and [d.index for d in answer.data] == [0, 1]
    assert list(answer.data[0].vector.items) == fake_embedding("a", 8)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0

    tokens = request_class(model=MODEL, encoding_format="base64")
    tokens.input_token_lists.items.add().items.extend([1, 2, 3])
    answer = call(tokens, metadata=auth(key), timeout=10)
    packed = base64.b64decode(answer.data[0].base64)
    assert list(struct.unpack(f"<{len(packed) // 4}f", packed)) == fake_embedding([1, 2, 3], 1536)


def test_a_bad_request_over_grpc_is_invalid_argument_with_the_openai_detail(reflected, upstreams, key):
    call, request_class = reflected.callable("st_ai.v1.Embeddings", "CreateEmbedding")
    with pytest.raises(grpc.RpcError) as caught:
        call(request_class(model=MODEL, input_text="x", dimensions=-1), metadata=auth(key), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_detail(reflected, caught.value)
    assert (detail.http_status, detail.param) == (400, "dimensions")


# -- operating an embeddings channel -------------------------------------------------------

def test_channel_test_of_an_embeddings_model_embeds_one_word(gateway, upstreams):
    primary, _ = upstreams
    before = [r.path for r in primary.received]
    done = subprocess.run([sys.executable, "-m", "server.cli", "channel", "test", "embed-primary", "--db",
                           gateway.db_path], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "ok in" in done.stdout
    asked = [r for r in primary.received[len(before):]]
    # the chat endpoint refuses an embeddings model; the embeddings endpoint answers
    assert [r.path for r in asked] == ["/v1/chat/completions", PATH]
    assert asked[1].body == {"model": "text-embedding-3-small", "input": "ping"}


@pytest.mark.parametrize("body", [
    {"model": MODEL, "input": None}, {"model": MODEL, "input": {}}, {"model": MODEL, "input": [None]},
    {"model": MODEL, "input": [[None]]}, {"model": MODEL, "input": [[]]}, {"model": MODEL, "input": [{}]},
    {"model": MODEL, "input": [1.0e40]}, {"model": MODEL, "input": [2 ** 70]}, {"model": MODEL, "input": True},
    {"model": MODEL, "input": "x", "dimensions": 2 ** 40}, {"model": MODEL, "input": "x", "dimensions": "8"},
    {"model": MODEL, "input": "x", "encoding_format": 5}, {"model": MODEL, "input": "x", "user": {}},
    {"model": 5, "input": "x"}, {"model": "", "input": "x"}, {"input": "x"}, {},
])
def test_odd_bodies_are_an_openai_400_never_a_5xx(gateway, upstreams, key, body):
    request = urllib.request.Request(f"{gateway.base_url}/embeddings", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    answer = json.load(caught.value)
    assert caught.value.code == 400, answer
    assert set(answer["error"]) == {"message", "type", "param", "code"}
