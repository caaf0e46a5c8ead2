"""server/billing/money.py: exact amounts in micro-units, parsed and shown as decimal strings."""
from __future__ import annotations

from fractions import Fraction

import pytest

from server.billing.money import (MAX_UNITS, MoneyError, divide_half_up, exact_quantity, format_amount,
                                  parse_amount, round_half_up)


@pytest.mark.parametrize("text, micros", [
    ("0", 0), ("0.0", 0), ("000", 0), ("2", 2_000_000), ("12", 12_000_000), ("0.15", 150_000),
    ("0.000150", 150), ("0.000001", 1), ("0.002", 2_000), ("1.25", 1_250_000), ("0.01875", 18_750),
    ("0.1", 100_000), ("0.30", 300_000), ("7.500000", 7_500_000), ("999999999999.999999", MAX_UNITS * 10**6 - 1),
    ("0.1000000000", 100_000),  # trailing zeros past the 6th decimal change nothing
    (" 3.5 ", 3_500_000),
])
def test_a_decimal_string_is_parsed_to_exact_micro_units(text, micros):
    assert parse_amount(text) == micros


@pytest.mark.parametrize("micros, text", [
    (0, "0"), (1, "0.000001"), (150, "0.00015"), (2_000, "0.002"), (150_000, "0.15"), (1_250_000, "1.25"),
    (12_000_000, "12"), (18_750, "0.01875"), (10_000_000_000, "10000"), (1_000_001, "1.000001"),
    (-2_000, "-0.002"), (-12_000_000, "-12"),
])
def test_micro_units_are_shown_as_the_shortest_decimal_string(micros, text):
    assert format_amount(micros) == text


@pytest.mark.parametrize("micros", [0, 1, 9, 10, 99_999, 100_000, 999_999, 1_000_000, 1_000_001,
                                    123_456_789, 18_750, 10**17 + 7])
def test_formatting_then_parsing_gives_back_the_same_amount(micros):
    assert parse_amount(format_amount(micros)) == micros
    assert parse_amount(format_amount(-micros), negative=True) == -micros


@pytest.mark.parametrize("text", ["1", "0.5", "0.000001", "12.34", "100", "0.01875"])
def test_a_canonical_string_survives_parse_and_format(text):
    assert format_amount(parse_amount(text)) == text


@pytest.mark.parametrize("text, words", [
    ("", "blank"), ("   ", "blank"),
    ("0.0000001", "more than 6 decimals"), ("1.1234567", "more than 6 decimals"),
    ("-1", "negative"), ("-0.5", "negative"),
    ("nan", "not an amount"), ("NaN", "not an amount"), ("inf", "not an amount"), ("-inf", "not an amount"),
    ("Infinity", "not an amount"), ("1e3", "not an amount"), ("1E-3", "not an amount"), ("0x10", "not an amount"),
    ("1,000", "not an amount"), ("1_000", "not an amount"), ("1 000", "not an amount"), ("1'000", "not an amount"),
    ("$1", "not an amount"), ("1$", "not an amount"), ("+1", "not an amount"), ("1.", "not an amount"),
    (".5", "not an amount"), ("1.2.3", "not an amount"), ("--1", "not an amount"), ("٣", "not an amount"),
    ("１", "not an amount"), ("1\n2", "not an amount"), ("abc", "not an amount"),
    ("1000000000000", "too large"), ("99999999999999999999", "too large"),
])
def test_bad_amounts_are_refused_with_a_clear_message(text, words):
    with pytest.raises(MoneyError, match=words):
        parse_amount(text)


def test_a_negative_amount_is_accepted_only_where_allowed():
    assert parse_amount("-1.5", negative=True) == -1_500_000
    assert parse_amount("-0", negative=False) == 0  # minus zero is zero, not a negative amount


@pytest.mark.parametrize("value", [0.15, 1, None, Fraction(1, 2)])
def test_only_text_is_parsed_never_a_float(value):
    with pytest.raises(MoneyError):
        parse_amount(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0.5, 1.0, True])
def test_formatting_refuses_anything_but_integers(value):
    with pytest.raises(TypeError):
        format_amount(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("exact, rounded", [
    (Fraction(0), 0), (Fraction(1, 2), 1), (Fraction(3, 2), 2), (Fraction(5, 2), 3),  # halves go up
    (Fraction(499_999, 1_000_000), 0), (Fraction(500_001, 1_000_000), 1), (Fraction(7, 3), 2),
    (Fraction(8, 3), 3), (Fraction(10**18 + 1, 2), 5 * 10**17 + 1),
])
def test_round_half_up(exact, rounded):
    assert round_half_up(exact) == rounded
    # the integer division token costs use rounds exactly the same
    assert divide_half_up(exact.numerator, exact.denominator) == rounded


def test_integer_division_rounds_as_the_fraction_does_everywhere():
    import random
    draw = random.Random(11)
    for _ in range(20_000):
        numerator = draw.randint(-10**15, 10**15)
        denominator = draw.choice([1, 2, 3, 7, 1_000_000, 1_000_001, draw.randint(1, 10**9)])
        assert divide_half_up(numerator, denominator) == round_half_up(Fraction(numerator, denominator))
    with pytest.raises(ValueError):
        divide_half_up(1, 0)


@pytest.mark.parametrize("value, exact", [
    (5.0, Fraction(5)), (0.1, Fraction(1, 10)), (4, Fraction(4)), ("12", Fraction(12)), ("2.5", Fraction(5, 2)),
    (1e-05, Fraction(1, 100_000)), (0.3, Fraction(3, 10)),
])
def test_a_quantity_from_a_request_is_taken_at_its_decimal_text(value, exact):
    assert exact_quantity(value, "seconds") == exact


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), "abc", "", True, "1,5"])
def test_a_bad_quantity_is_refused(value):
    with pytest.raises(MoneyError, match="seconds"):
        exact_quantity(value, "seconds")
