"""rest_bridge/routes.py: REST routes read from the services' google.api.http annotations."""
from __future__ import annotations

import itertools

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool

from rest_bridge.routes import Route, discover, proto_modules, services
from st_ai.v1 import chat_pb2, models_pb2


@pytest.fixture(scope="module")
def routes() -> dict[tuple[str, str], Route]:
    return {(r.method, r.path): r for r in discover(services(proto_modules()))}


def test_proto_modules_include_chat_and_models():
    names = {m.__name__ for m in proto_modules()}
    assert {"st_ai.v1.chat_pb2", "st_ai.v1.models_pb2"} <= names


def test_exactly_the_annotated_routes_are_discovered(routes):
    assert set(routes) == {
        ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/models/{model}"),
        ("POST", "/v1/images/generations"), ("GET", "/v1/images/files/{file_id}"), ("POST", "/v1/embeddings"),
        ("POST", "/v1/videos"), ("GET", "/v1/videos"), ("GET", "/v1/videos/{video_id}"),
        ("DELETE", "/v1/videos/{video_id}"), ("GET", "/v1/videos/{video_id}/content"),
        ("POST", "/v1/videos/{video_id}/remix"), ("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens"),
        ("POST", "/v1/responses"), ("GET", "/v1/responses/{response_id}"),
        ("DELETE", "/v1/responses/{response_id}"), ("GET", "/v1/responses/{response_id}/input_items"),
        # the Admin API
        ("GET", "/api/v1/tokens"), ("POST", "/api/v1/tokens"), ("GET", "/api/v1/tokens/{name}"),
        ("PATCH", "/api/v1/tokens/{name}"), ("DELETE", "/api/v1/tokens/{name}"),
        ("POST", "/api/v1/tokens/{name}/disable"), ("POST", "/api/v1/tokens/{name}/enable"),
        ("POST", "/api/v1/tokens/{name}/rotate"), ("POST", "/api/v1/tokens/{name}/quota"),
        ("GET", "/api/v1/channels"), ("POST", "/api/v1/channels"), ("GET", "/api/v1/channels/{name}"),
        ("PATCH", "/api/v1/channels/{name}"), ("DELETE", "/api/v1/channels/{name}"),
        ("POST", "/api/v1/channels/{name}/disable"), ("POST", "/api/v1/channels/{name}/enable"),
        ("POST", "/api/v1/channels/{name}/test"),
        ("GET", "/api/v1/prices"), ("PUT", "/api/v1/prices/{model}"), ("DELETE", "/api/v1/prices/{model}"),
        ("GET", "/api/v1/videos"), ("GET", "/api/v1/videos/{video_id}"), ("DELETE", "/api/v1/videos/{video_id}"),
        ("GET", "/api/v1/audit"), ("GET", "/api/v1/usage")}


def test_admin_routes_bind_path_variables_and_bodies(routes):
    (update,) = routes["PATCH", "/api/v1/tokens/{name}"].bindings
    assert update.rpc_path == "/st_ai.v1.Admin/UpdateToken" and update.path_fields == ("name",)
    assert update.body == "*"
    (disable,) = routes["POST", "/api/v1/channels/{name}/disable"].bindings
    assert disable.path_fields == ("name",) and disable.body == ""
    (price,) = routes["PUT", "/api/v1/prices/{model}"].bindings
    assert price.rpc_path == "/st_ai.v1.Admin/SetPrice" and price.path_fields == ("model",)


def test_video_content_is_a_byte_stream_with_the_id_from_the_path(routes):
    from google.api.httpbody_pb2 import HttpBody

    (binding,) = routes["GET", "/v1/videos/{video_id}/content"].bindings
    assert binding.rpc_path == "/st_ai.v1.Videos/GetVideoContent"
    assert binding.response_class is HttpBody and binding.server_streaming
    assert binding.path_fields == ("video_id",) and binding.body == ""


def test_chat_completions_is_bound_to_both_chat_rpcs_unary_first(routes):
    route = routes["POST", "/v1/chat/completions"]
    unary, streaming = route.bindings
    assert unary.rpc_path == "/st_ai.v1.Chat/CreateChatCompletion"
    assert unary.server_streaming is False
    assert unary.response_class is chat_pb2.ChatCompletion
    assert streaming.rpc_path == "/st_ai.v1.Chat/StreamChatCompletion"
    assert streaming.server_streaming is True
    assert streaming.response_class is chat_pb2.ChatCompletionChunk
    for binding in route.bindings:
        assert binding.request_class is chat_pb2.ChatCompletionRequest
        assert binding.body == "*"
        assert binding.path_fields == ()


