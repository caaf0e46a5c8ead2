"""st_ai.v1.Models over gRPC: the models the calling token may use."""
from __future__ import annotations

from collections.abc import Mapping

import grpc

from server import routing
from server.catalog import Catalog
from server.codec import codec_for
from server.errors import model_not_found
from server.providers.interface import VideoProvider
from server.services.status import bearer, rpc_errors
from server.video_listing import capabilities_for
from st_ai.v1 import models_pb2, models_pb2_grpc


class ModelsService(models_pb2_grpc.ModelsServicer):
    def __init__(self, catalog: Catalog, video: Mapping[str, VideoProvider]) -> None:
        self._catalog = catalog
        self._video = video  # the registry's live table of video providers by channel type

    def _model(self, name: str) -> models_pb2.Model:
        snapshot = self._catalog.snapshot
        channels = snapshot.channels_by_model.get(name, ())
        owner = "st-ai-simulator" if channels and channels[0].type == "simulator" else "st-ai"
        model = models_pb2.Model(id=name, object="model", created=0, owned_by=owner)
        capabilities = capabilities_for(snapshot, self._video, name)
        if capabilities is not None:
            # Through the one JSON codec, so REST shows exactly `listing()` (an empty list too)
            model.capabilities.CopyFrom(codec_for(models_pb2.VideoCapabilities).to_message(capabilities.listing()))
        return model

    @rpc_errors
    async def ListModels(self, request: models_pb2.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> models_pb2.ModelList:
        token = await self._catalog.authenticate(bearer(context))
        names = routing.visible_models(self._catalog.snapshot, token)
        if not names:  # OpenAI clients expect "data": [], which a repeated field cannot say
            return models_pb2.ModelList(object="list", extra_json='{"data":[]}')
        return models_pb2.ModelList(object="list", data=[self._model(n) for n in names])

    @rpc_errors
    async def GetModel(self, request: models_pb2.GetModelRequest,
                       context: grpc.aio.ServicerContext) -> models_pb2.Model:
        token = await self._catalog.authenticate(bearer(context))
        if request.model not in routing.visible_models(self._catalog.snapshot, token):
            raise model_not_found(request.model)
        return self._model(request.model)
