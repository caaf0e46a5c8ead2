"""The grpc.aio server: st-ai's services, server reflection and grpc.health.v1."""
from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from server.catalog import Catalog
from server.relay import ChatRelay
from server.services.chat import ChatService
from server.services.models import ModelsService
from st_ai.v1 import chat_pb2, chat_pb2_grpc, models_pb2, models_pb2_grpc

SERVICE_NAMES = (
    chat_pb2.DESCRIPTOR.services_by_name["Chat"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["Models"].full_name,
)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


async def build_server(catalog: Catalog, relay: ChatRelay,
                       addresses: list[str]) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ])
    chat_pb2_grpc.add_ChatServicer_to_server(ChatService(catalog, relay), server)
    models_pb2_grpc.add_ModelsServicer_to_server(ModelsService(catalog), server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), server)
    for address in addresses:
        if server.add_insecure_port(address) == 0 and not address.startswith("unix:"):
            raise OSError(f"cannot listen on {address}")
    return server, health_servicer
