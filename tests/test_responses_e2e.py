"""OpenAI's Responses API through st-ai, end to end, with the official openai SDK over REST
and by reflection over gRPC, on every kind of chat channel: an OpenAI-compatible server
with chat only (translated), one with the Responses API declared `--native-apis
chat,responses` (passed through), the Anthropic fake and the Gemini fake (translated).
Stored responses, `previous_response_id`, their owner token, built-in tools, the ledger
and quotas. Everything listens on 127.0.0.1."""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Callable

import grpc
import openai
import pytest
from google.protobuf import json_format
from openai import OpenAI
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from server.billing.prices import PriceChanges
from server.store import channels as channel_store
from server.store import prices as price_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway
from tests.fakes import anthropic as claude_fake
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.faults import Fault
from tests.fakes.gemini import FakeGemini
from tests.fakes.gemini import Reply as GeminiReply
from tests.fakes.openai_upstream import FakeOpenAI, StreamPlan
from tests.reflection_client import Reflected, auth, error_detail

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 20.0
EVENTS = TypeAdapter(ResponseStreamEvent)
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"], "additionalProperties": False}, "strict": True}


class Weather(BaseModel):
    city: str
    temperature: int


WEATHER_JSON = '{"city": "Paris", "temperature": 21}'


@dataclass
class Target:
    """One kind of channel behind a public model name."""
    kind: str
    model: str
    text: str                               # its upstream's default answer
    requests: Callable[[], list[dict]]      # the bodies its upstream received, oldest first
    path: Callable[[], str]                 # the path of its upstream's last request
    answer_call: Callable[[], None]         # the next answer calls get_weather for Paris
    answer_text: Callable[[str], None]      # the next answer is this text
    streamed: str | None = None             # its upstream's default streamed answer, when not `text`

    @property
    def stream_text(self) -> str:
        return self.streamed or self.text


@pytest.fixture(scope="module")
def fakes():
    made = {"compat": FakeOpenAI(responses_api=False).start(), "native": FakeOpenAI().start(),
            "anthropic": FakeAnthropic().start(), "gemini": FakeGemini().start()}
    yield made
    for fake in made.values():
        fake.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fakes):
    db_path = str(tmp_path_factory.mktemp("responses") / "st-ai.db")
    open_db(db_path).close()
    gateway = start_gateway(db_path, "--cooldown-failures", "1000", "--probe-interval", "3600")
    db = open_db(db_path)
    try:
        channel_store.add(db, "native", "openai", fakes["native"].base_url, fakes["native"].api_key,
                          ["gpt-native", "gpt-both"], native_apis=frozenset({"chat", "responses"}))
        # before the compat channel for these models: one that fails on purpose, one that says
        # it has the Responses API on a server without it
        channel_store.add(db, "native-first", "openai", fakes["native"].base_url, fakes["native"].api_key,
                          ["gpt-failover"], priority=2, native_apis=frozenset({"chat", "responses"}))
        channel_store.add(db, "misdeclared", "openai", fakes["compat"].base_url, fakes["compat"].api_key,
                          ["gpt-misdeclared"], priority=2, native_apis=frozenset({"chat", "responses"}))
    finally:
        db.close()
    # gpt-both: the compat channel first, the native one after it
    gateway.channel("compat", "openai", ["gpt-compat", "gpt-priced", "gpt-both", "gpt-failover", "gpt-misdeclared"],
                    base_url=fakes["compat"].base_url, key=fakes["compat"].api_key, priority=1)
    gateway.channel("anthropic", "anthropic", ["claude-haiku-4-5"], base_url=fakes["anthropic"].url,
                    key=fakes["anthropic"].key)
    gateway.channel("gemini", "gemini", ["gemini-2.5-flash"], base_url=fakes["gemini"].base_url,
                    key=fakes["gemini"].api_key)
    yield gateway
    stop_gateway(gateway)


@pytest.fixture(scope="module")
def key(gw):
    return gw.token("responses-e2e")


def client(gw, key: str) -> OpenAI:
    return OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=TIMEOUT)


