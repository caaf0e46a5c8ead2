"""Worst-case size of a chat request, for the quota reservation made before relaying: never
below what the upstream reports, bounded in time and memory on huge bodies."""
from __future__ import annotations

import base64
import json
import random
import time
import tracemalloc

import pytest
import toktok

from server.billing.estimate import max_output_tokens, prompt_tokens
from server.billing.image_tokens import image_tokens
from server.billing.output_caps import DEFAULT_OUTPUT_CAP, default_output_cap
from server.billing.tokenizer import CL100K, O200K
from tests.tiktoken_reference import reference_encoding

# OpenAI cookbook, "How to count tokens with tiktoken": requests and the prompt_tokens the API
# reported for them.
JARGON = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
]
WEATHER_TOOLS = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"]}}}]
WEATHER = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize("model, reported", [("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129),
                                              ("gpt-4o", 124), ("gpt-4o-mini", 124)])
def test_never_below_openais_documented_usage_for_messages(model, reported):
    estimate = prompt_tokens({"model": model, "messages": JARGON}, model)
    assert reported <= estimate <= reported * 1.25


@pytest.mark.parametrize("model, reported", [("gpt-3.5-turbo", 105), ("gpt-4", 105),
                                             ("gpt-4o", 101), ("gpt-4o-mini", 101)])
def test_never_below_openais_documented_usage_with_tools(model, reported):
    estimate = prompt_tokens({"model": model, "messages": WEATHER, "tools": WEATHER_TOOLS}, model)
    assert reported <= estimate <= reported * 2


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    return {name: reference_encoding(name, cache) for name in (CL100K, O200K)}


def cookbook_count(encoding, messages, tools, new_models: bool) -> int:
    """The cookbook's num_tokens_from_messages and num_tokens_for_tools, which it shows agree
    with the API's usage, extended to tool calls by counting their name and arguments."""
    count = lambda text: len(encoding.encode_ordinary(text))  # noqa: E731
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if key == "tool_calls":
                total += sum(count(c["function"]["name"]) + count(c["function"]["arguments"]) for c in value)
            elif isinstance(value, str):
                total += count(value) + (1 if key == "name" else 0)
    if tools:
        func_init = 7 if new_models else 10
        for tool in tools:
            function = tool["function"]
            total += func_init + count(function["name"] + ":" + function["description"].removesuffix("."))
            properties = function["parameters"]["properties"]
            total += 3 if properties else 0
            for key, prop in properties.items():
                total += 3
                if "enum" in prop:
                    total += -3 + sum(3 + count(item) for item in prop["enum"])
                total += count(f"{key}:{prop['type']}:{prop['description'].removesuffix('.')}")
        total += 12
    return total


def varied_request(rng: random.Random) -> tuple[list[dict], list[dict]]:
    words = ["the", "quota", "Überweisung", "数据", "🙂", "don't", "API_KEY", "42", "\n", "  ", "json", "{}",
             "—", "naïve", "Zürich", "тест", "اختبار", "x" * 40, "0123456789" * 3, "https://a.example/b?c=d"]
    text = lambda n: " ".join(rng.choice(words) for _ in range(n))  # noqa: E731
    messages = []
    for i in range(rng.randint(1, 12)):
        role = rng.choice(["system", "developer", "user", "assistant", "tool"])
        message = {"role": role, "content": text(rng.randint(0, 60))}
        if role == "user" and rng.random() < 0.3:
            message["name"] = f"user_{i}"
        if role == "assistant" and rng.random() < 0.5:
            message["tool_calls"] = [{"id": f"call_{i}_{k}", "type": "function", "function": {
                "name": f"fn_{k}", "arguments": json.dumps({"q": text(rng.randint(1, 10)), "n": k})}}
                for k in range(rng.randint(1, 3))]
        if role == "tool":
            message["tool_call_id"] = f"call_{i}"
        messages.append(message)
    tools = [{"type": "function", "function": {
        "name": f"tool_{k}", "description": text(rng.randint(1, 20)),
        "parameters": {"type": "object", "properties": {
            f"p{j}": {"type": rng.choice(["string", "number", "boolean"]), "description": text(rng.randint(1, 8)),
                      **({"enum": [text(1) for _ in range(3)]} if rng.random() < 0.3 else {})}
            for j in range(rng.randint(0, 5))}}}} for k in range(rng.randint(0, 4))]
    return messages, tools


@pytest.mark.parametrize("model, encoding, new_models", [("gpt-4o", O200K, True), ("gpt-4.1-mini", O200K, True),
                                                         ("gpt-4", CL100K, False), ("gpt-3.5-turbo", CL100K, False)])
def test_never_below_the_exact_count_on_varied_requests(reference, model, encoding, new_models):
    rng = random.Random(2026)
    for _ in range(150):
        messages, tools = varied_request(rng)
        body = {"model": model, "messages": messages, **({"tools": tools} if tools else {})}
        exact = cookbook_count(reference[encoding], messages, tools, new_models)
        assert prompt_tokens(body, model) >= exact, body


def test_a_json_schema_response_format_is_counted():
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
        "type": "object", "properties": {"verdict": {"type": "string", "description": "a long explanation " * 50}}}}}
    plain = prompt_tokens({"messages": WEATHER}, "gpt-4o")
    with_schema = prompt_tokens({"messages": WEATHER, "response_format": schema}, "gpt-4o")
    assert with_schema - plain >= toktok.batch_count([json.dumps(schema)], O200K)[0] // 2 + 100


