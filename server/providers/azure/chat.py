"""Chat completions on Azure OpenAI: OpenAI's chat calls (server/providers/openai/chat.py)
at Azure's addresses (wire.py), with Azure's filter annotations taken out (filters.py)."""
from __future__ import annotations

import contextlib
from typing import AsyncIterator

from server.providers.azure import filters
from server.providers.azure.wire import AZURE
from server.providers.interface import Upstream
from server.providers.openai.chat import OpenAIChat
from server.store.channels import Channel


class AzureChat:
    def __init__(self, upstream: Upstream) -> None:
        self._chat = OpenAIChat(upstream, AZURE)

    async def complete(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        return filters.answer(await self._chat.complete(channel, body, timeout))

    async def stream(self, channel: Channel, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        async with contextlib.aclosing(self._chat.stream(channel, body, timeout)) as chunks:
            async for chunk in chunks:
                shown = filters.chunk(chunk)
                if shown is not None:
                    yield shown
