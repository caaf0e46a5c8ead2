"""The simulator's work is bounded by the size of its input: a 30 MB prompt or a 2 MB
image prompt is answered in proportion, not with GBs of token lists or quadratic copies."""
from __future__ import annotations

import asyncio
import re
import time

from server.providers.simulator import media, tokens
from server.providers.simulator.answer import MAX_QUOTED_CHARS
from server.providers.simulator.chat import SimulatorChat
from server.store.channels import Channel

CHANNEL = Channel(id=1, name="sim", type="simulator", base_url="", key="", models=("sim-model",))
# generous: these take well under a second; before the bounds they took tens of seconds
CPU_SECONDS = 8.0


def test_a_30_mb_prompt_gets_a_short_reply_and_every_word_counted() -> None:
    prompt = "Alpha beta, gamma. " * (30 * 1024 * 1024 // 19)
    body = {"model": "sim-model", "messages": [{"role": "user", "content": prompt}]}
    started = time.process_time()
    answer = asyncio.run(SimulatorChat(None).complete(CHANNEL, body, None))
    assert time.process_time() - started < CPU_SECONDS
    content = answer["choices"][0]["message"]["content"]
    assert content.startswith("Simulated reply to: Alpha beta, gamma.")
    assert len(content) <= len("Simulated reply to: ") + MAX_QUOTED_CHARS
    # 3 words and 2 marks per repeat, plus the message and reply overheads
    repeats = 30 * 1024 * 1024 // 19
    assert answer["usage"]["prompt_tokens"] == 5 * repeats + tokens.PER_MESSAGE + tokens.PER_REPLY + 1


def test_a_long_prompt_streams_a_bounded_number_of_chunks() -> None:
    body = {"model": "sim-model", "stream": True,
            "messages": [{"role": "user", "content": "word " * 1_000_000}]}

    async def collect() -> list[dict]:
        return [chunk async for chunk in SimulatorChat(None).stream(CHANNEL, body, None)]

    assert len(asyncio.run(collect())) < MAX_QUOTED_CHARS


def test_counting_by_windows_matches_counting_at_once(monkeypatch) -> None:
    text = "naïve_word, x.y  z!! " * 50 + "a" * 40 + " tail"
    expected = len(re.findall(r"\w+|[^\w\s]", text))
    for window in (1, 3, 7, 64):
        monkeypatch.setattr(tokens, "_WINDOW", window)
        assert tokens.count(text) == expected, window


def test_a_2_mb_image_prompt_is_drawn_quickly_whatever_its_shape() -> None:
    for prompt in ("x" * 2_000_000, "word " * 400_000, "\n" * 2_000_000 + "end"):
        started = time.process_time()
        png = media.draw_png(prompt, 1024, 1024)
        assert time.process_time() - started < CPU_SECONDS
        assert png.startswith(b"\x89PNG")


def test_the_caption_of_a_long_prompt_is_that_of_its_beginning() -> None:
    start = "a red fox jumps over the lazy dog " * 10
    assert media._wrap(start + "word " * 100_000, 40, 3) == media._wrap(start + "other", 40, 3)
