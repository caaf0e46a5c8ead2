"""Image generation on Azure OpenAI: OpenAI's images call (server/providers/openai/images.py)
at the deployment's address, with Azure's filter annotations taken out of each image.
Azure's image URLs are its own signed storage URLs, which clients fetch directly."""
from __future__ import annotations

from server.providers.azure import filters
from server.providers.azure.wire import AZURE
from server.providers.interface import Upstream
from server.providers.openai.images import OpenAIImages
from server.store.channels import Channel


class AzureImages:
    def __init__(self, upstream: Upstream) -> None:
        self._images = OpenAIImages(upstream, AZURE)

    async def generate(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        return filters.image_answer(await self._images.generate(channel, body, timeout))
