"""Azure OpenAI channels end to end: a real `st-ai serve` in front of the fake Azure
OpenAI resource (tests/fakes/azure_openai.py, real HTTP on 127.0.0.1), called with the
official `openai` SDK over REST and over gRPC with classes built by server reflection.

Each scenario runs over both transports and checks what the client gets (in OpenAI's
shape, with none of Azure's filter annotations) and the exact request Azure received
(deployment path, api-version, api-key header, body): chat plain and streamed,
multimodal, parallel tool calls round trip, usage with cached tokens, each finish
reason, each class of upstream error with failover to a second channel, and images."""
from __future__ import annotations

import base64
import json
import sqlite3
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import grpc
import openai
import pytest
from google.protobuf import json_format

from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.azure_openai import FILTERED_ANSWER, FILTERED_PROMPT, FakeAzureOpenAI, rate_limited, unavailable
from tests.fakes.faults import Fault
from tests.reflection_client import Reflected, auth, error_detail

pytestmark = pytest.mark.timeout(90)

TIMEOUT = 15  # seconds, for every call a test makes
VERSION = "2024-10-21"  # what an azure channel calls when it names no version
PNG_1X1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a place.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
CLOCK = {"type": "function", "function": {
    "name": "get_time", "description": "The local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TRANSPORTS = ("rest", "grpc")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("azure") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path)
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def fake():
    server = FakeAzureOpenAI(f"azure-{uuid.uuid4().hex}").start()
    yield server
    server.stop()


@pytest.fixture
def second():
    """Another Azure resource, for failover."""
    server = FakeAzureOpenAI(f"azure-{uuid.uuid4().hex}").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def grpc_channel(gateway):
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield channel


# -- st-ai's side: channels, tokens, books ---------------------------------------------------

@dataclass(frozen=True)
class On:
    """An azure channel on a resource: the deployment the model maps to, its settings."""
    fake: FakeAzureOpenAI
    deployment: str = "gpt4o-prod"
    api_version: str | None = None
    key: str | None = None  # None: the resource's own


@dataclass(frozen=True)
class Served:
    model: str          # what clients ask for
    key: str            # a token for it
    channel_ids: list[int]


def serve(gateway, *channels: On) -> Served:
    """A model on `channels`, the first preferred, all added in one commit, and a token for it."""
    model = f"az-{uuid.uuid4().hex[:10]}"
    db = open_db(gateway.db_path)
    try:
        ids = [channel_store.add(db, f"{model}-{rank}", "azure", on.fake.endpoint, on.key or on.fake.api_key,
                                 [model], {model: on.deployment}, priority=len(channels) - rank,
                                 api_version=on.api_version).id
               for rank, on in enumerate(channels)]
        _, key = token_store.create(db, f"t-{model}")
    finally:
        db.close()
    gateway.wait_for(lambda: model in gateway._models(key), f"model {model}")
    return Served(model, key, ids)


@pytest.fixture
def chat(gateway, fake) -> Served:
    return serve(gateway, On(fake))


def booked(gateway, model: str) -> list[dict]:
    db = sqlite3.connect(gateway.db_path, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in db.execute("SELECT * FROM ledger WHERE model = ? ORDER BY id", [model])]
        for row in rows:
            row["attempts"] = [tuple(a) for a in db.execute(
                "SELECT channel_id, status FROM attempts WHERE ledger_id = ? ORDER BY id", [row["id"]])]
        return rows
    finally:
        db.close()


# -- the two ways a client calls st-ai, giving OpenAI-shaped dicts --------------------------------

class Refused(Exception):
    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Rest:
    """The official openai SDK, answers as the dicts its models hold (extras included)."""

    def __init__(self, gateway, key: str) -> None:
        self.client = openai.OpenAI(base_url=gateway.base_url, api_key=key, timeout=TIMEOUT, max_retries=0)

    def _call(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except openai.APIStatusError as error:
            raise Refused(error.status_code, error.code, error.message) from None

    def chat(self, body: dict) -> dict:
        return self._call(lambda: self.client.chat.completions.create(**body).model_dump(exclude_unset=True))

    def stream(self, body: dict) -> list[dict]:
        return self._call(lambda: [c.model_dump(exclude_unset=True)
                                   for c in self.client.chat.completions.create(**body, stream=True)])

    def images(self, body: dict) -> dict:
        return self._call(lambda: self.client.images.generate(**body).model_dump(exclude_unset=True))


# int64 fields, which protobuf's JSON mapping writes as strings
_INT64 = {"created", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens",
          "audio_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens", "max_tokens"}


class Grpc:
    """st-ai's gRPC API with message classes from server reflection only."""

    def __init__(self, channel: grpc.Channel, key: str) -> None:
        self.reflected = Reflected(channel)
        self.metadata = auth(key)

    def _call(self, service: str, method: str, request: dict, streamed: bool = False):
        call, Request = self.reflected.callable(service, method)
        try:
            answer = call(json_format.ParseDict(request, Request()), metadata=self.metadata, timeout=TIMEOUT)
            if streamed:  # a chunk's empty `choices` is no field at all in protobuf
                return [{"choices": []} | _openai_shape(m) for m in answer]
            return _openai_shape(answer)
        except grpc.RpcError as error:
            detail = error_detail(self.reflected, error)
            raise Refused(detail.http_status, detail.code, detail.message) from None

    def chat(self, body: dict) -> dict:
        return self._call("st_ai.v1.Chat", "CreateChatCompletion", _proto_request(body))

    def stream(self, body: dict) -> list[dict]:
        return self._call("st_ai.v1.Chat", "StreamChatCompletion", _proto_request(body | {"stream": True}), True)

    def images(self, body: dict) -> dict:
        return self._call("st_ai.v1.Images", "CreateImage", body)


def _proto_request(body: dict) -> dict:
    """An OpenAI chat request in the proto's JSON form: a message's content is `text` or
    `parts`, tool_choice a mode or a named choice."""
    request = dict(body)
    request["messages"] = []
    for message in body["messages"]:
        message = dict(message)
        content = message.pop("content", None)
        if content is None and "tool_calls" in message:  # an explicit null travels in extra_json
            message["extra_json"] = '{"content": null}'
        elif isinstance(content, str):
            message["text"] = content
        elif isinstance(content, list):
            message["parts"] = {"items": content}
        request["messages"].append(message)
    if isinstance(body.get("tool_choice"), str):
        request["tool_choice_mode"] = request.pop("tool_choice")
    return request


def _openai_shape(message) -> dict:
    return _fix(json_format.MessageToDict(message, preserving_proto_field_name=True))


def _fix(value: Any) -> Any:
    if isinstance(value, list):
        return [_fix(v) for v in value]
    if not isinstance(value, dict):
        return value
    fixed = {k: (int(v) if k in _INT64 and isinstance(v, str) else _fix(v)) for k, v in value.items()
             if k != "extra_json"}
    if "text" in fixed and ("role" in fixed or "tool_calls" in fixed or set(fixed) <= {"text", "refusal"}):
        fixed["content"] = fixed.pop("text")
    return fixed | (json.loads(value["extra_json"]) if value.get("extra_json") else {})


@pytest.fixture(params=TRANSPORTS)
def client_for(request, gateway, grpc_channel) -> Callable[[Served], Rest | Grpc]:
    return lambda served: Rest(gateway, served.key) if request.param == "rest" else Grpc(grpc_channel, served.key)


def text_of(chunks: list[dict]) -> str:
    return "".join((c["choices"][0].get("delta") or {}).get("content") or "" for c in chunks if c.get("choices"))


def finish_of(chunks: list[dict]) -> str:
    return [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")
            and c["choices"][0].get("finish_reason")][-1]


def assert_no_annotations(answer: Any) -> None:
    """None of Azure's filter annotations reached the client (a finish_reason may say content_filter)."""
    text = json.dumps(answer)
    assert not any(name in text for name in ("filter_results", "filter_offsets", "prompt_annotations")), answer


def assert_sent_to_the_deployment(fake: FakeAzureOpenAI, deployment: str, body: dict,
                                  operation: str = "chat/completions") -> None:
    """Azure's last request was exactly `body`, to the deployment, signed with api-key."""
    sent = fake.received[-1]
    assert (sent.method, sent.path, sent.query) == (
        "POST", f"/openai/deployments/{deployment}/{operation}", {"api-version": VERSION})
    assert sent.headers["api-key"] == fake.api_key
    assert "Authorization" not in sent.headers
    assert sent.body == body


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# -- chat, plain and streamed ------------------------------------------------------------------------

def test_a_plain_chat_reaches_the_deployment_and_answers_in_openais_shape(client_for, chat, fake):
    answer = client_for(chat).chat({"model": chat.model, "messages": user("Hello there")})
    assert answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    choice = answer["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("Echo: Hello there", "stop")
    assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]
    assert_no_annotations(answer)
    assert_sent_to_the_deployment(fake, "gpt4o-prod", {"model": "gpt4o-prod", "messages": user("Hello there")})


def test_a_stream_starts_with_its_first_real_chunk_not_azures_filter_results(client_for, gateway, chat, fake):
    chunks = client_for(chat).stream({"model": chat.model, "messages": user("one two three")})
    first = chunks[0]
    assert first["id"].startswith("chatcmpl-") and first["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["choices"] for c in chunks), "no chunk without choices: st-ai's usage chunk is kept back"
    assert (text_of(chunks), finish_of(chunks)) == ("Echo: one two three", "stop")
    assert_no_annotations(chunks)
    # st-ai asks for usage to book the stream, whatever the client asked
    assert_sent_to_the_deployment(fake, "gpt4o-prod", {"model": "gpt4o-prod", "messages": user("one two three"),
                                                       "stream": True, "stream_options": {"include_usage": True}})
    [row] = booked(gateway, chat.model)
    assert (row["status"], row["completion_tokens"]) == (200, 4)


def test_a_v1_channel_calls_the_v1_api_with_the_deployment_in_the_body(client_for, gateway, fake):
    served = serve(gateway, On(fake, "gpt4o-mini", "v1"))
    chunks = client_for(served).stream({"model": served.model, "messages": user("Hi")})
    assert text_of(chunks) == "Echo: Hi"
    sent = fake.received[-1]
    assert (sent.path, sent.query, sent.headers["api-key"]) == ("/openai/v1/chat/completions", {}, fake.api_key)
    assert sent.body["model"] == "gpt4o-mini"


# -- multimodal ------------------------------------------------------------------------------------

def test_images_in_a_prompt_pass_through_as_a_url_and_as_base64(client_for, chat, fake):
    content = [{"type": "text", "text": "What is in these?"},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1X1}"}}]
    messages = [{"role": "user", "content": content}]
    answer = client_for(chat).chat({"model": chat.model, "messages": messages})
    assert answer["choices"][0]["message"]["content"] == "I see 2 images. What is in these?"
    assert_sent_to_the_deployment(fake, "gpt4o-prod", {"model": "gpt4o-prod", "messages": messages})


# -- tools -------------------------------------------------------------------------------------------

def _calls(answer: dict) -> list[dict]:
    return answer["choices"][0]["message"]["tool_calls"]


def _streamed_calls(chunks: list[dict]) -> list[dict]:
    """Tool-call deltas merged by index, as OpenAI tells clients to."""
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for delta in (chunk["choices"][0].get("delta") or {}).get("tool_calls") or () if chunk.get("choices") else ():
            call = calls.setdefault(delta["index"], {"id": None, "type": None, "function": {"name": "",
                                                                                          "arguments": ""}})
            call["id"] = delta.get("id") or call["id"]
            call["type"] = delta.get("type") or call["type"]
            function = delta.get("function") or {}
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_a_round_trip_with_parallel_tool_calls(client_for, chat, fake, streamed):
    client = client_for(chat)
    asked = {"model": chat.model, "messages": user("Weather in Paris and time in Tokyo?"), "tools": [WEATHER, CLOCK]}
    if streamed:
        chunks = client.stream(asked)
        calls, finish = _streamed_calls(chunks), finish_of(chunks)
    else:
        answer = client.chat(asked)
        calls, finish = _calls(answer), answer["choices"][0]["finish_reason"]
    assert finish == "tool_calls"
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("function", "get_weather", {"location": "example"}), ("function", "get_time", {"city": "example"})]
    assert all(c["id"].startswith("call_") for c in calls)
    replies = [{"role": "assistant", "content": None, "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["function"]["name"],
                                                         "arguments": c["function"]["arguments"]}} for c in calls]},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C and sunny"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "21:05"}]
    then = asked | {"messages": asked["messages"] + replies}
    text = text_of(client.stream(then)) if streamed else client.chat(then)["choices"][0]["message"]["content"]
    assert text == "Tool results: 18C and sunny; 21:05"
    expected = {"model": "gpt4o-prod", "messages": then["messages"], "tools": [WEATHER, CLOCK]}
    if streamed:
        expected |= {"stream": True, "stream_options": {"include_usage": True}}
    assert_sent_to_the_deployment(fake, "gpt4o-prod", expected)


def test_parallel_tool_calls_false_reaches_azure_and_one_tool_is_called(client_for, chat, fake):
    asked = {"model": chat.model, "messages": user("Weather and time?"), "tools": [WEATHER, CLOCK],
             "parallel_tool_calls": False, "tool_choice": "auto"}
    answer = client_for(chat).chat(asked)
    assert [c["function"]["name"] for c in _calls(answer)] == ["get_weather"]
    assert_sent_to_the_deployment(fake, "gpt4o-prod", asked | {"model": "gpt4o-prod"})


# -- usage ---------------------------------------------------------------------------------------------

def test_usage_on_the_final_chunk_counts_azures_cached_tokens_and_is_booked(client_for, gateway, chat, fake):
    # A long instruction sent twice: Azure caches the prompt's beginning from 1024 tokens on.
    session = f"Session {uuid.uuid4().hex}."  # Azure's cache is the resource's, shared by the module's tests
    messages = [{"role": "system", "content": " ".join([session] + ["Answer like a careful librarian."] * 300)},
                {"role": "user", "content": "Hi"}]
    client = client_for(chat)
    client.chat({"model": chat.model, "messages": messages})
    chunks = client.stream({"model": chat.model, "messages": messages, "stream_options": {"include_usage": True}})
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["prompt_tokens_details"]["cached_tokens"] == 1408  # 1509 tokens before "Hi", in steps of 128
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    first, second = booked(gateway, chat.model)
    assert (first["cached_tokens"], second["cached_tokens"]) == (0, 1408)
    assert second["prompt_tokens"] == usage["prompt_tokens"]


# -- reasoning -----------------------------------------------------------------------------------------

def test_reasoning_effort_reaches_a_reasoning_deployment_and_its_tokens_are_counted(client_for, gateway, fake):
    served = serve(gateway, On(fake, "o4-mini", "2025-04-01-preview"))
    asked = {"model": served.model, "messages": user("Think it through"), "reasoning_effort": "high",
             "max_completion_tokens": 2000}
    answer = client_for(served).chat(asked)
    usage = answer["usage"]
    assert answer["choices"][0]["message"]["content"] == "Echo: Think it through"
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 512
    assert usage["completion_tokens"] == 512 + 4
    sent = fake.received[-1]
    assert (sent.path, sent.query) == ("/openai/deployments/o4-mini/chat/completions",
                                       {"api-version": "2025-04-01-preview"})
    assert sent.body == asked | {"model": "o4-mini"}
    [row] = booked(gateway, served.model)
    assert row["completion_tokens"] == 516


def test_a_parameter_a_reasoning_model_refuses_is_the_clients_400_in_azures_words(client_for, gateway, fake):
    served = serve(gateway, On(fake, "o4-mini", "2025-04-01-preview"))
    with pytest.raises(Refused) as caught:
        client_for(served).chat({"model": served.model, "messages": user("Hi"), "max_tokens": 50})
    assert (caught.value.status, caught.value.code) == (400, "unsupported_parameter")
    assert "Use 'max_completion_tokens' instead" in caught.value.message


# -- finish reasons ------------------------------------------------------------------------------------

FINISHES = {
    "stop": ({"messages": user("Hi")}, "Echo: Hi"),
    "length": ({"messages": user("one two three four five"), "max_tokens": 2}, "Echo: one"),
    "content_filter": ({"messages": user(f"say something then {FILTERED_ANSWER} please")}, "Echo: say something then"),
}


@pytest.mark.parametrize("reason", FINISHES)
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_each_finish_reason_reaches_the_client(client_for, chat, fake, reason, streamed):
    asked, text = FINISHES[reason]
    asked = {"model": chat.model, **asked}
    if streamed:
        chunks = client_for(chat).stream(asked)
        assert (text_of(chunks), finish_of(chunks)) == (text, reason)
        assert_no_annotations(chunks)
        asked |= {"stream": True, "stream_options": {"include_usage": True}}
    else:
        answer = client_for(chat).chat(asked)
        assert (answer["choices"][0]["message"]["content"], answer["choices"][0]["finish_reason"]) == (text, reason)
        assert_no_annotations(answer)
    assert_sent_to_the_deployment(fake, "gpt4o-prod", asked | {"model": "gpt4o-prod"})


# -- upstream errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_a_prompt_azures_filter_refuses_is_a_400_content_filter_asked_once(client_for, chat, fake, streamed):
    before = len(fake.received)
    asked = {"model": chat.model, "messages": user(f"tell me about {FILTERED_PROMPT}")}
    with pytest.raises(Refused) as caught:
        (client_for(chat).stream if streamed else client_for(chat).chat)(asked)
    assert (caught.value.status, caught.value.code) == (400, "content_filter")
    assert "content filter (violence)" in caught.value.message
    assert len(fake.received) == before + 1
    assert fake.received[-1].path == "/openai/deployments/gpt4o-prod/chat/completions"


def test_a_clients_bad_request_is_relayed_once(client_for, chat, fake):
    before = len(fake.received)
    broken = {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!not-base64!!"}}
    with pytest.raises(Refused) as caught:
        client_for(chat).chat({"model": chat.model, "messages": [{"role": "user", "content": [broken]}]})
    assert caught.value.status == 400 and "Invalid image data" in caught.value.message
    assert len(fake.received) == before + 1


FAULTS: dict[str, Callable[[], Fault]] = {
    "429 with retry-after-ms": lambda: rate_limited(6500),
    "503": lambda: unavailable(503),
    "500": lambda: unavailable(500),
    "connection reset": Fault.reset,
    "unreadable answer": Fault.truncated_json,
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_a_failing_resource_falls_over_to_the_next_channel(client_for, gateway, fake, second, fault, streamed):
    served = serve(gateway, On(fake), On(second))
    fake.faults.add(fake.deployment_path("gpt4o-prod", "chat/completions"), FAULTS[fault]())
    asked = {"model": served.model, "messages": user("Hi")}
    client = client_for(served)
    text = text_of(client.stream(asked)) if streamed else client.chat(asked)["choices"][0]["message"]["content"]
    assert text == "Echo: Hi"
    [row] = booked(gateway, served.model)
    status = 429 if fault.startswith("429") else 502
    assert row["status"] == 200 and row["attempts"] == [(served.channel_ids[0], status), (served.channel_ids[1], 200)]
    expected = asked | {"model": "gpt4o-prod"}
    if streamed:
        expected |= {"stream": True, "stream_options": {"include_usage": True}}
    assert_sent_to_the_deployment(second, "gpt4o-prod", expected)


SETUPS = {  # a channel set up wrong, and what the client is told when it is alone
    "wrong key": (dict(key="azure-key-not-this-resources-0000"), "rejected the channel's credentials"),
    "missing deployment": (dict(deployment="no-such-deployment"), "could not serve this request"),
    "unsupported api-version": (dict(api_version="2019-01-01"), "could not serve this request"),
    "a model newer than the api-version": (dict(deployment="o4-mini"), "could not serve this request"),
}


@pytest.mark.parametrize("setup", SETUPS)
def test_a_channel_set_up_wrong_falls_over_to_one_set_up_right(client_for, gateway, fake, second, setup):
    served = serve(gateway, On(fake, **SETUPS[setup][0]), On(second))
    answer = client_for(served).chat({"model": served.model, "messages": user("Hi")})
    assert answer["choices"][0]["message"]["content"] == "Echo: Hi"
    [row] = booked(gateway, served.model)
    assert row["status"] == 200 and row["attempts"] == [(served.channel_ids[0], 502), (served.channel_ids[1], 200)]


@pytest.mark.parametrize("setup", SETUPS)
def test_a_channel_set_up_wrong_alone_says_why_without_its_secrets(client_for, gateway, fake, setup):
    settings, words = SETUPS[setup]
    served = serve(gateway, On(fake, **settings))
    with pytest.raises(Refused) as caught:
        client_for(served).chat({"model": served.model, "messages": user("Hi")})
    assert caught.value.status == 502 and words in caught.value.message
    assert f":{fake.port}" not in caught.value.message
    assert settings.get("key", fake.api_key) not in caught.value.message


def test_every_resource_rate_limiting_is_a_503_not_the_clients_429(client_for, gateway, fake):
    served = serve(gateway, On(fake))
    path = fake.deployment_path("gpt4o-prod", "chat/completions")
    fake.faults.add(path, rate_limited(6500))
    with pytest.raises(Refused) as caught:
        client_for(served).chat({"model": served.model, "messages": user("Hi")})
    assert (caught.value.status, caught.value.code) == (503, "upstream_rate_limited")


# -- images ------------------------------------------------------------------------------------------------

@pytest.fixture
def dalle(gateway, fake) -> Served:
    return serve(gateway, On(fake, "dalle3"))


def test_an_image_as_base64(client_for, dalle, fake):
    asked = {"model": dalle.model, "prompt": "a lighthouse at dusk", "response_format": "b64_json",
             "size": "1024x1024"}
    answer = client_for(dalle).images(asked)
    assert base64.b64decode(answer["data"][0]["b64_json"]).startswith(b"\x89PNG")
    assert answer["data"][0]["revised_prompt"] == "A picture of a lighthouse at dusk"
    assert_no_annotations(answer)
    assert_sent_to_the_deployment(fake, "dalle3", asked | {"model": "dalle3"}, "images/generations")


def test_an_image_as_a_url_the_client_can_fetch(client_for, dalle, fake):
    asked = {"model": dalle.model, "prompt": "a lighthouse at dusk", "response_format": "url"}
    answer = client_for(dalle).images(asked)
    url = answer["data"][0]["url"]
    assert_no_annotations(answer)
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.read().startswith(b"\x89PNG")
    assert_sent_to_the_deployment(fake, "dalle3", asked | {"model": "dalle3"}, "images/generations")


def test_an_image_prompt_azures_filter_refuses_is_a_400_content_filter(client_for, dalle):
    with pytest.raises(Refused) as caught:
        client_for(dalle).images({"model": dalle.model, "prompt": f"a {FILTERED_PROMPT}"})
    assert (caught.value.status, caught.value.code) == (400, "content_filter")
