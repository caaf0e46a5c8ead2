"""Kling AI's video generation (`type: kling`); the channel key is "ACCESS_KEY:SECRET_KEY"."""
from server.providers.interface import ProviderSpec
from server.providers.kling.client import KlingVideo

PROVIDER = ProviderSpec(
    type="kling",
    label="Kling AI (video)",
    default_base_url="https://api-singapore.klingai.com",
    video=KlingVideo,
    key_format="ACCESS_KEY:SECRET_KEY",
)
