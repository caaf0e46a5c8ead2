"""server/billing/defaults.py: st-ai's dated default prices, each with its source."""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from server.billing.cost import chat_cost
from server.billing.defaults import DEFAULT_PRICES
from server.billing.money import parse_amount
from server.billing.prices import check_model

# Only providers' own pricing pages count as a source.
OFFICIAL_HOSTS = {"platform.claude.com", "docs.anthropic.com", "www.anthropic.com", "openai.com",
                  "developers.openai.com", "platform.openai.com", "ai.google.dev", "cloud.google.com"}


def test_every_default_price_names_its_source_page_and_the_date_it_was_read():
    assert DEFAULT_PRICES
    for price in DEFAULT_PRICES:
        assert price.origin.kind == "default", price.model
        url = urlsplit(price.origin.source_url or "")
        assert url.scheme == "https" and url.hostname in OFFICIAL_HOSTS, price.model
        checked = dt.date.fromisoformat(price.origin.checked or "")
        assert dt.date(2025, 1, 1) <= checked <= dt.date.today(), price.model


def test_every_default_model_appears_once_under_a_valid_name():
    models = [p.model for p in DEFAULT_PRICES]
    assert len(models) == len(set(models))
    for model in models:
        assert check_model(model) == model


def test_every_default_prices_something_and_every_amount_is_a_whole_non_negative_micro_unit():
    for price in DEFAULT_PRICES:
        amounts = [price.input, price.cached_input, price.output, price.cache_write, price.per_request,
                   *price.per_image.values(), *price.per_second.values()]
        assert any(a is not None for a in amounts), price.model
        for amount in amounts:
            assert amount is None or (type(amount) is int and amount >= 0), price.model


def test_token_defaults_price_input_and_output_and_cached_input_is_no_dearer():
    for price in DEFAULT_PRICES:
        if price.prices_tokens:
            assert price.input is not None and price.output is not None, price.model
            assert price.cached_input is None or price.cached_input <= price.input, price.model


def test_a_default_gives_the_published_cost():
    haiku = next(p for p in DEFAULT_PRICES if p.model == "claude-haiku-4-5")
    # $1 / $5 per MTok, cache hits $0.10, 5-minute cache writes $1.25
    cost = chat_cost(haiku, haiku.model, prompt_tokens=1_000_000, completion_tokens=1_000_000,
                     cached_tokens=200_000, cache_write_tokens=100_000)
    assert cost == parse_amount("0.7") + parse_amount("0.02") + parse_amount("0.125") + parse_amount("5")
