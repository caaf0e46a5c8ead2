"""Which capabilities `GET /v1/models` shows for a public model: those the video provider
of the first channel serving it (highest priority) declares for that channel's upstream
model name. A model no video provider knows (chat, images) has none."""
from __future__ import annotations

from collections.abc import Mapping

from server.catalog import Snapshot
from server.providers.interface import VideoModels, VideoProvider
from server.providers.video_shape import VideoCapabilities


def capabilities_for(snapshot: Snapshot, video: Mapping[str, VideoProvider], model: str) -> VideoCapabilities | None:
    # The first channel by priority that knows the model as a video model: a public name
    # served by a chat channel first and a video channel second still lists its video form.
    for channel in snapshot.channels_by_model.get(model, ()):
        provider = video.get(channel.type)
        if isinstance(provider, VideoModels):
            capabilities = provider.capabilities(channel.upstream_model(model))
            if capabilities is not None:
                return capabilities
    return None