# OpenAI's vision guide: worked examples of its per-image formula
@pytest.mark.parametrize("model, detail, width, height, tokens", [
    ("gpt-4o", "high", 1024, 1024, 765), ("gpt-4o", "high", 2048, 4096, 1105), ("gpt-4o", "low", 4096, 8192, 85),
    ("gpt-4o-mini", "high", 1024, 1024, 2833 + 4 * 5667), ("gpt-5", "high", 1024, 1024, 70 + 4 * 140),
    ("gpt-4.1-mini", None, 1024, 1024, 1659), ("gpt-4.1-mini", None, 1800, 2400, 2353),
    ("o4-mini", None, 1024, 1024, 1762), ("gpt-4.1-nano", "high", 1800, 2400, 3572),
])
def test_image_tokens_follow_openais_formula(model, detail, width, height, tokens):
    assert image_tokens(model, detail, width, height) == tokens


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5",
                                   "gpt-5-mini", "o1", "o3", "o4-mini", "some-new-model"])
@pytest.mark.parametrize("detail", [None, "auto", "high", "low"])
def test_an_image_of_unknown_size_costs_at_least_any_size_would(model, detail):
    rng = random.Random(5)
    sizes = [(rng.randint(1, 12000), rng.randint(1, 12000)) for _ in range(400)]
    sizes += [(768, 2048), (2048, 768), (1, 1), (512, 512), (767, 2049), (1536, 1536), (8000, 100)]
    bound = image_tokens(model, detail)
    assert all(image_tokens(model, detail, w, h) <= bound for w, h in sizes)


