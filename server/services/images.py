"""st_ai.v1.Images over gRPC."""
from __future__ import annotations

import grpc
from google.api import httpbody_pb2

from server.assets import AssetStore
from server.catalog import Catalog
from server.codec import codec_for
from server.errors import GatewayError
from server.image_relay import FILE_ID, ImageRelay
from server.services.status import bearer, rpc_errors
from st_ai.v1 import images_pb2, images_pb2_grpc

REQUEST = codec_for(images_pb2.CreateImageRequest, strict=True)
RESPONSE = codec_for(images_pb2.ImagesResponse)


class ImagesService(images_pb2_grpc.ImagesServicer):
    def __init__(self, catalog: Catalog, relay: ImageRelay, assets: AssetStore) -> None:
        self._catalog, self._relay, self._assets = catalog, relay, assets

    @rpc_errors
    async def CreateImage(self, request: images_pb2.CreateImageRequest,
                          context: grpc.aio.ServicerContext) -> images_pb2.ImagesResponse:
        token = await self._catalog.authenticate(bearer(context), check_address=False)
        answer = await self._relay.generate(token, REQUEST.to_dict(request), context.time_remaining())
        return RESPONSE.to_message(answer)

    @rpc_errors
    async def GetImageFile(self, request: images_pb2.GetImageFileRequest, context: grpc.aio.ServicerContext):
        # no token: the unguessable file id is the capability, like a provider's signed URL
        name = request.file_id
        path = f"{self._assets.root}/images/{name}"
        size = await self._assets.size(path) if FILE_ID.match(name) else None
        if size is None:
            raise GatewayError(404, "No such image file.", "not_found", "file_id")
        await context.send_initial_metadata((("st-ai-content-length", str(size)),))
        async for chunk in self._assets.read(path, 0, size - 1):
            yield httpbody_pb2.HttpBody(content_type="image/png", data=chunk)
