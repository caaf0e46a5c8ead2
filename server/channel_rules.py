"""What an operator may configure as a channel, checked before anything is stored.

One place for the rules, so every way of adding a channel (the CLI now, an admin API
later) refuses the same input with the same message. The store stays permissive: it
records what it is given, and tests add channels to it directly."""
from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from server.providers.interface import ProviderSpec
from server.store.channels import ChannelError

# Paths of the endpoints st-ai calls under a base URL: a base URL ending in one was
# copied from an endpoint's documentation, and every call made under it would 404.
ENDPOINT_PATHS = (
    "chat/completions", "completions", "chat", "responses", "embeddings", "models", "moderations",
    "images/generations", "images/edits", "images/variations", "images",
    "audio/speech", "audio/transcriptions", "audio/translations",
    "videos", "videos/text2video", "videos/image2video", "text2video", "image2video",
    "image_to_video", "text_to_video", "video_to_video", "tasks",
)
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_BLANK = re.compile(r"[\s\x00-\x1f\x7f]")


@dataclass(frozen=True)
class NewChannel:
    """A channel as the operator asked for it; `check` returns it completed and normalised."""
    name: str
    type: str
    models: list[str]
    base_url: str | None = None
    key: str | None = None
    no_key: bool = False  # the operator declares an upstream that takes no key
    model_map: dict[str, str] = field(default_factory=dict)
    priority: int = 0


def check(new: NewChannel, specs: Mapping[str, ProviderSpec]) -> NewChannel:
    """The channel to store, or ChannelError with one line saying what to change."""
    spec = specs.get(new.type)
    if spec is None:
        raise ChannelError(f"unknown channel type {new.type!r}; known: {', '.join(sorted(specs))}")
    _check_name(new.name)
    models = _check_models(new.models)
    model_map = _check_model_map(new.model_map, models)
    if not spec.upstream:
        if new.base_url or new.key or new.no_key:
            raise ChannelError(f"--type {spec.type} has no upstream: drop --base-url, --key and --no-key")
        return NewChannel(new.name, spec.type, models, "", "", False, model_map, new.priority)
    base_url = check_base_url(new.base_url) if new.base_url is not None else spec.default_base_url
    if not base_url:
        raise ChannelError(f"--type {spec.type} needs --base-url")
    return NewChannel(new.name, spec.type, models, base_url, _check_key(spec, new.key, new.no_key),
                      new.no_key, model_map, new.priority)


def check_base_url(url: str) -> str:
    """An upstream API's base URL: http(s), a host, no endpoint path, query, fragment or
    credentials. Returned without a trailing slash."""
    if not url or _BLANK.search(url):
        raise ChannelError(f"--base-url {url!r} must be a URL without spaces, e.g. https://api.openai.com/v1")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not url.lower().startswith(f"{parts.scheme.lower()}://"):
        raise ChannelError(f"--base-url {url!r} must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ChannelError("--base-url must not hold credentials: give the upstream key with --key")
    _check_host(url, parts)
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        # not echoed: a query is where a careless operator puts a key
        raise ChannelError("--base-url must not have a ?query or #fragment; give the upstream key with --key")
    path = parts.path.rstrip("/")
    for endpoint in sorted(ENDPOINT_PATHS, key=len, reverse=True):
        if path.lower() == f"/{endpoint}" or path.lower().endswith(f"/{endpoint}"):
            base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path[:-len(endpoint) - 1], "", ""))
            raise ChannelError(f"--base-url {url!r} names the endpoint /{endpoint}; give the API's base, "
                               f"e.g. {base or 'https://api.openai.com/v1'}")
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def _check_host(url: str, parts: urllib.parse.SplitResult) -> None:
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        raise ChannelError(f"--base-url {url!r} has a port that is not a number from 1 to 65535") from None
    if port == 0:
        raise ChannelError(f"--base-url {url!r} has port 0")
    if not host:
        raise ChannelError(f"--base-url {url!r} has no host, e.g. https://api.openai.com/v1")
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ChannelError(f"--base-url {url!r} has no valid host name") from None
    labels = ascii_host.rstrip(".").split(".")
    if len(ascii_host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ChannelError(f"--base-url {url!r} has no valid host name")


def _check_key(spec: ProviderSpec, key: str | None, no_key: bool) -> str:
    if no_key:
        if not spec.key_optional:
            raise ChannelError(f"--type {spec.type} always needs --key {spec.key_format}")
        if key:
            raise ChannelError("give either --key or --no-key, not both")
        return ""
    hint = " (or --no-key for a server that takes none)" if spec.key_optional else ""
    if not key:
        raise ChannelError(f"--type {spec.type} needs --key {spec.key_format}{hint}")
    if _BLANK.search(key):
        raise ChannelError("--key must be the key alone: no spaces, line breaks or 'Bearer ' prefix")
    expected = len(spec.key_format.split(":"))
    if expected > 1 and (len(key.split(":")) != expected or not all(key.split(":"))):
        raise ChannelError(f"--type {spec.type} takes --key {spec.key_format}, both parts non-empty")
    return key


def _check_name(name: str) -> None:
    if not name or _BLANK.search(name) or len(name) > 64:
        raise ChannelError(f"channel name {name!r} must be 1 to 64 characters without spaces")


def _check_models(models: list[str]) -> list[str]:
    models = list(dict.fromkeys(models))
    if not models:
        raise ChannelError("a channel needs at least one model in --models")
    for model in models:
        if _BLANK.search(model):
            raise ChannelError(f"model name {model!r} must not contain spaces")
    return models


def _check_model_map(model_map: Mapping[str, str], models: list[str]) -> dict[str, str]:
    for public, upstream in model_map.items():
        if public not in models:
            raise ChannelError(f"--model-map renames {public!r}, which is not in --models "
                               f"({', '.join(models)})")
        if not upstream or _BLANK.search(upstream):
            raise ChannelError(f"--model-map {public}={upstream!r}: the upstream name must not contain spaces")
    return dict(model_map)
