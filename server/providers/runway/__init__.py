"""Runway's video generation (`type: runway`): image-to-video and text-to-video tasks
on api.dev.runwayml.com. Runway has no remix, so this provider offers none."""
from server.providers.interface import ProviderSpec
from server.providers.runway.client import DEFAULT_BASE_URL, RunwayVideo

PROVIDER = ProviderSpec(
    type="runway",
    label="Runway (video)",
    default_base_url=DEFAULT_BASE_URL,
    video=RunwayVideo,
    key_format="KEY",
)
