"""What a request costs, in micro-units: pure functions of a price and the request's usage.

Token prices are per 1M tokens. `prompt_tokens` follows OpenAI's usage and includes the
cached tokens and the tokens written to a prompt cache: cached tokens are charged at the
cached-input price, cache writes at the cache-write price (both default to the input price
when unset), the rest at the input price. A model's per-request price is added to every
request it serves. Each cost is computed exactly and rounded once, half up
(`money.round_half_up`).

A model with no price for what was asked raises `Unpriced`; the caller decides whether that
is free (with a warning) or refused.
"""
from __future__ import annotations

from server.billing.money import divide_half_up, exact_quantity, round_half_up
from server.billing.prices import DEFAULT_RESOLUTION, SHORT_SIDE, ModelPrice, PriceError, image_key, parse_size

TOKENS_PER_PRICE = 1_000_000
# A request without a quality, or with "auto", lets the upstream choose; st-ai charges the
# size's fallback price, else the dearest quality it has for that size.
UPSTREAM_CHOOSES = {"", "auto"}


class Unpriced(LookupError):
    """The model has no price for this use."""

    def __init__(self, model: str, what: str) -> None:
        super().__init__(f"model {model!r} has no price for {what}")
        self.model = model
        self.what = what


def _count(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number, 0 or more (got {value!r})")
    return value


def _per_request(price: ModelPrice) -> int:
    return price.per_request or 0


def chat_cost(price: ModelPrice | None, model: str, *, prompt_tokens: int, completion_tokens: int,
              cached_tokens: int = 0, cache_write_tokens: int = 0) -> int:
    """The cost of a chat (or any token-priced) request from its usage."""
    if not (type(prompt_tokens) is type(completion_tokens) is type(cached_tokens) is type(cache_write_tokens) is int
            and min(prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens) >= 0):
        # which one, said only when one is wrong: this runs twice on every request
        for value, what in ((prompt_tokens, "prompt_tokens"), (completion_tokens, "completion_tokens"),
                            (cached_tokens, "cached_tokens"), (cache_write_tokens, "cache_write_tokens")):
            _count(value, what)
    if cached_tokens + cache_write_tokens > prompt_tokens:
        raise ValueError("cached and cache-write tokens are part of prompt_tokens and cannot exceed it")
    if price is None or not (price.prices_tokens or price.per_request is not None):
        raise Unpriced(model, "tokens")
    input_price = price.input or 0
    cached_price = input_price if price.cached_input is None else price.cached_input
    write_price = input_price if price.cache_write is None else price.cache_write
    uncached = prompt_tokens - cached_tokens - cache_write_tokens
    token_micros = (uncached * input_price + cached_tokens * cached_price
                    + cache_write_tokens * write_price + completion_tokens * (price.output or 0))
    return divide_half_up(token_micros, TOKENS_PER_PRICE) + _per_request(price)


def image_price(price: ModelPrice | None, model: str, size: str | None, quality: str | None) -> int:
    """The price of one image of `size` and `quality`.

    Where the upstream chooses (no quality or "auto"; no size or "auto"), the dearest
    matching price is charged, so a reservation is never short.
    """
    if price is None or not price.per_image:
        raise Unpriced(model, "images")
    wanted = (quality or "").strip().lower()
    if (size or "").strip().lower() in UPSTREAM_CHOOSES:
        matching = [v for k, v in price.per_image.items()
                    if wanted in UPSTREAM_CHOOSES or ":" not in k or k.endswith(f":{wanted}")]
        if matching:
            return max(matching)
        raise Unpriced(model, f"images of quality {quality}")
    size_key = image_key(size)  # also checks that size is WIDTHxHEIGHT
    if wanted not in UPSTREAM_CHOOSES and f"{size_key}:{wanted}" in price.per_image:
        return price.per_image[f"{size_key}:{wanted}"]
    if size_key in price.per_image:
        return price.per_image[size_key]
    if wanted in UPSTREAM_CHOOSES:
        qualities = [v for k, v in price.per_image.items() if k.startswith(f"{size_key}:")]
        if qualities:
            return max(qualities)
    raise Unpriced(model, f"{size} images" + (f" of quality {quality}" if wanted else ""))


def image_cost(price: ModelPrice | None, model: str, *, n: int, size: str | None,
               quality: str | None = None) -> int:
    """The cost of an image request for `n` images."""
    return _count(n, "n") * image_price(price, model, size, quality) + _per_request(price)


def _second_keys(size: str | None) -> list[str]:
    """The per-second price keys `size` matches, most exact first: WIDTHxHEIGHT either way
    round and its short side, or a resolution name a provider reports ("768p") as itself."""
    if not size:
        return []
    text = size.strip().lower()
    try:
        width, height = parse_size(text)
    except PriceError:
        return [text] if SHORT_SIDE.fullmatch(text) else []
    return [f"{width}x{height}", f"{height}x{width}", f"{min(width, height)}p"]


def second_price(price: ModelPrice | None, model: str, size: str | None) -> int:
    """The price of one second of video at `size` (WIDTHxHEIGHT, or a resolution such as
    720p for a task whose shape follows its image; None: the default price)."""
    if price is None or not price.per_second:
        raise Unpriced(model, "video seconds")
    keys = _second_keys(size)
    for key in (*keys, DEFAULT_RESOLUTION):
        if key in price.per_second:
            return price.per_second[key]
    raise Unpriced(model, f"video seconds at {size}")


def video_cost(price: ModelPrice | None, model: str, *, seconds: float | int | str, size: str | None = None) -> int:
    """The cost of a video of `seconds` (a float from the request, taken at its decimal text)."""
    exact = exact_quantity(seconds, "seconds")
    return round_half_up(exact * second_price(price, model, size)) + _per_request(price)


def video_token_cost(price: ModelPrice | None, model: str, *, completion_tokens: int) -> int:
    """The cost of a video priced by the tokens its provider counts (Ark's Seedance): the
    model's output price per 1M tokens. Only a price with no per-second price is used so."""
    _count(completion_tokens, "completion_tokens")
    if price is None or price.output is None or price.per_second:
        raise Unpriced(model, "video tokens")
    return divide_half_up(completion_tokens * price.output, TOKENS_PER_PRICE) + _per_request(price)


def request_cost(price: ModelPrice | None, model: str) -> int:
    """The cost of a request priced per request only."""
    if price is None or price.per_request is None:
        raise Unpriced(model, "requests")
    return price.per_request
