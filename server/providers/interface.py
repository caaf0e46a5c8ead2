"""The small interface a provider implements. Providers see OpenAI-shaped dicts and
a shared HTTP client, never a transport (no aiohttp request, no gRPC context)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Callable, Protocol

import aiohttp

from server.store.channels import Channel


@dataclass(frozen=True)
class Upstream:
    """What providers share: one pooled HTTP client for every upstream call."""
    http: aiohttp.ClientSession


class ChatProvider(Protocol):
    async def complete(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        """One chat completion; `body` is an OpenAI request with the upstream model name."""

    def stream(self, channel: Channel, body: dict, timeout: float | None) -> AsyncIterator[dict]:
        """The completion as OpenAI `chat.completion.chunk` dicts, each as it arrives."""


@dataclass(frozen=True)
class ProviderSpec:
    type: str                       # the channel type, e.g. "openai"
    label: str                      # shown in `st-ai channel list`
    default_base_url: str | None = None
    chat: Callable[[Upstream], ChatProvider] | None = None
