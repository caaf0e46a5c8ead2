"""Alibaba's Wan video models on DashScope / Model Studio (`type: wan`): asynchronous
video-synthesis tasks with `X-DashScope-Async: enable`, polled at `/api/v1/tasks/{id}`.
The key is a Model Studio API key (`sk-...`) of the region the base URL names."""
from server.providers.interface import ProviderSpec
from server.providers.wan.client import DEFAULT_BASE_URL, WanVideo

PROVIDER = ProviderSpec(
    type="wan",
    label="Alibaba Wan (DashScope video)",
    default_base_url=DEFAULT_BASE_URL,
    video=WanVideo,
    key_format="KEY",
)
