"""st_ai.v1.Embeddings over gRPC."""
from __future__ import annotations

import grpc

from server.catalog import Catalog
from server.codec import codec_for
from server.embeddings_relay import EmbeddingsRelay
from server.services.status import bearer, rpc_errors
from st_ai.v1 import embeddings_pb2, embeddings_pb2_grpc

REQUEST = codec_for(embeddings_pb2.EmbeddingRequest, strict=True)
RESPONSE = codec_for(embeddings_pb2.EmbeddingList)


class EmbeddingsService(embeddings_pb2_grpc.EmbeddingsServicer):
    def __init__(self, catalog: Catalog, relay: EmbeddingsRelay) -> None:
        self._catalog, self._relay = catalog, relay

    @rpc_errors
    async def CreateEmbedding(self, request: embeddings_pb2.EmbeddingRequest,
                              context: grpc.aio.ServicerContext) -> embeddings_pb2.EmbeddingList:
        token = await self._catalog.authenticate(bearer(context), check_address=False)
        answer = await self._relay.embed(token, REQUEST.to_dict(request), context.time_remaining())
        return RESPONSE.to_message(answer)
