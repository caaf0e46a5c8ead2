"""server/billing/cost.py: each kind of price gives the exact cost, rounded once, half up."""
from __future__ import annotations

import pytest

from server.billing.cost import Unpriced, chat_cost, image_cost, request_cost, video_cost
from server.billing.money import parse_amount
from server.billing.prices import ModelPrice, PriceError

M = parse_amount  # "1.25" -> 1_250_000 micro-units


def tokens(**prices: str) -> ModelPrice:
    return ModelPrice("m", **{name: M(value) for name, value in prices.items()})


def test_input_and_output_tokens_are_charged_per_million():
    price = tokens(input="1.25", output="10")
    # 1000 * 1.25/1M + 500 * 10/1M = 0.00125 + 0.005
    assert chat_cost(price, "m", prompt_tokens=1000, completion_tokens=500) == M("0.00625")
    assert chat_cost(price, "m", prompt_tokens=1_000_000, completion_tokens=1_000_000) == M("11.25")
    assert chat_cost(price, "m", prompt_tokens=0, completion_tokens=0) == 0


def test_cached_tokens_are_part_of_the_prompt_and_charged_at_the_cached_price():
    price = tokens(input="2", cached_input="0.5", output="8")
    # 1000 prompt tokens of which 600 cached: 400 * 2 + 600 * 0.5 + 100 * 8 = 800 + 300 + 800 (per 1M)
    assert chat_cost(price, "m", prompt_tokens=1000, completion_tokens=100, cached_tokens=600) == M("0.0019")


def test_cached_tokens_without_a_cached_price_cost_the_input_price():
    price = tokens(input="2", output="8")
    assert (chat_cost(price, "m", prompt_tokens=1000, completion_tokens=0, cached_tokens=600)
            == chat_cost(price, "m", prompt_tokens=1000, completion_tokens=0))


def test_cache_writes_are_charged_at_the_cache_write_price():
    price = tokens(input="3", cached_input="0.3", cache_write="3.75", output="15")
    # 10_000 prompt = 2000 written + 5000 read + 3000 plain; 200 out
    # 3000*3 + 5000*0.3 + 2000*3.75 + 200*15 = 9000 + 1500 + 7500 + 3000 = 21000 micro per 1M -> 0.021
    cost = chat_cost(price, "m", prompt_tokens=10_000, completion_tokens=200, cached_tokens=5000,
                     cache_write_tokens=2000)
    assert cost == M("0.021")


def test_cache_writes_without_a_cache_write_price_cost_the_input_price():
    price = tokens(input="3", output="15")
    assert (chat_cost(price, "m", prompt_tokens=10_000, completion_tokens=0, cache_write_tokens=4000)
            == chat_cost(price, "m", prompt_tokens=10_000, completion_tokens=0) == M("0.03"))


def test_a_request_is_rounded_once_half_up_not_per_token_kind():
    price = tokens(input="0.15", output="0.6")
    # 3 * 0.15/1M = 0.45 micro, 1 * 0.6/1M = 0.6 micro: rounded apart 0 + 1 = 1, together 1.05 -> 1
    assert chat_cost(price, "m", prompt_tokens=3, completion_tokens=1) == 1
    # 10 * 0.15 = 1.5 micro: exactly half, rounded up to 2
    assert chat_cost(price, "m", prompt_tokens=10, completion_tokens=0) == 2
    # 3 * 0.15 = 0.45 micro: below half, 0
    assert chat_cost(price, "m", prompt_tokens=3, completion_tokens=0) == 0
    # 0.01875/1M * 80 = 1.5 micro -> 2; * 79 = 1.48125 -> 1
    small = tokens(input="0.01875")
    assert chat_cost(small, "m", prompt_tokens=80, completion_tokens=0) == 2
    assert chat_cost(small, "m", prompt_tokens=79, completion_tokens=0) == 1


def test_many_small_requests_are_each_rounded_on_their_own():
    price = tokens(input="0.15")
    assert sum(chat_cost(price, "m", prompt_tokens=10, completion_tokens=0) for _ in range(100)) == 200


def test_a_per_request_price_is_added_to_token_costs():
    price = tokens(input="1", output="1", per_request="0.01")
    assert chat_cost(price, "m", prompt_tokens=1000, completion_tokens=1000) == M("0.012")
    assert request_cost(price, "m") == M("0.01")


def test_a_model_priced_only_per_request_charges_that_for_chat():
    price = ModelPrice("m", per_request=M("0.002"))
    assert chat_cost(price, "m", prompt_tokens=123_456, completion_tokens=789) == M("0.002")


@pytest.mark.parametrize("kwargs", [
    {"prompt_tokens": -1, "completion_tokens": 0}, {"prompt_tokens": 1, "completion_tokens": -1},
    {"prompt_tokens": 10, "completion_tokens": 0, "cached_tokens": 11},
    {"prompt_tokens": 10, "completion_tokens": 0, "cached_tokens": 6, "cache_write_tokens": 5},
    {"prompt_tokens": 1.5, "completion_tokens": 0}, {"prompt_tokens": True, "completion_tokens": 0},
])
def test_impossible_usage_is_refused(kwargs):
    with pytest.raises(ValueError):
        chat_cost(tokens(input="1"), "m", **kwargs)


IMAGES = ModelPrice("img", per_image={"1024x1024:hd": M("0.08"), "1024x1024:standard": M("0.04"),
                                      "1792x1024": M("0.12"), "1024x1536:low": M("0.016"),
                                      "1024x1536:high": M("0.25")})


