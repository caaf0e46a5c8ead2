"""A streamed answer closes every async generator it reads through when it is done with it,
whichever provider served it and whether st-ai translated it or passed it through: none is
left for the garbage collector, which would hand it to the event loop to close later, in a
task of its own (a wake-up and a task per stream). Core and provider tests against the fake
upstreams on 127.0.0.1."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import aiohttp
import pytest

from server.gateway import Config, open_core
from server.providers.anthropic.chat import AnthropicChat
from server.providers.interface import Upstream
from server.store.channels import Channel
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.fakes.anthropic import FakeAnthropic, Reply
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.timeout(60)
UPSTREAM_MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
FAKES = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "gemini": FakeGemini}


@pytest.fixture(params=sorted(FAKES))
def upstream(request):
    fake = FAKES[request.param]().start()
    yield request.param, fake
    fake.stop()


def core_for(tmp_path: Path, type_: str, fake):
    db_path = str(tmp_path / "st-ai.db")
    db = open_db(db_path)
    base_url = getattr(fake, "url", "") if type_ == "anthropic" else fake.base_url
    key = getattr(fake, "key", "") if type_ == "anthropic" else fake.api_key
    channel_store.add(db, type_, type_, base_url, key, ["closing"], {"closing": UPSTREAM_MODEL[type_]})
    _, token_key = token_store.create(db, "closing")
    db.close()
    return open_core(Config(db_path=db_path, assets_dir=str(tmp_path / "assets")), "http://127.0.0.1:1"), token_key


@contextlib.contextmanager
def generators_left_to_the_collector():
    """The async generators the garbage collector finds unfinished meanwhile, by name."""
    left: list[str] = []
    firstiter, finalizer = sys.get_asyncgen_hooks()

    def left_to_the_collector(agen) -> None:
        left.append(agen.__qualname__)
        finalizer(agen)

    sys.set_asyncgen_hooks(firstiter, left_to_the_collector)
    try:
        yield left
    finally:
        sys.set_asyncgen_hooks(firstiter, finalizer)


async def test_a_finished_stream_leaves_no_async_generator_for_the_garbage_collector(tmp_path, upstream):
    type_, fake = upstream
    opened, key = core_for(tmp_path, type_, fake)
    async with opened as core:
        token = await core.catalog.authenticate(f"Bearer {key}")
        with generators_left_to_the_collector() as left:
            body = {"model": "closing", "messages": [{"role": "user", "content": "hello"}], "stream": True}
            batches = [batch async for batch in core.relay.stream(token, body)]
    assert batches and any(chunk.get("choices") for batch in batches for chunk in batch)
    assert left == []


async def test_a_passed_through_stream_that_ends_at_its_last_event_leaves_no_generator_either():
    fake = FakeAnthropic().start()
    try:
        fake.script(Reply([{"type": "text", "text": "Streamed."}]))
        at = Channel(1, "anthropic", "anthropic", fake.url, fake.key, ("m",))
        body = {"model": "claude-haiku-4-5", "max_tokens": 40, "stream": True,
                "messages": [{"role": "user", "content": "hello"}]}
        async with aiohttp.ClientSession() as http:
            with generators_left_to_the_collector() as left:
                events = [event async for event in AnthropicChat(Upstream(http)).native_stream(
                    at, "messages", body, 20)]
    finally:
        fake.stop()
    assert events[-1]["type"] == "message_stop"
    assert left == []