def test_list_models_is_a_get_without_body(routes):
    (binding,) = routes["GET", "/v1/models"].bindings
    assert binding.rpc_path == "/st_ai.v1.Models/ListModels"
    assert binding.request_class is models_pb2.ListModelsRequest
    assert binding.response_class is models_pb2.ModelList
    assert binding.body == "" and binding.path_fields == () and not binding.server_streaming


def test_get_model_binds_the_path_variable_to_its_field(routes):
    (binding,) = routes["GET", "/v1/models/{model}"].bindings
    assert binding.rpc_path == "/st_ai.v1.Models/GetModel"
    assert binding.request_class is models_pb2.GetModelRequest
    assert binding.response_class is models_pb2.Model
    assert binding.path_fields == ("model",)
    assert binding.body == ""


# -- services built in the test ---------------------------------------------------------

_counter = itertools.count()


def fake_service(*methods: tuple[str, http_pb2.HttpRule, bool]):
    """A service `Fake` in a fresh file, one method per (name, rule, server_streaming)."""
    n = next(_counter)
    package = f"st_ai_test.routes{n}"
    file = descriptor_pb2.FileDescriptorProto(
        name=f"st_ai_test/routes{n}.proto", package=package, syntax="proto3",
        dependency=["google/api/annotations.proto"])
    request = file.message_type.add(name="Req")
    request.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    request.field.add(name="stream", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    file.message_type.add(name="Resp")
    service = file.service.add(name="Fake")
    for name, rule, streaming in methods:
        method = service.method.add(name=name, input_type=f".{package}.Req", output_type=f".{package}.Resp",
                                    server_streaming=streaming)
        if rule is not None:
            method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    descriptor_pool.Default().Add(file)
    return descriptor_pool.Default().FindServiceByName(f"{package}.Fake")


def test_fake_service_with_good_annotations_is_discovered():
    service = fake_service(("Get", http_pb2.HttpRule(get="/v1/things/{id}"), False),
                           ("Unannotated", None, False))
    (route,) = discover([service])
    assert (route.method, route.path) == ("GET", "/v1/things/{id}")
    assert route.bindings[0].path_fields == ("id",)
    assert route.bindings[0].rpc_path.endswith(".Fake/Get")


def test_bad_path_variable_raises():
    service = fake_service(("Get", http_pb2.HttpRule(get="/v1/things/{nope}"), False))
    with pytest.raises(ValueError, match=r"\{nope\}"):
        discover([service])


@pytest.mark.parametrize("template", ["/v1/{id=things/*}", "/v1/{id.sub}", "/v1/{}"])
def test_unsupported_path_variables_raise(template):
    service = fake_service(("Get", http_pb2.HttpRule(get=template), False))
    with pytest.raises(ValueError, match="path variable"):
        discover([service])


def test_additional_bindings_and_custom_verbs_are_routes():
    rule = http_pb2.HttpRule(post="/v1/things", body="*")
    rule.additional_bindings.add(custom=http_pb2.CustomHttpPattern(kind="HEAD", path="/v1/things/{id}"))
    service = fake_service(("Make", rule, False))
    routes = {(r.method, r.path): r for r in discover([service])}
    assert set(routes) == {("POST", "/v1/things"), ("HEAD", "/v1/things/{id}")}
    assert routes["POST", "/v1/things"].bindings[0].body == "*"
    assert routes["HEAD", "/v1/things/{id}"].bindings[0].path_fields == ("id",)


def test_unary_and_streaming_twins_share_a_route_unary_first():
    rule = http_pb2.HttpRule(post="/v1/things", body="*")
    # declared streaming first: the route still lists the unary binding first
    service = fake_service(("Stream", rule, True), ("Once", rule, False))
    (route,) = discover([service])
    assert [b.server_streaming for b in route.bindings] == [False, True]
    assert route.bindings[0].rpc_path.endswith("/Once")


@pytest.mark.parametrize("streaming", [(False, False), (True, True), (False, True, True)])
def test_other_shared_routes_raise(streaming):
    rule = http_pb2.HttpRule(post="/v1/things", body="*")
    service = fake_service(*((f"M{i}", rule, s) for i, s in enumerate(streaming)))
    with pytest.raises(ValueError, match="several RPCs"):
        discover([service])


def test_rule_without_a_pattern_raises():
    service = fake_service(("Get", http_pb2.HttpRule(body="*"), False))
    with pytest.raises(ValueError, match="unsupported http rule"):
        discover([service])