@pytest.mark.parametrize("n, size, quality, cost", [
    (1, "1024x1024", "hd", "0.08"), (3, "1024x1024", "hd", "0.24"), (2, "1024x1024", "standard", "0.08"),
    (1, "1024x1024", "HD", "0.08"),                       # quality is matched case-blind
    (2, "1792x1024", "hd", "0.24"), (1, "1792x1024", None, "0.12"),  # a size alone: any quality
    (1, "1024x1536", None, "0.25"), (1, "1024x1536", "auto", "0.25"),  # upstream chooses: dearest for the size
    (1, "1024x1024", None, "0.08"),
    (4, "1024x1536", "low", "0.064"), (0, "1024x1024", "hd", "0"),
])
def test_images_are_priced_by_size_and_quality(n, size, quality, cost):
    assert image_cost(IMAGES, "img", n=n, size=size, quality=quality) == M(cost)


def test_an_image_per_request_price_is_added_once_not_per_image():
    price = ModelPrice("img", per_image={"1024x1024": M("0.04")}, per_request=M("0.001"))
    assert image_cost(price, "img", n=3, size="1024x1024") == M("0.121")


@pytest.mark.parametrize("size, quality", [("512x512", None), ("1024x1024", "low"), ("1024x1536", "medium")])
def test_an_image_without_a_matching_price_is_unpriced(size, quality):
    with pytest.raises(Unpriced, match="img"):
        image_cost(IMAGES, "img", n=1, size=size, quality=quality)


def test_a_bad_image_size_is_refused():
    with pytest.raises(PriceError):
        image_cost(IMAGES, "img", n=1, size="huge", quality="hd")


VIDEO = ModelPrice("vid", per_second={"*": M("0.1"), "1792x1024": M("0.5"), "1080p": M("0.7")})


@pytest.mark.parametrize("seconds, size, cost", [
    (5.0, None, "0.5"), (4, "1280x720", "0.4"), ("12", "720x1280", "1.2"),
    (8, "1792x1024", "4"), (8, "1024x1792", "4"),         # either orientation
    (10, "1920x1080", "7"), (10, "1080x1920", "7"),       # the short side, as 1080p
    (0.1, None, "0.01"), (2.5, "1792x1024", "1.25"), (0.3, None, "0.03"),
    (6, "1080P", "4.2"), (6, "768P", "0.6"), (6, "4k", "0.6"),  # a task shaped by its image: its resolution
])
def test_video_seconds_are_priced_by_resolution(seconds, size, cost):
    assert video_cost(VIDEO, "vid", seconds=seconds, size=size) == M(cost)


def test_video_seconds_are_exact_and_rounded_once_half_up():
    price = ModelPrice("vid", per_second={"*": M("0.000003")})  # 3 micro-units per second
    assert video_cost(price, "vid", seconds=0.5) == 2    # 1.5 micro -> 2
    assert video_cost(price, "vid", seconds=0.1) == 0    # 0.3 micro -> 0 (0.1 is one tenth, not 0.1000000000000000055)
    assert video_cost(price, "vid", seconds="0.4999") == 1  # 1.4997 micro -> 1


def test_a_video_resolution_without_a_price_and_no_default_is_unpriced():
    price = ModelPrice("vid", per_second={"720p": M("0.1")})
    assert video_cost(price, "vid", seconds=4, size="1280x720") == M("0.4")
    with pytest.raises(Unpriced, match="1792x1024"):
        video_cost(price, "vid", seconds=4, size="1792x1024")
    with pytest.raises(Unpriced):
        video_cost(price, "vid", seconds=4)


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), "four"])
def test_bad_video_seconds_are_refused(seconds):
    with pytest.raises(ValueError):
        video_cost(VIDEO, "vid", seconds=seconds)


def test_a_model_without_a_price_says_so_for_every_kind():
    for call in (lambda p: chat_cost(p, "x", prompt_tokens=1, completion_tokens=1),
                 lambda p: image_cost(p, "x", n=1, size="1024x1024"),
                 lambda p: video_cost(p, "x", seconds=4),
                 lambda p: request_cost(p, "x")):
        with pytest.raises(Unpriced) as raised:
            call(None)
        assert raised.value.model == "x"


def test_a_model_priced_for_one_kind_is_unpriced_for_the_others():
    with pytest.raises(Unpriced, match="tokens"):
        chat_cost(IMAGES, "img", prompt_tokens=1, completion_tokens=1)
    with pytest.raises(Unpriced, match="video"):
        video_cost(tokens(input="1"), "m", seconds=1)
    with pytest.raises(Unpriced, match="images"):
        image_cost(VIDEO, "vid", n=1, size="1024x1024")


@pytest.mark.parametrize("size, quality, cost", [
    (None, None, "0.25"), ("auto", "auto", "0.25"), ("", None, "0.25"),   # dearest image of all
    ("auto", "hd", "0.12"),        # dearest hd price, or a size-alone price (any quality)
    ("auto", "low", "0.12"), (None, "standard", "0.12"),
])
def test_an_image_whose_size_the_upstream_chooses_is_charged_the_dearest_matching_price(size, quality, cost):
    assert image_cost(IMAGES, "img", n=1, size=size, quality=quality) == M(cost)


def test_an_image_of_unknown_size_and_an_unpriced_quality_is_unpriced():
    price = ModelPrice("img", per_image={"1024x1024:hd": M("0.08")})
    with pytest.raises(Unpriced, match="low"):
        image_cost(price, "img", n=1, size="auto", quality="low")
