"""Range requests by RFC 9110: the `Range` header as the bridge reads it
(rest_bridge/range_header.py) and the bytes that answer it (server/byte_ranges.py),
which gRPC clients reach with the same fields."""
from __future__ import annotations

import random

import pytest
from multidict import CIMultiDict

from rest_bridge.range_header import INT64_MAX, range_fields
from server.byte_ranges import ByteRange, RangeNotSatisfiable, resolve
from server.errors import GatewayError

TOTAL = 1000


def fields(value: str, **more: str) -> dict:
    return range_fields(CIMultiDict({"Range": value, **more}))


def answer(value: str, total: int = TOTAL):
    """(first, last, partial) for a Range header against a file of `total` bytes."""
    span = resolve(ByteRange(*(fields(value).get(k) for k in ("range_start", "range_end", "suffix_length"))),
                   total)
    return span.first, span.last, span.partial


@pytest.mark.parametrize("header, expected", [
    ("bytes=0-499", (0, 499, True)),
    ("bytes=500-999", (500, 999, True)),
    ("bytes=500-", (500, 999, True)),
    ("bytes=0-0", (0, 0, True)),
    ("bytes=-500", (500, 999, True)),          # the last 500 bytes
    ("bytes=-1", (999, 999, True)),
    ("bytes=-5000", (0, 999, True)),           # a suffix longer than the file is all of it
    ("bytes=900-5000", (900, 999, True)),      # a last byte past the end is clamped
    ("bytes=0-" + "9" * 4000, (0, 999, True)),
    ("bytes=-" + "9" * 4000, (0, 999, True)),
    ("bytes=000010-000019", (10, 19, True)),
    ("Bytes=1-2", (1, 2, True)),               # units are case-insensitive
    ("bytes=1-2,", (1, 2, True)),              # empty list elements are skipped
    ("bytes=1-2 ,", (1, 2, True)),
])
def test_a_satisfiable_range_selects_its_bytes(header, expected) -> None:
    assert answer(header) == expected


@pytest.mark.parametrize("header", [
    "items=0-10", "bytes 0-10", "bytes=a-b", "bytes=1-b", "bytes=-", "bytes=", "bytes=5", "bytes=--5",
    "bytes=-5-", "bytes=+1-2", "bytes=0x10-20", "bytes=1-2\u00e9", "bytes=\u0661-\u0662", "bytes=1.5-2",
    "bytes=0-10,20-30", "bytes=-1,-2", "=0-1", "", " ", "bytes=1_0-20", "bytes =1-2",
])
def test_an_unknown_unit_a_syntax_error_or_several_ranges_are_ignored(header) -> None:
    assert fields(header) == {}
    assert answer(header) == (0, TOTAL - 1, False)


@pytest.mark.parametrize("header", [
    f"bytes={TOTAL}-", f"bytes={TOTAL + 5}-{TOTAL + 10}", "bytes=" + "9" * 4000 + "-", "bytes=-0", "bytes=200-100",
])
def test_an_unsatisfiable_range_is_416_naming_the_size(header) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        answer(header)
    assert caught.value.http_status == 416 and caught.value.code == "range_not_satisfiable"
    assert caught.value.content_range == f"bytes */{TOTAL}"


def test_every_range_of_an_empty_file_is_unsatisfiable_and_the_whole_of_it_is_nothing() -> None:
    for header in ("bytes=0-", "bytes=-1", "bytes=0-0"):
        with pytest.raises(RangeNotSatisfiable):
            answer(header, total=0)
    span = resolve(ByteRange(), 0)
    assert span.length == 0 and not span.partial


def test_a_range_under_if_range_is_ignored_since_st_ai_sends_no_validator() -> None:
    assert fields("bytes=0-10", **{"If-Range": '"abc"'}) == {}


def test_offsets_past_int64_are_clamped_so_the_rpc_can_carry_them() -> None:
    assert fields("bytes=" + "1" * 30 + "-") == {"range_start": INT64_MAX}
    assert fields(f"bytes=0-{2**63}") == {"range_start": 0, "range_end": INT64_MAX}
    assert fields(f"bytes=0-{2**63 - 2}") == {"range_start": 0, "range_end": 2**63 - 2}


@pytest.mark.parametrize("asked, param", [
    (ByteRange(start=-1), "range_start"), (ByteRange(end=-9), "range_end"),
    (ByteRange(suffix=-3), "suffix_length"), (ByteRange(start=1, suffix=3), "suffix_length"),
])
def test_negative_or_mixed_fields_are_the_clients_400(asked, param) -> None:
    with pytest.raises(GatewayError) as caught:
        resolve(asked, TOTAL)
    assert caught.value.http_status == 400 and caught.value.param == param


def test_a_uint64_count_past_int64_read_as_negative_is_told_the_largest_value_that_works() -> None:
    wrapped = (2**64 - 1) - 2**64  # what an int64 field holds when a client sends uint64's largest value
    with pytest.raises(GatewayError) as caught:
        resolve(ByteRange(suffix=wrapped), TOTAL)
    assert str(INT64_MAX) in caught.value.message and caught.value.param == "suffix_length"
    assert resolve(ByteRange(suffix=INT64_MAX), TOTAL).content_range == f"bytes 0-{TOTAL - 1}/{TOTAL}"


def test_an_end_alone_means_from_the_first_byte() -> None:
    span = resolve(ByteRange(end=5), TOTAL)
    assert (span.first, span.last, span.partial, span.content_range) == (0, 5, True, f"bytes 0-5/{TOTAL}")


def test_random_fields_always_give_a_consistent_span_or_a_client_error() -> None:
    rng = random.Random(9110)
    values = [None, 0, 1, 2, -1, -(2**63), 2**63 - 1, 10, 999, 1000, 1001]
    for _ in range(5000):
        total = rng.choice([0, 1, 2, 10, 1000])
        asked = ByteRange(rng.choice(values), rng.choice(values), rng.choice(values))
        try:
            span = resolve(asked, total)
        except GatewayError as error:
            assert error.http_status in (400, 416), (asked, total, error)
            continue
        assert 0 <= span.length <= total, (asked, total, span)
        if span.partial:
            assert 0 <= span.first <= span.last < total, (asked, total, span)
        else:
            assert (span.first, span.length) == (0, total), (asked, total, span)