def _compat(fake: FakeOpenAI) -> Target:
    def answer(message: dict, finish: str) -> None:
        fake.completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-compat",
                           "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                        "finish_reason": finish}],
                           "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}}
    return Target("compat", "gpt-compat", "Hello from the fake.", lambda: [r.body for r in fake.received],
                  lambda: fake.received[-1].path,
                  lambda: answer({"content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
                      "name": "get_weather", "arguments": '{"city": "Paris"}'}}]}, "tool_calls"),
                  lambda text: answer({"content": text}, "stop"), streamed="Hello!")


def _native(fake: FakeOpenAI) -> Target:
    def text(words: str) -> None:
        fake.response_output = [{"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                                 "content": [{"type": "output_text", "text": words, "annotations": []}]}]
    return Target("native", "gpt-native", "Hello from the fake Responses API.", lambda: [r.body for r in fake.received],
                  lambda: fake.received[-1].path, lambda: None, text)


def _anthropic(fake: FakeAnthropic) -> Target:
    return Target("anthropic", "claude-haiku-4-5", "Hello from Claude.", lambda: [r.body for r in fake.received],
                  lambda: fake.received[-1].path,
                  lambda: fake.script(claude_fake.Reply([{"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                                                          "input": {"city": "Paris"}}], stop_reason="tool_use")),
                  lambda words: fake.script(claude_fake.text(words)))


def _gemini(fake: FakeGemini) -> Target:
    return Target("gemini", "gemini-2.5-flash", "Hello from the fake Gemini.", lambda: [r.body for r in fake.received],
                  lambda: fake.received[-1].path,
                  lambda: fake.replies.append(GeminiReply([[{"functionCall": {"name": "get_weather",
                                                                             "args": {"city": "Paris"}}}]])),
                  lambda words: fake.replies.append(GeminiReply.text(words)))


@pytest.fixture(params=["compat", "native", "anthropic", "gemini"])
def target(request, fakes, gw) -> Target:
    fake = fakes[request.param]
    if isinstance(fake, FakeOpenAI):
        fake.received.clear()
        fake.completion = fake.response_output = None
    else:
        fake.reset()
    yield {"compat": _compat, "native": _native, "anthropic": _anthropic, "gemini": _gemini}[request.param](fake)
    if isinstance(fake, FakeOpenAI):  # scripted answers end with their test
        fake.completion = fake.response_output = None


def assert_reached_as(target: Target) -> None:
    """The upstream got the request in its own API: the Responses API only where declared native."""
    if target.kind == "native":
        assert target.path() == "/v1/responses"
    else:
        assert not target.path().endswith("/responses")


def valid(response: Response) -> Response:
    """The answer as the SDK's own model reads it, strictly."""
    return Response.model_validate(response.model_dump(exclude_unset=True))


# -- the SDK's calls on every channel type ---------------------------------------------------

def test_create_answers_a_response_that_is_stored_retrievable_and_deletable(gw, key, target):
    sdk = client(gw, key)
    answer = valid(sdk.responses.create(model=target.model, input="Say hello.", instructions="Be brief.",
                                        metadata={"case": "create"}))
    assert answer.id.startswith("resp_") and answer.status == "completed" and answer.model == target.model
    assert answer.output_text == target.text and answer.metadata == {"case": "create"}
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    assert_reached_as(target)
    stored = sdk.responses.retrieve(answer.id)
    assert (stored.id, stored.output_text, stored.usage) == (answer.id, target.text, answer.usage)
    items = sdk.responses.input_items.list(answer.id)
    assert [(i.type, i.role, i.content[0].text) for i in items.data] == [("message", "user", "Say hello.")]
    sdk.responses.delete(answer.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(answer.id)


def test_stream_true_gives_the_typed_events_in_order_and_stores_the_final_response(gw, key, target):
    sdk = client(gw, key)
    events = [EVENTS.validate_python(e.model_dump(exclude_unset=True))
              for e in sdk.responses.create(model=target.model, input="Say hello.", stream=True)]
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    for needed in ("response.output_item.added", "response.content_part.added", "response.output_text.delta",
                   "response.output_text.done", "response.output_item.done"):
        assert needed in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text == final.output_text == target.stream_text
    assert {e.response.id for e in events if hasattr(e, "response")} == {final.id}
    assert final.usage.output_tokens > 0
    assert_reached_as(target)
    assert sdk.responses.retrieve(final.id).output_text == target.stream_text


def test_the_stream_helper_gives_the_final_response(gw, key, target):
    with client(gw, key).responses.stream(model=target.model, input="Say hello.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == target.stream_text and final.status == "completed"


def test_a_function_call_round_trip_with_previous_response_id(gw, key, target):
    sdk = client(gw, key)
    target.answer_call()
    first = sdk.responses.create(model=target.model, input="Weather in Paris?", tools=[WEATHER_TOOL])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments)["city"] == "Paris"
    target.answer_text("It is sunny in Paris.")
    second = sdk.responses.create(model=target.model, previous_response_id=first.id, tools=[WEATHER_TOOL], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}])
    assert second.previous_response_id == first.id
    assert "sunny" in second.output_text
    sent = json.dumps(target.requests()[-1])
    # the whole conversation went upstream: the question, the call and its output
    assert "Weather in Paris?" in sent and "get_weather" in sent and "sunny" in sent
    assert [i.type for i in sdk.responses.input_items.list(second.id).data] == ["function_call_output"]
    if target.kind == "native":
        assert "previous_response_id" not in target.requests()[-1] and target.requests()[-1]["store"] is False


def test_structured_output_with_a_json_schema(gw, key, target):
    if target.kind != "native":
        target.answer_text(WEATHER_JSON)
    parsed = client(gw, key).responses.parse(model=target.model, input="Weather in Paris as JSON.",
                                             text_format=Weather)
    assert isinstance(parsed.output_parsed, Weather) and parsed.output_parsed.city
    sent = target.requests()[-1]
    if target.kind == "compat":
        assert sent["response_format"]["type"] == "json_schema"
        assert sent["response_format"]["json_schema"]["schema"]["required"] == ["city", "temperature"]
    elif target.kind == "native":
        assert sent["text"]["format"]["type"] == "json_schema"


def test_a_stream_that_breaks_mid_way_ends_with_error_and_a_failed_response_which_is_stored(gw, key, fakes):
    claude = fakes["anthropic"]
    claude.reset()
    claude.script(claude_fake.Reply([{"type": "text", "text": "one two three four five six seven"}], error_after=4))
    sdk = client(gw, key)
    events = list(sdk.responses.create(model="claude-haiku-4-5", input="Count.", stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error"
    assert failed.output_text and "one two three four five six seven".startswith(failed.output_text)
    assert sdk.responses.retrieve(failed.id).status == "failed"


def test_anthropics_signed_thinking_goes_back_through_previous_response_id(gw, key, fakes):
    claude = fakes["anthropic"]
    claude.reset()
    claude.script(claude_fake.Reply([{"type": "thinking", "thinking": "Let me check.", "signature": "sig123"},
                                     {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                      "input": {"city": "Paris"}}], stop_reason="tool_use"))
    sdk = client(gw, key)
    with sdk.responses.stream(model="claude-haiku-4-5", input="Weather?", tools=[WEATHER_TOOL],
                              reasoning={"effort": "low"}) as stream:
        first = stream.get_final_response()
    assert [o.type for o in first.output] == ["reasoning", "function_call"]
    assert first.output[0].summary[0].text == "Let me check."
    sdk.responses.create(model="claude-haiku-4-5", previous_response_id=first.id, tools=[WEATHER_TOOL],
                         reasoning={"effort": "low"}, input=[{"type": "function_call_output",
                                                              "call_id": first.output[1].call_id, "output": "sunny"}])
    turn = claude.last().body["messages"][1]
    assert turn["content"][0] == {"type": "thinking", "thinking": "Let me check.", "signature": "sig123"}


def test_geminis_thought_signature_goes_back_with_parallel_streamed_calls(gw, key, fakes):
    gemini = fakes["gemini"]
    gemini.reset()
    gemini.replies.append(GeminiReply([[{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                         "thoughtSignature": "UEFSSVM="},
                                        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]]))
    sdk = client(gw, key)
    first = list(sdk.responses.create(model="gemini-2.5-flash", input="Paris and Oslo?", tools=[WEATHER_TOOL],
                                      stream=True))[-1].response
    calls = [o for o in first.output if o.type == "function_call"]
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Paris", "Oslo"]
    sdk.responses.create(model="gemini-2.5-flash", previous_response_id=first.id, tools=[WEATHER_TOOL], input=[
        {"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in calls])
    model_turn = gemini.received[-1].body["contents"][1]
    assert model_turn["role"] == "model" and model_turn["parts"][0]["thoughtSignature"] == "UEFSSVM="


def test_a_stream_whose_client_leaves_before_its_end_is_billed_and_not_stored(gw, fakes):
    compat = fakes["compat"]
    name, token_key = _priced_token(gw, None)
    gate = threading.Event()
    compat.stream_plan = StreamPlan(compat.default_chunks("gpt-priced", True), gates={2: gate})
    try:
        stream = client(gw, token_key).responses.create(model="gpt-priced", input="Hello.", stream=True)
        events = iter(stream)
        created = next(events)
        assert created.type == "response.created"
        stream.close()
        gw.wait_for(lambda: len(_ledger(gw, name)) == 1, "the abandoned stream's settlement", timeout=15)
    finally:
        gate.set()
        compat.stream_plan = None
    [row] = _ledger(gw, name)
    assert (row["api"], row["status"]) == ("responses", 499)
    with pytest.raises(openai.NotFoundError):
        client(gw, token_key).responses.retrieve(created.response.id)


# -- stored responses and their owner ----------------------------------------------------------

def test_a_stored_response_is_invisible_to_another_token(gw, key):
    sdk, other = client(gw, key), client(gw, gw.token(f"other-{uuid.uuid4().hex[:6]}"))
    mine = sdk.responses.create(model="gpt-compat", input="Mine.")
    with pytest.raises(openai.NotFoundError) as caught:
        other.responses.retrieve(mine.id)
    assert caught.value.body["message"] == f"Response with id '{mine.id}' not found."
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError) as caught:
        other.responses.create(model="gpt-compat", input="Go on.", previous_response_id=mine.id)
    assert (caught.value.body["param"], caught.value.body["code"]) == ("previous_response_id",
                                                                      "previous_response_not_found")
    assert sdk.responses.retrieve(mine.id).output_text == "Hello from the fake."


def test_store_false_is_answered_but_not_retrievable(gw, key):
    sdk = client(gw, key)
    answer = sdk.responses.create(model="gpt-compat", input="Do not keep this.", store=False)
    assert answer.output_text == "Hello from the fake." and answer.store is False
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(answer.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model="gpt-compat", input="Go on.", previous_response_id=answer.id)


def test_input_items_page_through_by_id(gw, key):
    sdk = client(gw, key)
    answer = sdk.responses.create(model="gpt-compat", input=[
        {"role": "user", "content": f"part {n}"} for n in range(3)])
    page = sdk.responses.input_items.list(answer.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == ["part 0", "part 1"] and page.has_more
    rest = sdk.responses.input_items.list(answer.id, limit=2, order="asc", after=page.data[-1].id)
    assert [i.content[0].text for i in rest.data] == ["part 2"] and not rest.has_more


def test_a_bad_request_is_a_400_naming_the_field_and_an_unknown_previous_id_a_404(gw, key):
    sdk = client(gw, key)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="gpt-compat", input=[{"type": "message", "role": "robot", "content": "hi"}])
    assert caught.value.body["param"] == "input[0].role"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="gpt-compat", input="hi", temperature="hot")
    assert caught.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.responses.create(model="gpt-compat", input="hi", previous_response_id="resp_" + "0" * 48)
    assert caught.value.body["code"] == "previous_response_not_found"


# -- pass-through and what only it can do ---------------------------------------------------------

def test_a_built_in_tool_is_a_400_where_translated_and_runs_on_the_native_channel(gw, key, fakes):
    sdk = client(gw, key)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="gpt-compat", input="News today?", tools=[{"type": "web_search"}])
    assert caught.value.body["param"] == "tools[0].type" and "web_search" in caught.value.body["message"]
    native = fakes["native"]
    native.received.clear()
    answer = sdk.responses.create(model="gpt-native", input="News today?", tools=[{"type": "web_search"}])
    assert [i.type for i in answer.output] == ["web_search_call", "message"]
    assert native.received[-1].body["tools"] == [{"type": "web_search"}]
    # its history, built-in call included, goes back on the next turn
    again = sdk.responses.create(model="gpt-native", input="More?", previous_response_id=answer.id,
                                 tools=[{"type": "web_search"}])
    assert [i["type"] for i in native.received[-1].body["input"]] == ["message", "web_search_call", "message",
                                                                      "message"]
    assert again.previous_response_id == answer.id


def test_a_built_in_tool_goes_to_the_native_channel_of_a_model_a_translating_channel_serves_first(gw, key, fakes):
    sdk, native, compat = client(gw, key), fakes["native"], fakes["compat"]
    native.received.clear()
    compat.received.clear()
    assert sdk.responses.create(model="gpt-both", input="Hi").output_text == "Hello from the fake."
    assert [r.path for r in compat.received] == ["/v1/chat/completions"] and not native.received
    answer = sdk.responses.create(model="gpt-both", input="News today?", tools=[{"type": "web_search"}])
    assert [i.type for i in answer.output] == ["web_search_call", "message"]
    assert [r.path for r in native.received] == ["/v1/responses"] and len(compat.received) == 1


def test_a_native_channel_that_fails_falls_over_to_a_translating_one(gw, key, fakes):
    native, compat = fakes["native"], fakes["compat"]
    compat.received.clear()
    native.faults.add("/v1/responses", Fault.error(503))
    answer = client(gw, key).responses.create(model="gpt-failover", input="Hi")
    assert answer.output_text == "Hello from the fake." and native.faults.hits("/v1/responses") >= 1
    assert [r.path for r in compat.received] == ["/v1/chat/completions"]


def test_a_channel_declared_native_on_a_server_without_the_api_is_misconfigured_and_passed_over(gw, key, fakes):
    compat = fakes["compat"]
    compat.received.clear()
    answer = client(gw, key).responses.create(model="gpt-misdeclared", input="Hi")
    assert answer.output_text == "Hello from the fake."
    assert [r.path for r in compat.received][-1] == "/v1/chat/completions"
    assert compat.faults.hits("/v1/responses") >= 1


def test_a_native_stream_whose_upstream_fails_mid_way_ends_failed(gw, key, fakes):
    native = fakes["native"]
    native.responses_error_after = 5
    try:
        events = list(client(gw, key).responses.create(model="gpt-native", input="Hi", stream=True))
    finally:
        native.responses_error_after = None
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "server had an error" in events[-2].message and events[-1].response.status == "failed"


def test_the_native_channel_gets_the_whole_conversation_with_reasoning_state_and_no_ids(gw, key, fakes):
    sdk, native = client(gw, key), fakes["native"]
    native.received.clear()
    native.response_output = None
    first = sdk.responses.create(model="gpt-native", input="Think.", reasoning={"effort": "low"})
    sent = native.received[-1].body
    assert sent["include"] == ["reasoning.encrypted_content"] and sent["store"] is False
    [reasoning] = [i for i in first.output if i.type == "reasoning"]
    assert reasoning.encrypted_content
    sdk.responses.create(model="gpt-native", input="Again.", previous_response_id=first.id,
                         reasoning={"effort": "low"})
    history = native.received[-1].body["input"]
    assert [i["type"] for i in history] == ["message", "reasoning", "message", "message"]
    assert history[1]["encrypted_content"] == reasoning.encrypted_content
    assert all("id" not in i for i in history if i["type"] == "message")


# -- billing ------------------------------------------------------------------------------------

def _ledger(gw, token_name: str) -> list[dict]:
    db = open_db(gw.db_path)
    try:
        token = token_store.get(db, token_name)
        return [dict(r) for r in db.query("SELECT * FROM ledger WHERE token_id = ? ORDER BY id", [token.id])]
    finally:
        db.close()


def _priced_token(gw, quota: int | None) -> tuple[str, str]:
    name = f"priced-{uuid.uuid4().hex[:8]}"
    db = open_db(gw.db_path)
    try:
        price_store.set_price(db, "gpt-priced", PriceChanges(input=2_000_000, output=8_000_000))
        _, token_key = token_store.create(db, name, quota=quota)
    finally:
        db.close()
    gw.wait_for(lambda: gw._status("/v1/models", token_key) == 200, f"token {name}")
    return name, token_key


def test_the_ledger_row_says_responses_with_the_usage_and_cost_of_chat(gw, fakes):
    name, token_key = _priced_token(gw, None)
    fakes["compat"].completion = None
    sdk = client(gw, token_key)
    sdk.responses.create(model="gpt-priced", input="Hello.")
    list(sdk.responses.create(model="gpt-priced", input="Hello.", stream=True))
    plain, streamed = _ledger(gw, name)
    assert (plain["api"], plain["status"], plain["prompt_tokens"], plain["completion_tokens"]) == (
        "responses", 200, 11, 5)
    assert plain["cost"] == 11 * 2 + 5 * 8  # micro-units: 2 and 8 per token
    assert (streamed["api"], streamed["prompt_tokens"], streamed["completion_tokens"]) == ("responses", 9, 3)
    assert streamed["cost"] == 9 * 2 + 3 * 8


def test_a_token_whose_quota_is_spent_is_refused_as_for_chat(gw, fakes):
    name, token_key = _priced_token(gw, 1)  # one micro-unit
    before = len(fakes["compat"].received)
    with pytest.raises(openai.RateLimitError) as caught:
        client(gw, token_key).responses.create(model="gpt-priced", input="Hello " * 50)
    assert caught.value.body["code"] == "insufficient_quota"
    assert len(fakes["compat"].received) == before
    [row] = _ledger(gw, name)
    assert (row["api"], row["status"], row["cost"]) == ("responses", 429, 0)


def test_a_body_that_cannot_be_read_or_continued_is_refused_and_booked_at_no_cost(gw, fakes):
    name, token_key = _priced_token(gw, None)
    sdk = client(gw, token_key)
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(model="gpt-priced", input=[{"type": "message", "role": "robot", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model="gpt-priced", input="hi", previous_response_id="resp_" + "0" * 48, stream=True)
    refused, missing = _ledger(gw, name)
    assert (refused["api"], refused["status"], refused["cost"], refused["stream"]) == ("responses", 400, 0, 0)
    assert (missing["api"], missing["status"], missing["error_code"], missing["stream"]) == (
        "responses", 404, "previous_response_not_found", 1)


# -- gRPC by reflection ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reflected(gw):
    with grpc.insecure_channel(gw.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield Reflected(channel)


def test_the_responses_service_is_listed_by_reflection(reflected):
    assert "st_ai.v1.Responses" in reflected.services()


def test_a_responses_stream_over_grpc_by_reflection(reflected, key, target):
    stream, Request = reflected.callable("st_ai.v1.Responses", "StreamResponse")
    request = json_format.ParseDict({"model": target.model, "input_items": {"items": [
        {"type": "message", "role": "user", "content_text": "Say hello."}]}}, Request())
    events = list(stream(request, metadata=auth(key), timeout=TIMEOUT))
    assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == target.stream_text
    final = events[-1]
    assert final.type == "response.completed" and final.response.status == "completed"
    assert final.response.output[-1].content_parts.items[0].text == target.stream_text
    get, Get = reflected.callable("st_ai.v1.Responses", "GetResponse")
    assert get(Get(response_id=final.response.id), metadata=auth(key), timeout=TIMEOUT).id == final.response.id


def test_a_missing_response_over_grpc_is_not_found(reflected, key):
    get, Get = reflected.callable("st_ai.v1.Responses", "GetResponse")
    with pytest.raises(grpc.RpcError) as caught:
        get(Get(response_id="resp_missing"), metadata=auth(key), timeout=TIMEOUT)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert error_detail(reflected, caught.value).http_status == 404


def test_a_plain_response_with_a_function_tool_over_grpc_by_reflection(reflected, key, fakes):
    create, Request = reflected.callable("st_ai.v1.Responses", "CreateResponse")
    request = json_format.ParseDict({"model": "gpt-native", "input_text": "Weather in Paris?",
                                     "tools": [WEATHER_TOOL],
                                     "tool_choice_mode": "required", "metadata": {"case": "grpc"}}, Request())
    answer = create(request, metadata=auth(key), timeout=TIMEOUT)
    assert answer.status == "completed" and answer.id.startswith("resp_")
    [call] = answer.output
    assert (call.type, call.name, json.loads(call.arguments)) == ("function_call", "get_weather", {"city": "Paris"})
    sent = fakes["native"].received[-1].body
    assert sent["tools"][0]["parameters"] == WEATHER_TOOL["parameters"] and sent["tool_choice"] == "required"
    assert json.loads(answer.extra_json)["metadata"] == {"case": "grpc"}
