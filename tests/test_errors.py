"""Every error the gateway answers, over REST and over gRPC, from one table of cases.

REST: the HTTP status and the OpenAI error body {"error": {message, type, code, param}}.
gRPC: the status code and the st_ai.v1.ErrorDetail packed in `grpc-status-details-bin`.
Every error body is also checked for what must never be in it: a traceback, the
upstream channel's key or its address.
"""
from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
from google.rpc import status_pb2

from server.codec import codec_for
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from st_ai.v1 import chat_pb2, chat_pb2_grpc, errors_pb2, models_pb2, models_pb2_grpc
from tests.conftest import start_gateway, stop_gateway

UPSTREAM_KEY = "sk-upstream-DO-NOT-LEAK-7f3a9c"
MODEL = "err-sim"                 # served by a simulator channel
DEAD_MODEL = "err-dead"           # an openai channel whose upstream port is closed
NO_PROVIDER_MODEL = "err-noprov"  # a channel whose type has no chat provider
OFF_MODEL = "err-off"             # served only by a disabled channel
UNKNOWN_MODEL = "err-nobody-serves-this"
DETAILS_KEY = "grpc-status-details-bin"
FORBIDDEN_IN_ERRORS = ("Traceback", 'File "', UPSTREAM_KEY, "DO-NOT-LEAK")

HTTP_TO_GRPC = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
                403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
                413: grpc.StatusCode.RESOURCE_EXHAUSTED, 500: grpc.StatusCode.INTERNAL,
                502: grpc.StatusCode.UNAVAILABLE, 503: grpc.StatusCode.UNAVAILABLE}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the environment: channels and tokens in every state the cases need -------------

@dataclass
class Env:
    gateway: Any
    keys: dict[str, str]
    dead_url: str
    channel: grpc.Channel
    chat: chat_pb2_grpc.ChatStub
    models: models_pb2_grpc.ModelsStub
    rest: "Rest"

    def secrets(self) -> tuple[str, ...]:
        # the upstream's address in the forms it could be printed
        parsed = urlsplit(self.dead_url)
        return (*FORBIDDEN_IN_ERRORS, self.dead_url, parsed.netloc, f":{parsed.port}")


