"""`st-ai price set|list|delete`, run as a subprocess on a temporary database."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.billing.cost import chat_cost, image_cost, video_cost
from server.billing.defaults import DEFAULT_PRICES
from server.billing.money import parse_amount
from server.store import prices as price_store
from server.store.db import open_db
from tests.test_cli import Result, clean_error, run


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "prices.db")


@pytest.fixture
def st_ai(db_path):
    def call(*args: str) -> Result:
        return run(*args, env_db=db_path)
    return call


def listed(st_ai) -> dict[str, dict]:
    result = st_ai("price", "list", "--json")
    assert result.code == 0, result.err
    return {entry["model"]: entry for entry in json.loads(result.out)}


def stored(db_path: str) -> dict:
    db = open_db(db_path)
    try:
        return price_store.operator_prices(db)
    finally:
        db.close()


def test_price_list_on_a_new_database_shows_the_dated_defaults_with_their_sources(st_ai):
    result = st_ai("price", "list")
    assert result.code == 0, result.err
    header = next(line for line in result.lines if line.startswith("MODEL"))
    assert header.split()[:2] == ["MODEL", "INPUT/1M"]
    for price in DEFAULT_PRICES:
        row = next(line for line in result.lines if line.split()[0] == price.model)
        assert f"default ({price.origin.checked})" in row
    entries = listed(st_ai)
    assert set(entries) == {p.model for p in DEFAULT_PRICES}
    for entry in entries.values():
        assert entry["source"] == "default" and entry["source_url"].startswith("https://") and entry["checked"]


def test_price_set_stores_the_operators_price_and_list_shows_it_as_decimal_strings(st_ai, db_path):
    result = st_ai("price", "set", "my-gpt", "--input", "1.25", "--cached-input", "0.125", "--output", "10",
                   "--cache-write", "1.5", "--per-request", "0.0005")
    assert result.code == 0, result.err
    assert "my-gpt" in result.out and "input=1.25/1M" in result.out
    entry = listed(st_ai)["my-gpt"]
    assert entry == {"model": "my-gpt", "currency": "USD", "input": "1.25", "cached_input": "0.125",
                     "output": "10", "cache_write": "1.5", "per_image": {}, "per_second": {},
                     "per_request": "0.0005", "source": "operator", "source_url": None, "checked": None}
    row = next(line for line in st_ai("price", "list").lines if line.startswith("my-gpt "))
    assert row.split() == ["my-gpt", "1.25", "0.125", "10", "1.5", "-", "-", "0.0005", "operator"]
    assert stored(db_path)["my-gpt"].input == 1_250_000  # micro-units per 1M tokens, an integer


def test_per_image_is_repeatable_and_price_set_merges_with_what_the_model_has(st_ai):
    assert st_ai("price", "set", "img", "--per-image", "1024x1024:hd=0.08", "--per-image",
                 "1024x1024=0.04").code == 0
    assert st_ai("price", "set", "img", "--per-image", "1024x1024:HD=0.09", "--per-image",
                 "1792x1024:standard=0.08", "--per-request", "0.001").code == 0
    entry = listed(st_ai)["img"]
    assert entry["per_image"] == {"1024x1024": "0.04", "1024x1024:hd": "0.09", "1792x1024:standard": "0.08"}
    assert entry["per_request"] == "0.001"


def test_per_second_takes_a_default_and_resolutions(st_ai):
    assert st_ai("price", "set", "vid", "--per-second", "0.1", "--per-second", "1792x1024=0.5",
                 "--per-second", "1080P=0.7").code == 0
    assert listed(st_ai)["vid"]["per_second"] == {"*": "0.1", "1080p": "0.7", "1792x1024": "0.5"}


def test_prices_set_with_the_cli_give_the_exact_costs(st_ai, db_path):
    assert st_ai("price", "set", "chat", "--input", "0.15", "--cached-input", "0.075", "--output", "0.6").code == 0
    assert st_ai("price", "set", "img", "--per-image", "1024x1024:hd=0.08").code == 0
    assert st_ai("price", "set", "vid", "--per-second", "0.1", "--per-second", "1792x1024=0.5").code == 0
    db = open_db(db_path)
    try:
        chat = price_store.lookup(db, "chat")
        # 1000 prompt tokens (400 cached) + 200 completion: 600 at 0.15/1M + 400 at 0.075/1M + 200 at 0.6/1M
        # = 90 + 30 + 120 micro-units
        assert chat_cost(chat, "chat", prompt_tokens=1000, completion_tokens=200, cached_tokens=400) == 240
        assert image_cost(price_store.lookup(db, "img"), "img", n=2, size="1024x1024", quality="hd") \
            == parse_amount("0.16")
        assert video_cost(price_store.lookup(db, "vid"), "vid", seconds=8.0, size="1024x1792") == parse_amount("4")
    finally:
        db.close()


def test_overriding_a_default_keeps_its_other_prices_and_delete_brings_the_default_back(st_ai):
    default = next(p for p in DEFAULT_PRICES if p.model == "claude-haiku-4-5")
    before = listed(st_ai)["claude-haiku-4-5"]
    assert st_ai("price", "set", "claude-haiku-4-5", "--output", "4").code == 0
    overridden = listed(st_ai)["claude-haiku-4-5"]
    assert overridden["source"] == "operator" and overridden["output"] == "4"
    assert overridden["input"] == before["input"] and overridden["cached_input"] == before["cached_input"]
    result = st_ai("price", "delete", "claude-haiku-4-5")
    assert result.code == 0 and "default" in result.out
    assert listed(st_ai)["claude-haiku-4-5"] == before
    assert before["checked"] == default.origin.checked


def test_price_delete_removes_an_operator_price(st_ai, db_path):
    assert st_ai("price", "set", "gone", "--input", "1").code == 0
    result = st_ai("price", "delete", "gone")
    assert result.code == 0 and "unpriced" in result.out
    assert "gone" not in listed(st_ai) and not stored(db_path)


@pytest.mark.parametrize("model", ["nope", "claude-haiku-4-5"])
def test_deleting_a_price_the_operator_never_set_is_a_clean_error(st_ai, model):
    clean_error(st_ai("price", "delete", model), "no operator price", model)


@pytest.mark.parametrize("args, words", [
    ((), "nothing to set"),
    (("--input", "-1"), "negative"),
    (("--input", "1e3"), "not an amount"),
    (("--input", "nan"), "not an amount"),
    (("--output", "1,000"), "not an amount"),
    (("--output", ""), "blank"),
    (("--cached-input", "0.0000001"), "more than 6 decimals"),
    (("--per-request", "$1"), "not an amount"),
    (("--per-image", "1024x1024"), "KEY=AMOUNT"),
    (("--per-image", "big=1"), "not a size"),
    (("--per-image", "1024x1024:h d=1"), "quality"),
    (("--per-image", "1024x1024:hd=-1"), "negative"),
    (("--per-second", "8k=1"), "not a resolution"),
    (("--per-second", "inf"), "not an amount"),
    (("--input", "1000000000000"), "too large"),
])
def test_price_set_refuses_bad_input_in_one_line_writing_nothing(st_ai, db_path, args, words):
    assert st_ai("price", "set", "ok", "--input", "1").code == 0
    result = st_ai("price", "set", "m", *args)
    clean_error(result, words)
    assert len(result.err.strip().splitlines()) == 1
    assert set(stored(db_path)) == {"ok"}


def test_price_set_refuses_a_model_name_with_spaces(st_ai, db_path):
    clean_error(st_ai("price", "set", "a model", "--input", "1"), "not a model name")
    assert not stored(db_path)
