"""A chat request's token counts for settlement (server/billing/usage_count.py): the
upstream's OpenAI-shaped usage, prompt-cache reads and writes included, plain and streamed."""
from __future__ import annotations

from server.billing.usage_count import StreamMeter, TokenCounts, from_usage


def test_cache_reads_and_writes_are_read_from_prompt_tokens_details():
    usage = {"prompt_tokens": 3100, "completion_tokens": 50,
             "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 2000}}
    assert from_usage(usage) == TokenCounts(3100, 1000, 50, False, cache_write=2000)


def test_a_usage_without_cache_details_has_no_cache_tokens():
    assert from_usage({"prompt_tokens": 10, "completion_tokens": 2}) == TokenCounts(10, 0, 2, False, 0)


def test_cache_counts_never_exceed_the_prompt_they_are_part_of():
    usage = {"prompt_tokens": 100, "completion_tokens": 1,
             "prompt_tokens_details": {"cached_tokens": 70, "cache_write_tokens": 90}}
    counts = from_usage(usage)
    assert (counts.cached, counts.cache_write) == (70, 30)


def test_malformed_cache_writes_count_as_none():
    for bad in (-5, "12", True, 1.5, None):
        usage = {"prompt_tokens": 100, "completion_tokens": 1, "prompt_tokens_details": {"cache_write_tokens": bad}}
        assert from_usage(usage).cache_write == 0


def test_a_stream_meter_settles_with_the_usage_chunks_cache_writes():
    meter = StreamMeter("claude-sonnet-4-5")
    meter.saw({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    meter.saw({"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 3,
                                        "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 20}}})
    assert meter.counts(prompt_estimate=5) == TokenCounts(40, 10, 3, False, 20)
