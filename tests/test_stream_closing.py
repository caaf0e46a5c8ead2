"""A streamed answer closes every async generator it reads through when it is done with it,
whichever provider served it: none is left for the garbage collector, which would hand it
to the event loop to close later, in a task of its own (a wake-up and a task per stream).
Core tests against the fake upstreams on 127.0.0.1."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from server.gateway import Config, open_core
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.fakes.anthropic import FakeAnthropic
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


async def test_a_finished_stream_leaves_no_async_generator_for_the_garbage_collector(tmp_path, upstream):
    type_, fake = upstream
    opened, key = core_for(tmp_path, type_, fake)
    left: list[str] = []
    firstiter, finalizer = sys.get_asyncgen_hooks()

    def left_to_the_collector(agen) -> None:
        left.append(agen.__qualname__)
        finalizer(agen)

    async with opened as core:
        token = await core.catalog.authenticate(f"Bearer {key}")
        sys.set_asyncgen_hooks(firstiter, left_to_the_collector)
        try:
            body = {"model": "closing", "messages": [{"role": "user", "content": "hello"}], "stream": True}
            batches = [batch async for batch in core.relay.stream(token, body)]
        finally:
            sys.set_asyncgen_hooks(firstiter, finalizer)
    assert batches and any(chunk.get("choices") for batch in batches for chunk in batch)
    assert left == []