def test_images_in_a_request_cost_their_formula_not_their_base64():
    data = "data:image/png;base64," + base64.b64encode(random.Random(1).randbytes(400_000)).decode()
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image_url", "image_url": {"url": data, "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://img.example/cat.jpg", "detail": "low"}}]}]}
    text_only = prompt_tokens({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these images?"}]}]}, "gpt-4o")
    assert prompt_tokens(body, "gpt-4o") == text_only + 1445 + 85
    assert prompt_tokens(body, "claude-sonnet-4-5") >= 2 * 1600


def big_bodies() -> dict[str, dict]:
    thirty_mb = 30 * 1024 * 1024
    return {
        "one ascii string": {"messages": [{"role": "user", "content": "word " * (thirty_mb // 5)}]},
        "one non-ascii string": {"messages": [{"role": "user", "content": "Größe " * (thirty_mb // 7)}]},
        "many messages": {"messages": [{"role": "user", "content": "m" * 290} for _ in range(thirty_mb // 300)]},
        "deep nesting": {"messages": [{"role": "user", "content": "x"}],
                         "tools": [{"type": "function", "function": {"name": "f", "parameters": {
                             "type": "object", "properties": {"p": {"description": "d " * (thirty_mb // 2)}}}}}]},
    }


@pytest.mark.parametrize("kind", list(big_bodies()))
def test_a_30mb_body_costs_about_one_pass_of_the_tokenizer_not_seconds_or_a_gigabyte(kind):
    body = big_bodies()[kind]
    prompt_tokens(body, "gpt-4o")  # warm the encoding
    # the yardstick, timed in the same run so a busy machine slows both alike: one pass of
    # the tokenizer over the whole body as a single JSON text
    whole = json.dumps(body)
    started = time.perf_counter()
    toktok.batch_count([whole], O200K, threads=1)
    one_pass = time.perf_counter() - started
    tracemalloc.start()
    started = time.perf_counter()
    estimate = prompt_tokens(body, "gpt-4o")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # a quadratic walk would cost thousands of passes; tracemalloc alone slows the
    # estimate of many small messages several times over
    assert elapsed < 20 * one_pass + 0.5, (elapsed, one_pass)
    assert peak < 80 * 1024 * 1024
    texts = [m["content"] for m in body["messages"]]
    assert estimate >= sum(toktok.batch_count(texts, O200K, threads=1))


def test_a_deeply_nested_message_does_not_exhaust_the_stack():
    content: object = "leaf"
    for _ in range(100_000):
        content = [content]
    assert prompt_tokens({"messages": [{"role": "user", "content": content}]}, "gpt-4o") > 1


# dated table (server/billing/output_caps.py)
@pytest.mark.parametrize("model, cap", [
    ("gpt-5", 128_000), ("gpt-5-mini", 128_000), ("gpt-5.1", 128_000), ("gpt-4.1", 32_768), ("gpt-4.1-nano", 32_768),
    ("gpt-4o", 16_384), ("gpt-4o-mini-2024-07-18", 16_384), ("chatgpt-4o-latest", 16_384), ("o1", 100_000),
    ("o1-mini", 65_536), ("o3-mini", 100_000), ("o4-mini", 100_000), ("gpt-4-turbo", 4_096), ("gpt-4-0613", 8_192),
    ("gpt-4-32k", 32_768), ("gpt-3.5-turbo", 4_096), ("openai/gpt-4o", 16_384),
    ("claude-opus-4-1-20250805", 32_000), ("claude-opus-4-20250514", 32_000), ("claude-opus-4-5", 64_000),
    ("claude-opus-4-6", 128_000), ("claude-opus-4-7", 128_000), ("claude-sonnet-4-5-20250929", 64_000),
    ("claude-sonnet-4-6", 128_000), ("claude-haiku-4-5", 64_000), ("claude-3-7-sonnet-latest", 64_000),
    ("claude-3-5-haiku-20241022", 8_192), ("claude-3-haiku-20240307", 4_096),
    ("us.anthropic.claude-3-5-sonnet-20240620-v1:0", 8_192), ("gemini-2.5-pro", 65_536),
    ("models/gemini-3-flash", 65_536), ("gemini-2.0-flash", 8_192), ("simulator-chat", DEFAULT_OUTPUT_CAP),
])
def test_the_default_output_cap_table(model, cap):
    assert default_output_cap(model) == cap


def test_the_requests_own_limit_wins_over_the_default_cap():
    assert max_output_tokens({"max_completion_tokens": 300}, "gpt-4o") == 300
    assert max_output_tokens({"max_tokens": 50}, "gpt-4o") == 50
    assert max_output_tokens({"max_tokens": 50, "max_completion_tokens": 70}, "gpt-4o") == 70
    assert max_output_tokens({"max_tokens": 64.0}, "gpt-4o") == 64  # a gRPC client's number


def test_each_of_n_choices_may_use_the_whole_limit():
    assert max_output_tokens({"max_tokens": 100, "n": 3}, "gpt-4o") == 300
    assert max_output_tokens({"n": 2}, "gpt-4.1") == 2 * 32_768


@pytest.mark.parametrize("bad", [0, -5, True, "100", 1.5, None])
def test_a_limit_that_is_not_a_positive_integer_falls_back_to_the_cap(bad):
    assert max_output_tokens({"max_tokens": bad, "n": bad}, "gpt-4o") == 16_384


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "claude-sonnet-4-5"])
def test_past_the_exact_budget_the_estimate_only_grows(model):
    rng = random.Random(99)
    for _ in range(150):
        messages, tools = varied_request(rng)
        body = {"messages": messages, **({"tools": tools} if tools else {})}
        assert prompt_tokens(body, model, exact_bytes=0) >= prompt_tokens(body, model), body
