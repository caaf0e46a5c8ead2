"""Malformed bodies thrown at the Responses API (`POST /v1/responses`) and the Messages API
(`POST /v1/messages`, `/v1/messages/count_tokens`) of a real `st-ai serve`: wrong JSON types
at every field of a full request, nulls, odd numbers, deep nesting, bodies that are not
objects and corrupted bytes. Every answer is either a valid answer in the route's API or a
4xx error in the route's shape (OpenAI's on /v1/responses, Anthropic's on /v1/messages) —
never a 5xx, never a traceback — and the server stays healthy.

The Responses and translated Messages requests go to the simulator (st-ai's own chat
channel); Messages also go to the fake Anthropic server on 127.0.0.1, passed through, where
Anthropic's own checks answer. Cases come from a seeded generator, so a failure reproduces;
each names what was done to the body."""
from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from tests.test_fuzz import (Session, _check_error, _deep_text, _encode, _get, _json_kind, _path_text,
                             _paths, _replaced, error_json, wrong_types)

pytestmark = pytest.mark.timeout(300)

SEED = 20261129
SIMULATED, PASSED = "fuzz-apis-sim", "fuzz-apis-claude"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

RESPONSES_BASE: dict = {
    "model": SIMULATED,
    "instructions": "Be brief.",
    "input": [
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Look at this"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "low"}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\": \"Rome\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ],
    "tools": [{"type": "function", "name": "weather", "description": "The weather.", "strict": False,
               "parameters": WEATHER_SCHEMA}],
    "tool_choice": "auto",
    "text": {"format": {"type": "text"}},
    "reasoning": {"effort": "low"},
    "max_output_tokens": 64,
    "temperature": 0.5,
    "top_p": 0.9,
    "metadata": {"trace": "abc"},
    "store": True,
    "parallel_tool_calls": True,
    "stream": False,
}

MESSAGES_BASE: dict = {
    "model": SIMULATED,
    "max_tokens": 64,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Look at this"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
            {"type": "text", "text": "And tomorrow?"}]},
    ],
    "tools": [{"name": "weather", "description": "The weather.", "input_schema": WEATHER_SCHEMA}],
    "tool_choice": {"type": "auto"},
    "stop_sequences": ["END"],
    "temperature": 0.5,
    "metadata": {"user_id": "fuzzer"},
    "stream": False,
}


@dataclass
class Case:
    id: str
    body: bytes
    must_fail: bool  # broken whatever the server thinks: only a 400 will do
    stream: bool = False


def cases(base: dict, rng: random.Random, model: str | None = None) -> list[Case]:
    if model is not None:
        base = {**base, "model": model}
    made: list[Case] = []
    marker = "__VALUE__"

    def literal(path: tuple, text: str) -> bytes:
        doc = copy.deepcopy(base)
        _get(doc, path[:-1])[path[-1]] = marker
        return _encode(doc).replace(f'"{marker}"'.encode(), text.encode())

    for label, doc, _, stream in wrong_types(base, rng, 0.3):  # wrong types, everywhere
        made.append(Case(label, _encode(doc), False, stream))
    for path in rng.sample(list(_paths(base)), 15):
        made.append(Case(f"null:{_path_text(path)}", _encode(_replaced(base, path, None)), False))
    made.append(Case("null:every-field", _encode({k: None for k in base}), True))
    numbers = ["1e308", str(2**70), str(-(2**64)), str(2**63), "-0.0", "5e-324", "1e400"]
    for path in [p for p in _paths(base) if _json_kind(_get(base, p)) == "number"] + [("unknown_field",)]:
        for number in rng.sample(numbers, 3):
            made.append(Case(f"number:{_path_text(path)}={number}", literal(path, number), False))
    for literal_text in ("NaN", "Infinity", "01", ".5"):
        made.append(Case(f"literal:max={literal_text}", literal(("unknown_field",), literal_text), True))
    deep_places = [p for p in _paths(base) if isinstance(_get(base, p), (dict, list))][:6] + [("unknown_field",)]
    for depth in (63, 64, 65, 254, 256, 1000):
        for path in deep_places:
            kind = rng.choice(["array", "object"])
            made.append(Case(f"deep:{_path_text(path)}:{kind}:{depth}", literal(path, _deep_text(depth, kind)), False))
    for text in ("", "null", "[]", "[{}]", "{", '"{}"', "{}{}", '{"model": "x",}', "0"):
        made.append(Case(f"shape:{text!r}", text.encode(), True))
    valid = _encode(base)
    for cut in sorted(rng.sample(range(1, len(valid)), 12)):
        made.append(Case(f"truncated:{cut}", valid[:cut], True))
    for i in range(30):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(body))
            body[position] = rng.choice(b'{}[]",:0123456789.ntfa \xff')
        made.append(Case(f"corrupt:{i}", bytes(body), False))
    return made


