"""Exact amounts of money: integers of micro-units (1e-6) of the operator's currency.

Amounts never pass through a float. Text such as "0.15" or "0.000150" is parsed digit by
digit into micro-units; micro-units are shown back as the shortest decimal string ("0.002",
"12", "0.15"), which is also how JSON carries them.

Rounding rule (one for all of st-ai): a request's cost is computed exactly as a rational
number of micro-units and rounded ONCE per request to a whole micro-unit, half up
(0.5 micro-units and above go up). Prices themselves are exact: a price may not carry more
than 6 decimals, so nothing is rounded when it is set.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

CURRENCY = "USD"
MICROS = 1_000_000
DECIMALS = 6
# Far above any real price or quota, and far below SQLite's 2**63 micro-units, so sums of
# many amounts still fit in a column.
MAX_UNITS = 10**12

_AMOUNT = re.compile(r"(-)?([0-9]+)(?:\.([0-9]+))?")


class MoneyError(ValueError):
    """Text that is not an amount st-ai accepts; the message says why, in one line."""


def parse_amount(text: str, *, negative: bool = False) -> int:
    """A plain decimal ("2", "0.15", "0.000150") as micro-units, exactly.

    Refused with a clear message: blanks, signs other than a leading "-" (and that only when
    `negative`), exponents, NaN/inf, thousands separators, non-ASCII digits, more than 6
    decimals, and amounts of MAX_UNITS or more.
    """
    if not isinstance(text, str):
        raise MoneyError(f"{text!r} is not an amount: write it as a decimal string such as 0.15")
    stripped = text.strip()
    if not stripped:
        raise MoneyError("an amount cannot be blank: write a decimal such as 0.15")
    match = _AMOUNT.fullmatch(stripped)
    if not match:
        raise MoneyError(f"{text!r} is not an amount: write a plain decimal such as 0.15 "
                         "(no exponent, sign, currency symbol or thousands separator)")
    minus, whole, fraction = match.groups()
    fraction = fraction or ""
    if len(fraction.rstrip("0")) > DECIMALS:
        raise MoneyError(f"{text!r} has more than {DECIMALS} decimals: amounts are kept to the "
                         f"micro-unit (0.000001)")
    fraction = fraction[:DECIMALS].ljust(DECIMALS, "0")
    units = int(whole) * MICROS + int(fraction)
    if units >= MAX_UNITS * MICROS:
        raise MoneyError(f"{text!r} is too large: amounts stay below {MAX_UNITS:,}".replace(",", "_"))
    if minus and units:
        if not negative:
            raise MoneyError(f"{text!r} is negative: this amount must be 0 or more")
        return -units
    return units


def format_amount(micros: int) -> str:
    """Micro-units as the shortest exact decimal: 2000 -> "0.002", 12_000_000 -> "12"."""
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise TypeError(f"amounts are integers of micro-units, not {type(micros).__name__}")
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS)
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}." + f"{fraction:06d}".rstrip("0")


def round_half_up(micros: Fraction) -> int:
    """The one rounding st-ai does: an exact cost to whole micro-units, half up."""
    if micros < 0:
        return -round_half_up(-micros)
    return int(micros + Fraction(1, 2))  # int() truncates; costs here are >= 0


def divide_half_up(numerator: int, denominator: int) -> int:
    """round_half_up(Fraction(numerator, denominator)) for integers, without building a
    Fraction (a token cost is worked out for every request)."""
    if denominator <= 0:
        raise ValueError("the denominator is a positive integer")
    if numerator < 0:
        return -divide_half_up(-numerator, denominator)
    return (2 * numerator + denominator) // (2 * denominator)


def exact_quantity(value: float | int | str, what: str) -> Fraction:
    """A non-negative quantity (e.g. 5.0 seconds of video) as an exact fraction.

    A float goes through its shortest text (`str(0.1)` is "0.1"), so 0.1 seconds is one
    tenth, not the binary fraction nearest to it.
    """
    if isinstance(value, bool):
        raise MoneyError(f"{value!r} is not a number of {what}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise MoneyError(f"{value!r} is not a number of {what}") from None
    if not number.is_finite() or number < 0:
        raise MoneyError(f"{value!r} is not a number of {what} (a finite number, 0 or more)")
    return Fraction(number)
