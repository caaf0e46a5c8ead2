"""The relay core carrying a request in another client API (server/core/exchange.py),
without HTTP or protobuf: st-ai's core runs in the test's loop, the upstream is the fake
OpenAI-compatible server on 127.0.0.1, and the exchange is a small one written here, so
what is checked is the core's part: which exchange method is asked when, what is booked
(and under which api), and how a stream starts, falls over, ends and fails."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from server.errors import GatewayError, invalid_request
from server.gateway import Config, open_core
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.channels import Timeouts
from server.store.db import open_db
from tests.fakes.faults import Fault
from tests.fakes.openai_upstream import FakeOpenAI, StreamPlan

pytestmark = pytest.mark.timeout(60)
MODEL = "gpt-4o-mini"


@dataclass
class Events:
    """Chat chunks as a toy API's events: `toy.start` with the first text, `toy.text`
    per piece, `toy.done` with the usage billed, `toy.failed` with the error's code."""
    started: bool = False

    def feed(self, chunk: dict) -> list[dict]:
        events = []
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                if not self.started:
                    self.started = True
                    events.append({"type": "toy.start"})
                events.append({"type": "toy.text", "text": text})
        return events

    def metered(self, item: dict) -> dict | None:
        return item

    def finish(self, usage: dict) -> list[dict]:
        return [{"type": "toy.done", "usage": usage}]

    def fail(self, error: GatewayError) -> list[dict]:
        return [{"type": "toy.failed", "code": error.code}]


@dataclass
class ToyExchange:
    prompt: str
    refusal: GatewayError | None = None
    api: str = "responses"
    model: str = MODEL
    streams: list[Events] = field(default_factory=list)

    @property
    def chat(self) -> dict:
        return {"model": self.model, "messages": [{"role": "user", "content": self.prompt}]}

    def native_body(self, upstream_model: str) -> dict:
        raise AssertionError("no channel here speaks the toy API")

    def answer(self, completion: dict) -> dict:
        return {"type": "toy.answer", "text": completion["choices"][0]["message"]["content"]}

    def native_answer(self, answer: dict) -> dict:
        raise AssertionError("no channel here speaks the toy API")

    def metered(self, answer: dict) -> dict:
        raise AssertionError("no channel here speaks the toy API")

    def translated_events(self) -> Events:
        self.streams.append(Events())
        return self.streams[-1]

    def native_events(self) -> Events:
        raise AssertionError("no channel here speaks the toy API")


async def events_of(batches):
    """The stream's events one by one (the relay hands them on in batches)."""
    async for batch in batches:
        assert batch, "a batch holds at least one event"
        for event in batch:
            yield event


@pytest.fixture
def upstream():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def second():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@dataclass
class Setup:
    db_path: str
    key: str

    def ledger(self) -> list[dict]:
        db = open_db(self.db_path)
        try:
            return [dict(row) for row in db.query("SELECT * FROM ledger ORDER BY id")]
        finally:
            db.close()


def setup(tmp_path: Path, *fakes: FakeOpenAI, idle: float | None = None) -> Setup:
    db_path = str(tmp_path / "st-ai.db")
    db = open_db(db_path)
    for i, fake in enumerate(fakes):
        channel_store.add(db, f"openai-{i}", "openai", fake.base_url, fake.api_key, [MODEL],
                          priority=len(fakes) - i, timeouts=Timeouts(idle=idle))
    _, key = token_store.create(db, "exchange")
    db.close()
    return Setup(db_path, key)


def config(tmp_path: Path, s: Setup) -> Config:
    return Config(db_path=s.db_path, assets_dir=str(tmp_path / "assets"))


async def test_a_translated_answer_is_the_exchanges_and_is_booked_under_its_api(tmp_path, upstream):
    s = setup(tmp_path, upstream)
    async with open_core(config(tmp_path, s), "http://127.0.0.1:1") as core:
        token = await core.catalog.authenticate(f"Bearer {s.key}")
        answer = await core.relay.complete_exchange(token, ToyExchange("hello"))
    assert answer == {"type": "toy.answer", "text": "Hello from the fake."}
    sent = upstream.received[-1].body
    assert sent["messages"] == [{"role": "user", "content": "hello"}] and not sent.get("stream")
    [row] = s.ledger()
    assert (row["api"], row["kind"], row["status"]) == ("responses", "chat", 200)
    assert (row["prompt_tokens"], row["completion_tokens"], row["estimate"]) == (11, 5, 0)