def check_anthropic_error(status: int, content_type: str, raw: bytes, what: str) -> None:
    body = error_json(status, content_type, raw, what)
    assert body.get("type") == "error" and set(body["error"]) == {"type", "message"}, f"{what}: {body}"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], f"{what}: {body}"


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "data" in lines:
            events.append((lines.get("event", ""), json.loads(lines["data"])))
    return events


def check_response(content_type: str, raw: bytes, stream: bool, what: str) -> None:
    text = raw.decode("utf-8")
    if not stream:
        answer = json.loads(text)
        assert answer["object"] == "response" and answer["status"] in ("completed", "incomplete"), \
            f"{what}: {text[:300]}"
        return
    assert content_type.startswith("text/event-stream"), f"{what}: {content_type}"
    events = sse_events(text)
    assert all(name == data["type"] for name, data in events), f"{what}: {text[:300]}"
    assert events[-1][0] in ("response.completed", "response.incomplete"), f"{what}: {text[-300:]}"


def check_message(content_type: str, raw: bytes, stream: bool, what: str) -> None:
    text = raw.decode("utf-8")
    if not stream:
        answer = json.loads(text)
        assert answer["type"] == "message" and answer["role"] == "assistant", f"{what}: {text[:300]}"
        return
    assert content_type.startswith("text/event-stream"), f"{what}: {content_type}"
    events = sse_events(text)
    assert all(name == data["type"] for name, data in events), f"{what}: {text[:300]}"
    assert events[-1][0] == "message_stop", f"{what}: {text[-300:]}"


@pytest.fixture(scope="module")
def apis(gateway, fake_anthropic):
    gateway.channel("fuzz-apis-sim", "simulator", [SIMULATED])
    gateway.channel("fuzz-apis-claude", "anthropic", [PASSED], base_url=fake_anthropic.url, key=fake_anthropic.key,
                    model_map={PASSED: "claude-haiku-4-5"})
    key = gateway.token("fuzz-apis")
    session = Session(gateway.http_url)
    yield gateway, session, key
    session.conn.close()


def run(apis, path: str, headers: dict, made: list[Case], ok: Callable[..., None],
        error: Callable[..., Any]) -> dict[int, int]:
    gateway, session, _ = apis
    failures, seen = [], {}
    for case in made:
        try:
            status, content_type, raw = session.request("POST", path, case.body, headers)
            seen[status] = seen.get(status, 0) + 1
            if status < 300 and not case.must_fail:
                ok(content_type, raw, case.stream, case.id)
                continue
            error(status, content_type, raw, case.id)
            if case.must_fail:
                assert status == 400, f"{case.id}: HTTP {status}: {raw[:300]!r}"
        except AssertionError as failure:
            failures.append(str(failure).split("\n")[0])
    assert gateway.proc.poll() is None, "the gateway died"
    assert not failures, f"{len(failures)} of {len(made)} cases failed:\n" + "\n".join(failures[:40])
    return seen


def test_fuzz_the_responses_api(apis) -> None:
    gateway, session, key = apis
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    status, _, raw = session.request("POST", "/v1/responses", _encode(RESPONSES_BASE), headers)
    assert status == 200, raw  # the unmutated request is valid: what the mutations break is theirs
    seen = run(apis, "/v1/responses", headers, cases(RESPONSES_BASE, random.Random(SEED)), check_response,
               _check_error)
    assert seen.get(400, 0) > 20 and seen.get(200, 0) > 20, seen


@pytest.mark.parametrize("model", [SIMULATED, PASSED], ids=["translated", "passed-through"])
def test_fuzz_the_messages_api(apis, model: str) -> None:
    gateway, session, key = apis
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "Content-Type": "application/json"}
    base = {**MESSAGES_BASE, "model": model}
    if model == PASSED:  # the channel's anthropic-version takes no sampling parameters, as Anthropic's
        del base["temperature"]
    status, _, raw = session.request("POST", "/v1/messages", _encode(base), headers)
    assert status == 200, raw
    seen = run(apis, "/v1/messages", headers, cases(base, random.Random(SEED + 1)), check_message,
               check_anthropic_error)
    assert seen.get(400, 0) > 20 and seen.get(200, 0) > 20, seen


def test_fuzz_counting_messages_tokens(apis) -> None:
    gateway, session, key = apis
    headers = {"x-api-key": key, "Content-Type": "application/json"}
    base = {k: v for k, v in MESSAGES_BASE.items() if k not in ("max_tokens", "stream", "stop_sequences",
                                                               "temperature", "metadata")}

    def counted(content_type: str, raw: bytes, stream: bool, what: str) -> None:
        answer = json.loads(raw)
        assert isinstance(answer.get("input_tokens"), int) and answer["input_tokens"] > 0, f"{what}: {answer}"

    for model in (SIMULATED, PASSED):
        doc = {**base, "model": model}
        run(apis, "/v1/messages/count_tokens", headers,
            [c for c in cases(doc, random.Random(SEED + 2)) if not c.stream], counted, check_anthropic_error)
