"""st_ai.v1.Chat over gRPC."""
from __future__ import annotations

import grpc

from server.catalog import Catalog
from server.codec import codec_for
from server.relay import ChatRelay
from server.services.answers import batch_items, encoder
from server.services.status import bearer, rpc_errors
from st_ai.v1 import chat_pb2, chat_pb2_grpc

REQUEST = codec_for(chat_pb2.ChatCompletionRequest, strict=True)
COMPLETION = codec_for(chat_pb2.ChatCompletion)
CHUNK = codec_for(chat_pb2.ChatCompletionChunk)


class ChatService(chat_pb2_grpc.ChatServicer):
    def __init__(self, catalog: Catalog, relay: ChatRelay) -> None:
        self._catalog = catalog
        self._relay = relay

    @rpc_errors
    async def CreateChatCompletion(self, request: chat_pb2.ChatCompletionRequest,
                                   context: grpc.aio.ServicerContext) -> chat_pb2.ChatCompletion:
        token = await self._catalog.authenticate(bearer(context), check_address=False)
        answer = await self._relay.complete(token, REQUEST.to_dict(request), context.time_remaining())
        return encoder(context, COMPLETION)(answer)

    @rpc_errors
    async def StreamChatCompletion(self, request: chat_pb2.ChatCompletionRequest,
                                   context: grpc.aio.ServicerContext):
        token = await self._catalog.authenticate(bearer(context), check_address=False)
        batches = self._relay.stream(token, REQUEST.to_dict(request), context.time_remaining())
        items = batch_items(context, CHUNK)
        try:
            async for batch in batches:
                for item in items(batch):
                    yield item
        finally:
            # A cancelled RPC lands here: closing the relay closes the upstream request.
            await batches.aclose()