async def test_a_request_that_cannot_be_translated_is_refused_without_asking_the_upstream(tmp_path, upstream):
    s = setup(tmp_path, upstream)
    refusal = invalid_request("Built-in tools are not available here.", param="tools")
    async with open_core(config(tmp_path, s), "http://127.0.0.1:1") as core:
        token = await core.catalog.authenticate(f"Bearer {s.key}")
        with pytest.raises(GatewayError) as raised:
            await core.relay.complete_exchange(token, ToyExchange("hello", refusal=refusal))
        with pytest.raises(GatewayError) as streamed:
            async for _ in events_of(core.relay.stream_exchange(token, ToyExchange("hello", refusal=refusal))):
                pass
    assert raised.value.http_status == streamed.value.http_status == 400
    assert raised.value.param == "tools"
    assert upstream.received == []
    assert [(row["status"], row["api"], row["cost"]) for row in s.ledger()] == [(400, "responses", 0)] * 2


async def test_a_translated_stream_ends_with_the_usage_it_was_booked_at(tmp_path, upstream):
    s = setup(tmp_path, upstream)
    async with open_core(config(tmp_path, s), "http://127.0.0.1:1") as core:
        token = await core.catalog.authenticate(f"Bearer {s.key}")
        events, rows_at_done = [], None
        async for event in events_of(core.relay.stream_exchange(token, ToyExchange("hello"))):
            events.append(event)
            if event["type"] == "toy.done":
                rows_at_done = s.ledger()
    assert [e["type"] for e in events] == ["toy.start", "toy.text", "toy.text", "toy.text", "toy.done"]
    assert "".join(e.get("text", "") for e in events) == "Hello!"
    # st-ai asked for usage although the client's chat body did not
    assert upstream.received[-1].body["stream_options"] == {"include_usage": True}
    assert events[-1]["usage"]["prompt_tokens"] == 9 and events[-1]["usage"]["completion_tokens"] == 3
    # booked before the closing events went out
    assert rows_at_done is not None and len(rows_at_done) == 1
    row = rows_at_done[0]
    assert (row["api"], row["stream"], row["status"], row["prompt_tokens"], row["completion_tokens"]) == \
        ("responses", 1, 200, 9, 3)


async def test_a_stream_that_fails_before_its_first_event_falls_over_and_leaves_no_events(tmp_path, upstream, second):
    upstream.faults.add("/v1/chat/completions", Fault.error(503))
    s = setup(tmp_path, upstream, second)
    exchange = ToyExchange("hello")
    async with open_core(config(tmp_path, s), "http://127.0.0.1:1") as core:
        token = await core.catalog.authenticate(f"Bearer {s.key}")
        events = [event async for event in events_of(core.relay.stream_exchange(token, exchange))]
    assert [e["type"] for e in events].count("toy.start") == 1
    assert events[-1]["type"] == "toy.done"
    assert upstream.faults.hits("/v1/chat/completions") == 1 and len(second.received) == 1
    [row] = s.ledger()
    assert row["status"] == 200 and row["completion_tokens"] == 3


async def test_a_stream_that_stalls_after_its_first_events_ends_with_the_exchanges_failure_events(tmp_path, upstream):
    never = threading.Event()
    chunks = upstream.default_chunks(MODEL, include_usage=True)
    upstream.stream_plan = StreamPlan(chunks, gates={3: never})  # "Hel", "lo", then silence
    s = setup(tmp_path, upstream, idle=0.5)
    async with open_core(config(tmp_path, s), "http://127.0.0.1:1") as core:
        token = await core.catalog.authenticate(f"Bearer {s.key}")
        events = [event async for event in events_of(core.relay.stream_exchange(token, ToyExchange("hello")))]
    assert [e["type"] for e in events] == ["toy.start", "toy.text", "toy.text", "toy.failed"]
    assert events[-1]["code"] == "upstream_timeout"
    [row] = s.ledger()
    # billed for what was sent: counted by st-ai, as the usage never came
    assert (row["status"], row["error_code"], row["estimate"]) == (504, "upstream_timeout", 1)
    assert row["completion_tokens"] > 0


class QuietEvents(Events):
    def finish(self, usage: dict) -> list[dict]:
        return []  # an API whose stream just stops: no closing events


@dataclass
class QuietExchange(ToyExchange):
    def translated_events(self) -> Events:
        self.streams.append(QuietEvents())
        return self.streams[-1]


async def test_an_api_with_no_closing_events_ends_its_stream_without_an_empty_batch(tmp_path, upstream):
    s = setup(tmp_path, upstream)
    async with open_core(config(tmp_path, s), "http://127.0.0.1:1") as core:
        token = await core.catalog.authenticate(f"Bearer {s.key}")
        events = [event async for event in events_of(core.relay.stream_exchange(token, QuietExchange("hello")))]
    assert [e["type"] for e in events] == ["toy.start", "toy.text", "toy.text", "toy.text"]
    [row] = s.ledger()
    assert (row["status"], row["completion_tokens"]) == (200, 3)
