"""st_ai.v1.Videos over gRPC."""
from __future__ import annotations

import grpc
from google.api import httpbody_pb2

from server.byte_ranges import ByteRange, RangeNotSatisfiable
from server.catalog import Catalog
from server.codec import codec_for
from server.services.idempotency import idempotency_key
from server.services.status import bearer, rpc_errors
from server.video_tasks import VideoTasks
from st_ai.v1 import videos_pb2, videos_pb2_grpc

CREATE = codec_for(videos_pb2.CreateVideoRequest, strict=True)
REMIX = codec_for(videos_pb2.RemixVideoRequest, strict=True)
VIDEO = codec_for(videos_pb2.Video)
LIST = codec_for(videos_pb2.VideoList)
CONTENT_LENGTH = "st-ai-content-length"
CONTENT_RANGE = "st-ai-content-range"


class VideosService(videos_pb2_grpc.VideosServicer):
    def __init__(self, catalog: Catalog, tasks: VideoTasks) -> None:
        self._catalog, self._tasks = catalog, tasks
        # what OpenAI's SDK waits between polls in create_and_poll
        self._poll_after_ms = str(max(100, int(tasks.config.poll_interval * 1000)))

    @rpc_errors
    async def CreateVideo(self, request: videos_pb2.CreateVideoRequest,
                          context: grpc.aio.ServicerContext) -> videos_pb2.Video:
        token = await self._catalog.authenticate(bearer(context), check_address=False)
        key = idempotency_key(context)
        # answered once a channel accepted the task (within the call's deadline, if shorter)
        video = await self._tasks.create(token, CREATE.to_dict(request), key, context.time_remaining())
        return VIDEO.to_message(video)

    @rpc_errors
    async def GetVideo(self, request: videos_pb2.GetVideoRequest, context: grpc.aio.ServicerContext) -> videos_pb2.Video:
        token = await self._catalog.authenticate(bearer(context))
        video = await self._tasks.get(token, request.video_id)
        if video["status"] in ("queued", "in_progress"):
            await context.send_initial_metadata((("openai-poll-after-ms", self._poll_after_ms),))
        return VIDEO.to_message(video)

    @rpc_errors
    async def ListVideos(self, request: videos_pb2.ListVideosRequest,
                         context: grpc.aio.ServicerContext) -> videos_pb2.VideoList:
        token = await self._catalog.authenticate(bearer(context))
        limit = request.limit if request.HasField("limit") else None  # an explicit 0 is a 400, not the default
        page = await self._tasks.list(token, request.after, limit, request.order)
        return LIST.to_message(page)

    @rpc_errors
    async def DeleteVideo(self, request: videos_pb2.DeleteVideoRequest,
                          context: grpc.aio.ServicerContext) -> videos_pb2.DeletedVideo:
        token = await self._catalog.authenticate(bearer(context))
        return videos_pb2.DeletedVideo(**await self._tasks.delete(token, request.video_id))

    @rpc_errors
    async def RemixVideo(self, request: videos_pb2.RemixVideoRequest,
                         context: grpc.aio.ServicerContext) -> videos_pb2.Video:
        token = await self._catalog.authenticate(bearer(context), check_address=False)
        key = idempotency_key(context)
        video = await self._tasks.remix(token, request.video_id, REMIX.to_dict(request), key, context.time_remaining())
        return VIDEO.to_message(video)

    @rpc_errors
    async def GetVideoContent(self, request: videos_pb2.GetVideoContentRequest, context: grpc.aio.ServicerContext):
        token = await self._catalog.authenticate(bearer(context))
        asked = ByteRange(*(getattr(request, f) if request.HasField(f) else None
                            for f in ("range_start", "range_end", "suffix_length")))
        try:
            kind, span, chunks = await self._tasks.content(token, request.video_id, request.variant, asked)
        except RangeNotSatisfiable as error:
            # the file's size, for the 416's `Content-Range: bytes */N`
            await context.send_initial_metadata(((CONTENT_RANGE, error.content_range),))
            raise
        headers = [(CONTENT_LENGTH, str(span.length))]
        if span.partial:
            headers.append((CONTENT_RANGE, span.content_range))
        await context.send_initial_metadata(tuple(headers))
        async for chunk in chunks:
            yield httpbody_pb2.HttpBody(content_type=kind, data=chunk)
