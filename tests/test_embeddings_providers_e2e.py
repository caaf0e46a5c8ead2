"""POST /v1/embeddings through the official `openai` SDK to a Gemini channel and an Azure
OpenAI channel: the same endpoint, translated to `:batchEmbedContents` or sent to an Azure
deployment, and booked once each — Gemini's tokens counted by st-ai (an estimate), Azure's
as the upstream counted them."""
from __future__ import annotations

import pytest
from openai import OpenAI

from server.store.db import open_db
from tests.fakes.azure_openai import FakeAzureOpenAI
from tests.fakes.gemini import FakeGemini, vector

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def fakes(gateway):
    gemini, azure = FakeGemini().start(), FakeAzureOpenAI().start()
    gateway.channel("gemini-embed", "gemini", ["g-embed"], base_url=gemini.base_url, key=gemini.api_key,
                    model_map={"g-embed": "gemini-embedding-001"})
    gateway.channel("azure-embed", "azure", ["a-embed"], base_url=azure.base_url, key=azure.api_key,
                    model_map={"a-embed": "embed-small"})
    yield gemini, azure
    gemini.stop()
    azure.stop()


@pytest.fixture(scope="module")
def key(gateway, fakes) -> str:
    return gateway.token("embedder")


def client(gateway, key: str) -> OpenAI:
    return OpenAI(base_url=gateway.base_url, api_key=key, timeout=10, max_retries=0)


def ledger_rows(gateway) -> list[dict]:
    db = open_db(gateway.db_path)
    try:
        return [dict(r) for r in db.query(
            "SELECT l.model, l.kind, l.status, l.prompt_tokens, l.estimate FROM ledger l "
            "JOIN tokens t ON t.id = l.token_id WHERE t.name = 'embedder' ORDER BY l.id")]
    finally:
        db.close()


def test_a_gemini_channel_embeds_through_batch_embed_contents_in_either_encoding(gateway, fakes, key):
    gemini, _ = fakes
    sdk = client(gateway, key)
    packed = sdk.embeddings.create(model="g-embed", input=["first text", "second"], dimensions=8)  # base64 asked
    floats = sdk.embeddings.create(model="g-embed", input="first text", dimensions=8, encoding_format="float")
    assert [d.embedding for d in packed.data] == [pytest.approx(vector("first text", 8), rel=1e-6),
                                                  pytest.approx(vector("second", 8), rel=1e-6)]
    assert floats.data[0].embedding == pytest.approx(vector("first text", 8))
    assert packed.usage.prompt_tokens > 0
    sent = gemini.calls("batchEmbedContents")[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.body["requests"][0]["outputDimensionality"] == 8
    rows = [r for r in ledger_rows(gateway) if r["model"] == "g-embed"]
    # Gemini does not count embedded tokens: st-ai's own count, marked as one
    assert [(r["kind"], r["status"], r["estimate"]) for r in rows] == [("embeddings", 200, 1)] * 2
    assert rows[0]["prompt_tokens"] == packed.usage.prompt_tokens


def test_an_azure_channel_embeds_at_its_deployment_and_books_azures_count(gateway, fakes, key):
    _, azure = fakes
    answer = client(gateway, key).embeddings.create(model="a-embed", input=["one", "two", "three"], dimensions=16)
    assert [len(d.embedding) for d in answer.data] == [16, 16, 16]
    sent = azure.received[-1]
    assert sent.path == "/openai/deployments/embed-small/embeddings" and "api-version" in sent.query
    rows = [r for r in ledger_rows(gateway) if r["model"] == "a-embed"]
    assert [(r["kind"], r["status"], r["estimate"]) for r in rows] == [("embeddings", 200, 0)]
    assert rows[0]["prompt_tokens"] == answer.usage.prompt_tokens > 0


def test_token_arrays_are_a_clear_400_on_a_gemini_channel(gateway, fakes, key):
    import openai
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway, key).embeddings.create(model="g-embed", input=[[1, 2, 3]], encoding_format="float")
    assert caught.value.body["param"] == "input"
