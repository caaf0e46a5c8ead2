"""Each client API works in front of every chat channel type: a real `st-ai serve` with one
channel of each type (the OpenAI-compatible, Azure OpenAI, Anthropic and Gemini fakes on
127.0.0.1, and the simulator), called with the official SDKs: OpenAI's Responses API
through `openai`, Anthropic's Messages API through `anthropic`, whole and streamed. Each
answer carries the upstream's text, and each request is booked once, under the API it
came in by, at the usage its channel reported."""
from __future__ import annotations

import sqlite3
import uuid

import anthropic
import openai
import pytest

from server.store import channels as channel_store
from server.store.db import open_db
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.azure_openai import FakeAzureOpenAI
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 15
CHANNEL_TYPES = ("openai", "azure", "anthropic", "gemini", "simulator")
UPSTREAM_MODEL = {"openai": "gpt-4o-mini", "azure": "gpt4o-mini", "anthropic": "claude-haiku-4-5",
                  "gemini": "gemini-2.5-flash", "simulator": "sim-chat"}


@pytest.fixture(scope="module")
def fakes():
    servers = {"openai": FakeOpenAI().start(), "azure": FakeAzureOpenAI(f"azure-{uuid.uuid4().hex}").start(),
               "anthropic": FakeAnthropic().start(), "gemini": FakeGemini().start()}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def models(gateway, fakes) -> dict[str, str]:
    """The model a client names for each channel type, each served by one channel of it."""
    named = {}
    db = open_db(gateway.db_path)
    try:
        for type_ in CHANNEL_TYPES:
            model = named[type_] = f"every-{type_}"
            if type_ == "simulator":
                channel_store.add(db, model, type_, "", "", [model])
                continue
            fake = fakes[type_]
            base_url = {"azure": getattr(fake, "endpoint", ""), "anthropic": getattr(fake, "url", "")}.get(
                type_, fake.base_url)
            key = {"anthropic": getattr(fake, "key", "")}.get(type_) or fake.api_key
            channel_store.add(db, model, type_, base_url, key, [model], {model: UPSTREAM_MODEL[type_]})
    finally:
        db.close()
    key = gateway.token("every-channel")
    gateway.wait_for(lambda: all(m in gateway._models(key) for m in named.values()), "every channel")
    return named


@pytest.fixture(scope="module")
def key(gateway, models) -> str:
    return gateway.token("every-channel-client")


def booked(gateway, model: str) -> list[dict]:
    db = sqlite3.connect(gateway.db_path, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM ledger WHERE model = ? ORDER BY id", [model])]
    finally:
        db.close()


def last_booked(gateway, model: str, count_before: int) -> dict:
    gateway.wait_for(lambda: len(booked(gateway, model)) > count_before, f"the ledger row for {model}")
    rows = booked(gateway, model)
    assert len(rows) == count_before + 1, rows
    return rows[-1]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("type_", CHANNEL_TYPES)
def test_the_responses_api_answers_in_front_of_every_channel_type(gateway, models, key, type_, stream):
    model = models[type_]
    before = len(booked(gateway, model))
    client = openai.OpenAI(base_url=gateway.base_url, api_key=key, timeout=TIMEOUT, max_retries=0)
    if stream:
        with client.responses.stream(model=model, input="Say hello.") as events:
            kinds = [event.type for event in events]
            response = events.get_final_response()
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert "response.output_text.delta" in kinds
    else:
        response = client.responses.create(model=model, input="Say hello.")
    assert response.status == "completed" and response.output_text.strip()
    row = last_booked(gateway, model, before)
    assert (row["api"], row["status"], row["stream"]) == ("responses", 200, int(stream))
    assert response.usage.input_tokens == row["prompt_tokens"]
    assert response.usage.output_tokens == row["completion_tokens"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("type_", CHANNEL_TYPES)
def test_the_messages_api_answers_in_front_of_every_channel_type(gateway, models, key, type_, stream):
    model = models[type_]
    before = len(booked(gateway, model))
    client = anthropic.Anthropic(base_url=gateway.http_url, api_key=key, timeout=TIMEOUT, max_retries=0)
    asked = dict(model=model, max_tokens=256, messages=[{"role": "user", "content": "Say hello."}])
    if stream:
        with client.messages.stream(**asked) as events:
            kinds = [event.type for event in events]
            message = events.get_final_message()
        assert kinds[0] == "message_start" and "content_block_delta" in kinds
    else:
        message = client.messages.create(**asked)
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    assert "".join(block.text for block in message.content if block.type == "text").strip()
    row = last_booked(gateway, model, before)
    assert (row["api"], row["status"], row["stream"]) == ("messages", 200, int(stream))
    usage = message.usage
    prompt = usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
    assert (prompt, usage.output_tokens) == (row["prompt_tokens"], row["completion_tokens"])
