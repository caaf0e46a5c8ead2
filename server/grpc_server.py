"""The grpc.aio server: st-ai's services, server reflection and grpc.health.v1."""
from __future__ import annotations

import inspect

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from server.errors import invalid_request
from server.services.memory_trim import trim_after_large_requests
from server.memory import Trimmer
from server.services import interceptors
from server.services.call_log import log_calls, log_unknown
from server.services.client_calls import client_calls
from server.services.draining_calls import draining_calls
from server.services.chat import ChatService
from server.services.health import DatabaseHealth
from server.services.interceptors import PerMethod, Wrap, compose
from server.services.in_process import HandlerTable, InProcessChannel
from server.services.embeddings import EmbeddingsService
from server.services.images import ImagesService
from server.services.messages import MessagesService
from server.core.token_count import TokenCounting
from server.services.models import ModelsService
from server.services.responses import ResponsesService
from server.services.status import abort, unknown_method
from server.services.videos import VideosService
from server.services.admin import AdminService
from st_ai.v1 import (admin_pb2, admin_pb2_grpc, chat_pb2, chat_pb2_grpc, embeddings_pb2, embeddings_pb2_grpc,
                      images_pb2, images_pb2_grpc, messages_pb2, messages_pb2_grpc, models_pb2, models_pb2_grpc,
                      responses_pb2, responses_pb2_grpc,
                      videos_pb2, videos_pb2_grpc)

SERVICE_NAMES = (
    chat_pb2.DESCRIPTOR.services_by_name["Chat"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["Models"].full_name,
    images_pb2.DESCRIPTOR.services_by_name["Images"].full_name,
    embeddings_pb2.DESCRIPTOR.services_by_name["Embeddings"].full_name,
    videos_pb2.DESCRIPTOR.services_by_name["Videos"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
    responses_pb2.DESCRIPTOR.services_by_name["Responses"].full_name,
    messages_pb2.DESCRIPTOR.services_by_name["Messages"].full_name,
)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_UNPARSABLE = object()  # what a request message that does not parse becomes


def refuse_unparsable(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """A request whose bytes are not its message type (corrupt wire format, a string that
    is not UTF-8) is the client's error: INVALID_ARGUMENT with our ErrorDetail, not the
    UNKNOWN, naming a Python exception, that grpc answers when a deserializer raises."""
    if handler.request_deserializer is None or handler.request_streaming:
        return handler
    parse = handler.request_deserializer

    def safe_parse(data: bytes):
        try:
            return parse(data)
        except Exception:
            return _UNPARSABLE

    def refusal():
        return invalid_request("The request message could not be parsed: its protobuf encoding is "
                               "corrupt or a string in it is not UTF-8.", code="invalid_message")

    kind, serve = interceptors.behaviour(handler)
    if inspect.isasyncgenfunction(serve):
        async def refusing(request, context):
            if request is _UNPARSABLE:
                await abort(context, refusal())
            async for item in serve(request, context):
                yield item
    elif inspect.iscoroutinefunction(serve):  # unary, or streaming with context.write
        async def refusing(request, context):
            if request is _UNPARSABLE:
                await abort(context, refusal())
            return await serve(request, context)
    else:
        return handler
    return handler._replace(request_deserializer=safe_parse, **{kind: refusing})


class _MethodSymbols:
    """The descriptor pool as server reflection sees it, plus what protobuf's own pool
    does not resolve: method symbols (`pkg.Service.Method`), which the reflection
    protocol allows and `grpcurl describe pkg.Service.Method` asks for."""

    def __init__(self, pool) -> None:
        self._pool = pool

    def __getattr__(self, name: str):
        return getattr(self._pool, name)

    def FindFileContainingSymbol(self, symbol: str):
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            service, _, method = symbol.rpartition(".")
            try:
                found = self._pool.FindServiceByName(service)
            except KeyError:
                found = None
            if found is None or method not in found.methods_by_name:
                raise
            return found.file


class GenericOnly:
    """The grpc.aio server as the generated `add_XServicer_to_server` functions see it: their
    handlers are added as generic handlers only, which serve every method. grpc.aio keeps a
    pending call request for each *registered* method and waits on all of them again for
    every call it accepts (st-ai's ~50 methods: 14% of a gRPC call's instructions); the
    generic path has one."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        pass  # the same handlers came through add_generic_rpc_handlers


def call_wraps(core, trusted_bridges: tuple = ()) -> list[Wrap]:
    """What runs around every call of st-ai's services, outermost first: the same for
    calls over gRPC (as interceptors) and for the bridge's in-process calls."""
    return [log_calls, draining_calls(core.drain, trusted_bridges), refuse_unparsable,
            trim_after_large_requests(Trimmer()), client_calls(core.worker, trusted_bridges)]


def add_services(core, server) -> None:
    """Register st-ai's servicers with `server` (a grpc server, or an in-process table)."""
    chat_pb2_grpc.add_ChatServicer_to_server(ChatService(core.catalog, core.relay), server)
    models_pb2_grpc.add_ModelsServicer_to_server(ModelsService(core.catalog, core.videos.registry.video), server)
    images_pb2_grpc.add_ImagesServicer_to_server(ImagesService(core.catalog, core.images, core.assets), server)
    embeddings_pb2_grpc.add_EmbeddingsServicer_to_server(EmbeddingsService(core.catalog, core.embeddings), server)
    videos_pb2_grpc.add_VideosServicer_to_server(VideosService(core.catalog, core.videos), server)
    admin_pb2_grpc.add_AdminServicer_to_server(AdminService(core, core.admin), server)
    responses_pb2_grpc.add_ResponsesServicer_to_server(
        ResponsesService(core.catalog, core.relay, core.worker, core.responses_retention), server)
    messages_pb2_grpc.add_MessagesServicer_to_server(
        MessagesService(core.catalog, core.relay, TokenCounting(core.catalog, core.relay.registry)), server)


def in_process_channel(core, health_servicer: health.aio.HealthServicer) -> InProcessChannel:
    """The bridge's way to st-ai's services in the same process (server/services/in_process.py)."""
    table = HandlerTable()
    add_services(core, table)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, table)
    return InProcessChannel(table, call_wraps(core))


async def build_server(core, addresses: list[str], trusted_bridges: tuple = (), reuse_port: bool = False
                       ) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """`core` is the gateway's Core: catalog, relays, video tasks, assets. A call from a
    peer in `trusted_bridges` (or the private Unix socket) may say its client's address.
    `reuse_port`: the workers of `serve --workers` share the port (else a port some other
    process holds is refused, never shared)."""
    wraps = call_wraps(core, trusted_bridges)
    # One interceptor applying every wrap: grpc.aio runs each interceptor for every call
    server = grpc.aio.server(interceptors=[
        PerMethod(compose(wraps), missing=log_unknown(unknown_method)),
    ], options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", int(reuse_port)),
    ])
    generic = GenericOnly(server)
    add_services(core, generic)

    health_servicer = DatabaseHealth(core.worker, SERVICE_NAMES)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, generic)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), generic, pool=_MethodSymbols(descriptor_pool.Default()))
    for address in addresses:
        if server.add_insecure_port(address) == 0 and not address.startswith("unix:"):
            raise OSError(f"cannot listen on {address}")
    return server, health_servicer
