"""Finds the provider packages and builds their capabilities once per server."""
from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import KeysView
from dataclasses import dataclass, field

import server.providers as providers_package
from server.providers.interface import (ChatProvider, EmbeddingsProvider, ImagesProvider, ProviderSpec, Upstream,
                                       VideoProvider)


def discover() -> dict[str, ProviderSpec]:
    specs: dict[str, ProviderSpec] = {}
    for info in pkgutil.iter_modules(providers_package.__path__):
        module = importlib.import_module(f"{providers_package.__name__}.{info.name}")
        spec = getattr(module, "PROVIDER", None)
        if isinstance(spec, ProviderSpec):
            specs[spec.type] = spec
    return specs


@functools.cache
def default_native_apis() -> dict[str, frozenset[str]]:
    """Each channel type's native client APIs (ProviderSpec.native_apis), found once."""
    return {type_: spec.native_apis for type_, spec in discover().items()}


@dataclass
class Registry:
    specs: dict[str, ProviderSpec]
    chat: dict[str, ChatProvider] = field(default_factory=dict)
    images: dict[str, ImagesProvider] = field(default_factory=dict)
    video: dict[str, VideoProvider] = field(default_factory=dict)
    embeddings: dict[str, EmbeddingsProvider] = field(default_factory=dict)

    @classmethod
    def build(cls, upstream: Upstream) -> "Registry":
        specs = discover()
        registry = cls(specs)
        for type_, spec in specs.items():
            for capability in ("chat", "images", "video", "embeddings"):
                factory = getattr(spec, capability)
                if factory is not None:
                    getattr(registry, capability)[type_] = factory(upstream)
        return registry

    # Live views of the capability tables: read on every request, so never copied.
    @property
    def chat_types(self) -> KeysView[str]:
        return self.chat.keys()

    @property
    def images_types(self) -> KeysView[str]:
        return self.images.keys()

    @property
    def video_types(self) -> KeysView[str]:
        return self.video.keys()

    @property
    def embeddings_types(self) -> KeysView[str]:
        return self.embeddings.keys()