class Rest:
    """One persistent HTTP/1.1 connection; reopened if the server closed it."""

    def __init__(self, http_url: str) -> None:
        parsed = urlsplit(http_url)
        self.host, self.port = parsed.hostname, parsed.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=15)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", **(headers or {})}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.conn.close()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def _wait_for_401(gateway, key: str, words: str) -> None:
    rest = Rest(gateway.http_url)
    try:
        def ready() -> bool:
            status, _, body = rest.request("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
            return status == 401 and words in body.decode()
        gateway.wait_for(ready, f"a 401 saying {words!r}")
    finally:
        rest.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """conftest's gateway, but the dead channel is asked by case after case: its circuit
    breaker must not trip (cooling down is tested in tests/test_channel_health*.py)."""
    db_path = str(tmp_path_factory.mktemp("gateway") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--cooldown-failures", "1000")
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def env(gateway) -> Env:
    dead_url = f"http://127.0.0.1:{_closed_port()}/v1"
    gateway.channel("err-sim", "simulator", [MODEL])
    gateway.channel("err-dead", "openai", [DEAD_MODEL], base_url=dead_url, key=UPSTREAM_KEY)
    # added straight to the store: no provider is registered for this type
    gateway.channel("err-noprov", "no-such-provider-type", [NO_PROVIDER_MODEL])
    gateway.channel("err-off", "simulator", [OFF_MODEL])
    keys = {"all": gateway.token("err-all"), "limited": gateway.token("err-limited", models=[MODEL])}

    db = open_db(gateway.db_path)
    try:
        channel_store.set_enabled(db, "err-off", False)
        keys["disabled"] = gateway.token("err-disabled")
        token_store.set_enabled(db, "err-disabled", False)
        _, keys["expired"] = token_store.create(db, "err-expired", None, int(time.time()) - 60)
    finally:
        db.close()
    gateway.wait_for(lambda: OFF_MODEL not in gateway._models(keys["all"]), "the disabled channel")
    _wait_for_401(gateway, keys["disabled"], "disabled")
    _wait_for_401(gateway, keys["expired"], "expired")

    channel = grpc.insecure_channel(gateway.grpc_target)
    rest = Rest(gateway.http_url)
    yield Env(gateway, keys, dead_url, channel, chat_pb2_grpc.ChatStub(channel),
              models_pb2_grpc.ModelsStub(channel), rest)
    rest.close()
    channel.close()


# -- the cases -------------------------------------------------------------------------

def chat(**overrides: Any) -> dict:
    """A valid request for the simulator, with some fields replaced (None: removed)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}]}
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


NO_KEY = None
REST, REST_STREAM, GRPC, GRPC_STREAM = "rest", "rest-stream", "grpc", "grpc-stream"
ALL = (REST, REST_STREAM, GRPC, GRPC_STREAM)
REST_ONLY = (REST, REST_STREAM)


@dataclass(frozen=True)
class Case:
    id: str
    status: int
    type: str
    code: str | None
    param: str | None = None
    body: dict | bytes | None = None         # chat body (bytes: sent as is over REST)
    key: str | None = "all"                  # which token; NO_KEY sends no Authorization
    authorization: str | None = None         # a literal Authorization value instead of a key
    transports: tuple[str, ...] = ALL
    endpoint: str = "chat"                   # chat | list_models | get_model
    extra: dict = field(default_factory=dict)


BAD_REQUEST = "invalid_request_error"
CASES = [
    # the body is not JSON, or not a JSON object (REST only: gRPC has no JSON)
    Case("malformed-json", 400, BAD_REQUEST, "invalid_json", body=b'{"model": "x", "messages": [',
         transports=(REST,)),
    Case("empty-body", 400, BAD_REQUEST, "invalid_json", body=b"", transports=(REST,)),
    Case("body-is-array", 400, BAD_REQUEST, "invalid_json", body=b"[1, 2]", transports=(REST,)),
    Case("body-is-string", 400, BAD_REQUEST, "invalid_json", body=b'"hello"', transports=(REST,)),
    Case("body-is-null", 400, BAD_REQUEST, "invalid_json", body=b"null", transports=(REST,)),
    # a value of the wrong JSON type names its field (REST only: protobuf is typed)
    Case("model-number", 400, BAD_REQUEST, "invalid_type", "model", chat(model=1), transports=REST_ONLY),
    Case("messages-string", 400, BAD_REQUEST, "invalid_type", "messages", chat(messages="x"),
         transports=REST_ONLY),
    Case("messages-item-string", 400, BAD_REQUEST, "invalid_type", "messages[0]", chat(messages=["x"]),
         transports=REST_ONLY),
    Case("temperature-string", 400, BAD_REQUEST, "invalid_type", "temperature", chat(temperature="hot"),
         transports=REST_ONLY),
    Case("content-number", 400, BAD_REQUEST, "invalid_type", "messages[0].content",
         chat(messages=[{"role": "user", "content": 5}]), transports=REST_ONLY),
    Case("stream-string", 400, BAD_REQUEST, "invalid_type", "stream", chat(stream="yes"), transports=(REST,)),
    Case("max-tokens-float", 400, BAD_REQUEST, "invalid_type", "max_tokens", chat(max_tokens=1.5),
         transports=REST_ONLY),
    Case("max-tokens-too-big-for-int64", 400, BAD_REQUEST, "invalid_type", "max_tokens",
         chat(max_tokens=2**70), transports=REST_ONLY),
    Case("tools-parameters-array", 400, BAD_REQUEST, "invalid_type", "tools[0].function.parameters",
         chat(tools=[{"type": "function", "function": {"name": "f", "parameters": [1]}}]),
         transports=REST_ONLY),
    Case("stop-list-of-numbers", 400, BAD_REQUEST, "invalid_type", "stop[0]", chat(stop=[1]),
         transports=REST_ONLY),
    # out of range or missing: the same over both transports
    Case("temperature-2.5", 400, BAD_REQUEST, "invalid_value", "temperature", chat(temperature=2.5)),
    Case("temperature-negative", 400, BAD_REQUEST, "invalid_value", "temperature", chat(temperature=-0.1)),
    Case("top-p-1.5", 400, BAD_REQUEST, "invalid_value", "top_p", chat(top_p=1.5)),
    Case("frequency-penalty-3", 400, BAD_REQUEST, "invalid_value", "frequency_penalty",
         chat(frequency_penalty=3)),
    Case("presence-penalty-minus-3", 400, BAD_REQUEST, "invalid_value", "presence_penalty",
         chat(presence_penalty=-3)),
    Case("n-0", 400, BAD_REQUEST, "invalid_value", "n", chat(n=0)),
    Case("max-tokens-0", 400, BAD_REQUEST, "invalid_value", "max_tokens", chat(max_tokens=0)),
    Case("top-logprobs-21", 400, BAD_REQUEST, "invalid_value", "top_logprobs", chat(top_logprobs=21)),
    Case("empty-messages", 400, BAD_REQUEST, "invalid_value", "messages", chat(messages=[]),
         transports=REST_ONLY),
    Case("missing-model", 400, BAD_REQUEST, "missing_required_parameter", "model", chat(model=None)),
    Case("empty-model", 400, BAD_REQUEST, "missing_required_parameter", "model", chat(model="")),
    # over gRPC an empty repeated field cannot be told from a missing one
    Case("missing-messages", 400, BAD_REQUEST, "missing_required_parameter", "messages",
         chat(messages=None)),
    Case("bad-role", 400, BAD_REQUEST, "invalid_value", "messages[0].role",
         chat(messages=[{"role": "wizard", "content": "hi"}])),
    Case("user-without-content", 400, BAD_REQUEST, "missing_required_parameter", "messages[0].content",
         chat(messages=[{"role": "user"}])),
    Case("tool-without-call-id", 400, BAD_REQUEST, "missing_required_parameter", "messages[0].tool_call_id",
         chat(messages=[{"role": "tool", "content": "42"}])),
    Case("bad-tool-choice", 400, BAD_REQUEST, "invalid_value", "tool_choice", chat(tool_choice="sometimes")),
    Case("tool-without-name", 400, BAD_REQUEST, "missing_required_parameter", "tools[0].function.name",
         chat(tools=[{"type": "function", "function": {"description": "no name"}}])),
    # authentication
    Case("missing-token", 401, BAD_REQUEST, "invalid_api_key", body=chat(), key=NO_KEY),
    Case("unknown-token", 401, BAD_REQUEST, "invalid_api_key", body=chat(),
         authorization="Bearer sk-this-key-was-never-issued"),
    Case("malformed-authorization-scheme", 401, BAD_REQUEST, "invalid_api_key", body=chat(),
         authorization="Basic dXNlcjpwYXNz"),
    Case("malformed-authorization-bearer-only", 401, BAD_REQUEST, "invalid_api_key", body=chat(),
         authorization="Bearer"),
    Case("malformed-authorization-bare-key", 401, BAD_REQUEST, "invalid_api_key", body=chat(),
         authorization="sk-no-scheme"),
    Case("disabled-token", 401, BAD_REQUEST, "invalid_api_key", body=chat(), key="disabled"),
    Case("expired-token", 401, BAD_REQUEST, "invalid_api_key", body=chat(), key="expired"),
    # authentication comes before validation: a bad key with a bad body is still a 401
    Case("unknown-token-bad-body", 401, BAD_REQUEST, "invalid_api_key", body=chat(temperature=9),
         authorization="Bearer sk-nope"),
    # routing
    Case("model-not-allowed", 403, "permission_error", "model_not_allowed", "model",
         chat(model=DEAD_MODEL), key="limited"),
    Case("unknown-model", 404, BAD_REQUEST, "model_not_found", "model", chat(model=UNKNOWN_MODEL)),
    # a name too long to echo whole: the error must survive gRPC's trailer size limit
    Case("unknown-model-huge-name", 404, BAD_REQUEST, "model_not_found", "model", chat(model="m" * 200_000)),
    Case("unknown-model-huge-non-ascii-name", 404, BAD_REQUEST, "model_not_found", "model",
         chat(model="\u2603" * 50_000)),
    Case("unknown-model-limited-token", 404, BAD_REQUEST, "model_not_found", "model",
         chat(model=UNKNOWN_MODEL), key="limited"),
    Case("model-only-on-disabled-channel", 404, BAD_REQUEST, "model_not_found", "model", chat(model=OFF_MODEL)),
    Case("channel-type-without-provider", 503, "service_unavailable_error", "no_available_channel",
         body=chat(model=NO_PROVIDER_MODEL)),
    Case("upstream-unreachable", 502, "upstream_error", "upstream_error", body=chat(model=DEAD_MODEL)),
    # the models endpoints
    Case("list-models-missing-token", 401, BAD_REQUEST, "invalid_api_key", key=NO_KEY,
         endpoint="list_models", transports=(REST, GRPC)),
    Case("list-models-bad-scheme", 401, BAD_REQUEST, "invalid_api_key", authorization="Token abc",
         endpoint="list_models", transports=(REST, GRPC)),
    Case("list-models-disabled-token", 401, BAD_REQUEST, "invalid_api_key", key="disabled",
         endpoint="list_models", transports=(REST, GRPC)),
    Case("get-model-unknown", 404, BAD_REQUEST, "model_not_found", "model", endpoint="get_model",
         extra={"model": UNKNOWN_MODEL}, transports=(REST, GRPC)),
    Case("get-model-not-allowed", 404, BAD_REQUEST, "model_not_found", "model", key="limited",
         endpoint="get_model", extra={"model": DEAD_MODEL}, transports=(REST, GRPC)),
    Case("get-model-expired-token", 401, BAD_REQUEST, "invalid_api_key", key="expired",
         endpoint="get_model", extra={"model": MODEL}, transports=(REST, GRPC)),
]


def _params():
    for case in CASES:
        for transport in case.transports:
            yield pytest.param(case, transport, id=f"{case.id}-{transport}")


def _authorization(env: Env, case: Case) -> str | None:
    if case.authorization is not None:
        return case.authorization
    if case.key is NO_KEY:
        return None
    return f"Bearer {env.keys[case.key]}"


# -- the transports ----------------------------------------------------------------------

@dataclass
class Outcome:
    status: int
    type: str
    code: str | None
    param: str | None
    message: str
    raw: str  # everything the client saw of the error, for the leak checks


def _via_rest(env: Env, case: Case, stream: bool) -> Outcome:
    headers = {}
    authorization = _authorization(env, case)
    if authorization is not None:
        headers["Authorization"] = authorization
    if case.endpoint == "list_models":
        status, response_headers, raw = env.rest.request("GET", "/v1/models", headers=headers)
    elif case.endpoint == "get_model":
        status, response_headers, raw = env.rest.request("GET", f"/v1/models/{case.extra['model']}",
                                                         headers=headers)
    else:
        body = case.body
        if isinstance(body, dict):
            if stream:
                body = {**body, "stream": True}
            body = json.dumps(body).encode()
        status, response_headers, raw = env.rest.request("POST", "/v1/chat/completions", body, headers)
    return _rest_outcome(status, response_headers, raw)


def _rest_outcome(status: int, headers: dict[str, str], raw: bytes) -> Outcome:
    text = raw.decode("utf-8")
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, text)
    body = json.loads(text)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["code"] is None or isinstance(error["code"], str), error
    assert error["param"] is None or isinstance(error["param"], str), error
    return Outcome(status, error["type"], error["code"], error["param"], error["message"], text)


def _grpc_request(case: Case) -> chat_pb2.ChatCompletionRequest:
    # the same JSON as REST, typed the way any gRPC client would type it
    return codec_for(chat_pb2.ChatCompletionRequest, strict=True).to_message(case.body)


def _via_grpc(env: Env, case: Case, stream: bool) -> Outcome:
    authorization = _authorization(env, case)
    metadata = (("authorization", authorization),) if authorization is not None else ()
    try:
        if case.endpoint == "list_models":
            env.models.ListModels(models_pb2.ListModelsRequest(), metadata=metadata, timeout=15)
        elif case.endpoint == "get_model":
            env.models.GetModel(models_pb2.GetModelRequest(model=case.extra["model"]), metadata=metadata,
                                timeout=15)
        elif stream:
            list(env.chat.StreamChatCompletion(_grpc_request(case), metadata=metadata, timeout=15))
        else:
            env.chat.CreateChatCompletion(_grpc_request(case), metadata=metadata, timeout=15)
    except grpc.RpcError as error:
        return _grpc_outcome(error)
    raise AssertionError(f"{case.id}: the RPC succeeded")


def _grpc_outcome(error: grpc.RpcError) -> Outcome:
    details = [v for k, v in error.trailing_metadata() or () if k == DETAILS_KEY]
    assert len(details) == 1, f"no {DETAILS_KEY} in the trailers of {error.code()}: {error.details()}"
    status = status_pb2.Status.FromString(details[0])
    assert status.code == error.code().value[0]
    assert status.message == error.details()
    assert len(status.details) == 1 and status.details[0].Is(errors_pb2.ErrorDetail.DESCRIPTOR)
    detail = errors_pb2.ErrorDetail()
    status.details[0].Unpack(detail)
    assert detail.message == error.details()
    assert HTTP_TO_GRPC[detail.http_status] == error.code(), (detail.http_status, error.code())
    return Outcome(detail.http_status, detail.type, detail.code or None, detail.param or None,
                   detail.message, f"{error.details()}\n{detail}")


def _check_clean(env: Env, outcome: Outcome) -> None:
    for secret in env.secrets():
        assert secret not in outcome.raw, f"{secret!r} leaked into an error: {outcome.raw}"


@pytest.mark.parametrize("case, transport", list(_params()))
def test_error(env: Env, case: Case, transport: str) -> None:
    if transport in (REST, REST_STREAM):
        outcome = _via_rest(env, case, stream=transport == REST_STREAM)
    else:
        outcome = _via_grpc(env, case, stream=transport == GRPC_STREAM)
    _check_clean(env, outcome)
    assert (outcome.status, outcome.type, outcome.code, outcome.param) == \
        (case.status, case.type, case.code, case.param), outcome.message


# -- errors of one transport only ---------------------------------------------------------

def test_disabled_token_message_says_so(env: Env) -> None:
    status, headers, raw = env.rest.request("GET", "/v1/models",
                                            headers={"Authorization": f"Bearer {env.keys['disabled']}"})
    assert status == 401 and "disabled" in _rest_outcome(status, headers, raw).message


def test_expired_token_message_says_so(env: Env) -> None:
    status, headers, raw = env.rest.request("GET", "/v1/models",
                                            headers={"Authorization": f"Bearer {env.keys['expired']}"})
    assert status == 401 and "expired" in _rest_outcome(status, headers, raw).message


def test_non_ascii_authorization_is_401(env: Env) -> None:
    # http.client would refuse to send it; write the request by hand
    with socket.create_connection((env.rest.host, env.rest.port), timeout=10) as sock:
        body = json.dumps(chat()).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer sk-\xc3\xa9\xe2\x82\xac\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        raw = response.read()
        outcome = _rest_outcome(response.status, {k.lower(): v for k, v in response.getheaders()}, raw)
    assert (outcome.status, outcome.code) == (401, "invalid_api_key")


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/v1"), ("GET", "/v1/nope"), ("POST", "/v1/completions"),
    ("GET", "/v2/models"), ("POST", "/v1/chat/completions/extra"), ("GET", "/v1/models/a/b"),
])
def test_unknown_url_is_404_json(env: Env, method: str, path: str) -> None:
    status, headers, raw = env.rest.request(method, path, b"{}" if method == "POST" else None,
                                            {"Authorization": f"Bearer {env.keys['all']}"})
    outcome = _rest_outcome(status, headers, raw)
    _check_clean(env, outcome)
    assert (outcome.status, outcome.type, outcome.code) == (404, BAD_REQUEST, "unknown_url")


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/chat/completions"), ("PUT", "/v1/chat/completions"), ("DELETE", "/v1/chat/completions"),
    ("PATCH", "/v1/chat/completions"), ("POST", "/v1/models"), ("DELETE", "/v1/models"),
    ("POST", f"/v1/models/{MODEL}"),
])
def test_wrong_method_is_405_json(env: Env, method: str, path: str) -> None:
    status, headers, raw = env.rest.request(method, path, b"{}",
                                            {"Authorization": f"Bearer {env.keys['all']}"})
    outcome = _rest_outcome(status, headers, raw)
    _check_clean(env, outcome)
    assert (outcome.status, outcome.type, outcome.code) == (405, BAD_REQUEST, "method_not_allowed")


def test_upstream_failure_hides_the_upstream(env: Env) -> None:
    """The 502 says what kind of failure it was, never where the upstream lives."""
    outcome = _via_rest(env, Case("x", 502, "", None, body=chat(model=DEAD_MODEL)), stream=False)
    assert outcome.status == 502
    assert "127.0.0.1" not in outcome.raw and "http://" not in outcome.raw


def test_unknown_grpc_method_is_unimplemented(env: Env) -> None:
    call = env.channel.unary_unary("/st_ai.v1.Chat/NoSuchMethod",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=chat_pb2.ChatCompletion.FromString)
    with pytest.raises(grpc.RpcError) as raised:
        call(chat_pb2.ChatCompletionRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("extra_json, param", [
    ("not json", "extra_json"),
    ("[1, 2]", "extra_json"),
    ('{"temperature": "hot"}', "temperature"),
    ('{"messages": [5]}', "messages"),
    ('{"model": 7}', "model"),
])
def test_grpc_extra_json_is_checked(env: Env, extra_json: str, param: str) -> None:
    """gRPC clients can write extra_json themselves: garbage in it is the client's 400,
    never a 500, and it cannot smuggle a wrongly typed value past the typed fields."""
    request = _grpc_request(Case("x", 400, "", None, body=chat()))
    request.extra_json = extra_json
    metadata = (("authorization", f"Bearer {env.keys['all']}"),)
    for rpc in (env.chat.CreateChatCompletion, lambda *a, **k: list(env.chat.StreamChatCompletion(*a, **k))):
        with pytest.raises(grpc.RpcError) as raised:
            rpc(request, metadata=metadata, timeout=15)
        outcome = _grpc_outcome(raised.value)
        assert (outcome.status, outcome.type, outcome.param) == (400, BAD_REQUEST, param), outcome.message


@pytest.mark.parametrize("method", ["/st_ai.v1.Chat/CreateChatCompletion", "/st_ai.v1.Chat/StreamChatCompletion",
                                    "/st_ai.v1.Models/GetModel"])
@pytest.mark.parametrize("wire", [b"\xff\xff\xff", b"\x0a\x10abc", b"\x0a\x03\xff\xfe\xfd"],
                         ids=["corrupt", "truncated", "bad-utf8"])
def test_grpc_unparsable_request_is_invalid_argument(env: Env, method: str, wire: bytes) -> None:
    """Bytes that are not the request message: INVALID_ARGUMENT with our detail, not the
    UNKNOWN (naming a Python exception) grpc gives when a deserializer raises."""
    streaming = "Stream" in method
    make = env.channel.unary_stream if streaming else env.channel.unary_unary
    call = make(method, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
    with pytest.raises(grpc.RpcError) as raised:
        result = call(wire, metadata=(("authorization", f"Bearer {env.keys['all']}"),), timeout=15)
        if streaming:
            list(result)
    outcome = _grpc_outcome(raised.value)
    _check_clean(env, outcome)
    assert (outcome.status, outcome.type) == (400, BAD_REQUEST), outcome.message
    assert "Error" not in outcome.message and "<class" not in outcome.message, outcome.message


def test_grpc_health_and_reflection_still_work(env: Env) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    health = health_pb2_grpc.HealthStub(env.channel)
    assert health.Check(health_pb2.HealthCheckRequest(service="st_ai.v1.Chat"), timeout=10).status == \
        health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()


def test_grpc_nested_extra_json_is_checked(env: Env) -> None:
    request = _grpc_request(Case("x", 400, "", None, body=chat()))
    request.messages[0].extra_json = "{broken"
    with pytest.raises(grpc.RpcError) as raised:
        env.chat.CreateChatCompletion(request, metadata=(("authorization", f"Bearer {env.keys['all']}"),),
                                      timeout=15)
    outcome = _grpc_outcome(raised.value)
    assert (outcome.status, outcome.type) == (400, BAD_REQUEST), outcome.message
    assert outcome.param and outcome.param.endswith("extra_json"), outcome.param


def test_valid_requests_still_work(env: Env) -> None:
    """The environment is sound: the same key and model answer when nothing is wrong."""
    status, _, raw = env.rest.request("POST", "/v1/chat/completions", json.dumps(chat()).encode(),
                                      {"Authorization": f"Bearer {env.keys['all']}"})
    assert status == 200, raw
    answer = env.chat.CreateChatCompletion(_grpc_request(Case("x", 200, "", None, body=chat())),
                                           metadata=(("authorization", f"Bearer {env.keys['limited']}"),),
                                           timeout=15)
    assert answer.choices[0].message.text == "Simulated reply to: Hello"


# -- the body cap ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("capped") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--max-body-bytes", "2048")
    try:
        gw.channel("cap-sim", "simulator", [MODEL])
        key = gw.token("cap")
        yield gw, key
    finally:
        stop_gateway(gw)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("authorized", [True, False])
def test_body_over_the_cap_is_413(capped, stream: bool, authorized: bool) -> None:
    gw, key = capped
    rest = Rest(gw.http_url)
    try:
        headers = {"Authorization": f"Bearer {key}"} if authorized else {}
        small = chat(stream=stream)
        status, _, raw = rest.request("POST", "/v1/chat/completions", json.dumps(small).encode(),
                                      {"Authorization": f"Bearer {key}"})
        assert status == 200, raw
        big = chat(stream=stream, messages=[{"role": "user", "content": "x" * 4096}])
        status, response_headers, raw = rest.request("POST", "/v1/chat/completions",
                                                     json.dumps(big).encode(), headers)
        outcome = _rest_outcome(status, response_headers, raw)
        assert (outcome.status, outcome.type, outcome.code, outcome.param) == \
            (413, BAD_REQUEST, "request_too_large", None)
        assert "2048" in outcome.message
        for secret in FORBIDDEN_IN_ERRORS:
            assert secret not in outcome.raw
        # the server is fine afterwards, on a new connection
        rest.close()
        status, _, raw = rest.request("POST", "/v1/chat/completions", json.dumps(small).encode(),
                                      {"Authorization": f"Bearer {key}"})
        assert status == 200, raw
    finally:
        rest.close()


def test_body_just_under_the_cap_is_accepted(capped) -> None:
    gw, key = capped
    rest = Rest(gw.http_url)
    try:
        body = chat()
        base = len(json.dumps(body).encode())
        body["messages"][0]["content"] = "y" * (2048 - base - 5 + len("Hello"))
        raw_body = json.dumps(body).encode()
        assert len(raw_body) <= 2048
        status, _, raw = rest.request("POST", "/v1/chat/completions", raw_body, {"Authorization": f"Bearer {key}"})
        assert status == 200, raw
    finally:
        rest.close()
