"""A chat stream leaves the relay core in batches: the chunks that were ready together go on
as one item (through the servicer, the interceptor layers and the in-process pipe), and a
chunk is never held back waiting for the next. Core tests without HTTP or protobuf, against
the fake OpenAI-compatible upstream on 127.0.0.1; the bridge's SSE from these batches is
checked by every REST streaming test."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from server.gateway import Config, open_core
from server.services.answers import batch_items
from server.services.chat import CHUNK
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from st_ai.v1 import chat_pb2
from tests.fakes.openai_upstream import FakeOpenAI, StreamPlan

pytestmark = pytest.mark.timeout(60)
MODEL = "gpt-4o-mini"
HI = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "stream": True}


@pytest.fixture
def upstream():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def core_for(tmp_path: Path, fake: FakeOpenAI):
    db_path = str(tmp_path / "st-ai.db")
    db = open_db(db_path)
    channel_store.add(db, "openai", "openai", fake.base_url, fake.api_key, [MODEL])
    _, key = token_store.create(db, "batches")
    db.close()
    return open_core(Config(db_path=db_path, assets_dir=str(tmp_path / "assets")), "http://127.0.0.1:1"), key


def texts(batch: list[dict]) -> list[str]:
    return [(c["choices"][0]["delta"].get("content") if c.get("choices") else "usage") for c in batch]


async def test_chunks_that_waited_together_leave_the_relay_as_one_batch(tmp_path, upstream):
    opened, key = core_for(tmp_path, upstream)
    async with opened as core:
        token = await core.catalog.authenticate(f"Bearer {key}")
        batches = core.relay.stream(token, HI)
        first = await anext(batches)
        await asyncio.sleep(0.5)  # the upstream's other chunks arrive and are read ahead meanwhile
        rest = [batch async for batch in batches]
    assert texts(first)[0] == ""  # the role chunk, sent on its own or with what came with it
    assert len(rest) <= 1  # what was waiting came as one batch
    # the usage chunk st-ai asked for is still kept from the client
    assert texts(first + [c for batch in rest for c in batch]) == ["", "Hel", "lo", "!", None]


async def test_a_burst_of_two_dozen_chunks_read_while_the_client_was_busy_leaves_as_one_batch(tmp_path, upstream):
    # some upstreams flush many events at once (a batch of tokens per network write)
    [role, *_, finish, usage] = upstream.default_chunks(MODEL, include_usage=True)
    pieces = [{**role, "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "logprobs": None,
                                    "finish_reason": None}]} for i in range(24)]
    gate = threading.Event()
    upstream.stream_plan = StreamPlan([role, *pieces, finish, usage], gates={1: gate})
    opened, key = core_for(tmp_path, upstream)
    async with opened as core:
        token = await core.catalog.authenticate(f"Bearer {key}")
        batches = core.relay.stream(token, HI)
        first = await anext(batches)
        gate.set()
        await asyncio.sleep(0.5)  # the 24 words arrive and are read ahead meanwhile
        rest = [batch async for batch in batches]
    assert texts(first) == [""]
    assert len(rest) == 1  # not one batch per few chunks read ahead
    assert texts(rest[0]) == [f"w{i} " for i in range(24)] + [None]


async def test_a_chunk_is_not_held_back_for_the_next_one(tmp_path, upstream):
    chunks = upstream.default_chunks(MODEL, include_usage=True)
    gate = threading.Event()
    upstream.stream_plan = StreamPlan(chunks, gates={3: gate})  # "!" only once "lo" reached the test
    opened, key = core_for(tmp_path, upstream)
    seen: list[str] = []
    async with opened as core:
        token = await core.catalog.authenticate(f"Bearer {key}")
        async for batch in core.relay.stream(token, HI):
            assert batch, "a batch holds at least one chunk"
            seen += texts(batch)
            if "lo" in seen:
                gate.set()  # had the relay waited for more before handing "lo" on, this never came
    assert seen == ["", "Hel", "lo", "!", None]
    [row] = open_db(str(tmp_path / "st-ai.db")).query("SELECT status, completion_tokens FROM ledger")
    assert (row["status"], row["completion_tokens"]) == (200, 3)


def test_a_batch_is_one_item_of_json_texts_in_process_and_one_message_per_chunk_over_grpc():
    class InProcess:
        json_answers = True

    class OverGrpc:
        pass

    batch = [{"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": t}}]}
             for t in ("a", "b")]
    [texts_item] = batch_items(InProcess(), CHUNK)(batch)
    assert texts_item == [CHUNK.to_json(chunk) for chunk in batch]
    messages = batch_items(OverGrpc(), CHUNK)(batch)
    assert [type(m) for m in messages] == [chat_pb2.ChatCompletionChunk] * 2
    assert [CHUNK.to_dict(m)["choices"][0]["delta"]["content"] for m in messages] == ["a", "b"]
