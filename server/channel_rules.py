"""What an operator may configure as a channel, checked before anything is stored.

One place for the rules, so every way of adding a channel (the CLI now, an admin API
later) refuses the same input with the same message. The store stays permissive: it
records what it is given, and tests add channels to it directly."""
from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from server import url_rules
from server.providers.interface import ProviderSpec
from server.store.channels import ChannelError, Timeouts

# Paths of the endpoints st-ai calls under a base URL: a base URL ending in one was
# copied from an endpoint's documentation, and every call made under it would 404.
ENDPOINT_PATHS = (
    "chat/completions", "completions", "chat", "responses", "embeddings", "models", "moderations",
    "images/generations", "images/edits", "images/variations", "images",
    "audio/speech", "audio/transcriptions", "audio/translations",
    "videos", "videos/text2video", "videos/image2video", "text2video", "image2video",
    "image_to_video", "text_to_video", "video_to_video", "tasks",
)
_BLANK = url_rules.BLANK
# An upstream API version as providers spell them (2023-06-01, 2024-10-21, v1beta,
# 2025-04-01-preview): it goes into a header or a query string, so nothing else is taken.
API_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# The client APIs st-ai serves that an upstream may speak itself (--native-apis)
NATIVE_APIS = ("chat", "responses", "messages")
DEFAULT = "default"  # --native-apis default: back to the channel type's own


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
    weight: int = 1
    timeouts: Timeouts = Timeouts()  # None each: the gateway's default
    api_version: str | None = None  # None: the provider's current default
    native_apis: frozenset[str] | None = None  # None: the type's default (ProviderSpec.native_apis)


def check(new: NewChannel, specs: Mapping[str, ProviderSpec]) -> NewChannel:
    """The channel to store, or ChannelError with one line saying what to change."""
    spec = specs.get(new.type)
    if spec is None:
        raise ChannelError(f"unknown channel type {new.type!r}; known: {', '.join(sorted(specs))}")
    _check_name(new.name)
    models = _check_models(new.models)
    model_map = _check_model_map(new.model_map, models)
    _check_routing(new)
    api_version = check_api_version(new.api_version)
    native_apis = check_native_apis(new.native_apis)
    if not spec.upstream:
        if new.base_url or new.key or new.no_key or api_version or native_apis:
            raise ChannelError(f"--type {spec.type} has no upstream: drop --base-url, --key, --no-key, "
                               "--api-version and --native-apis")
        return NewChannel(new.name, spec.type, models, "", "", False, model_map, new.priority, new.weight,
                          new.timeouts)
    base_url = check_base_url(new.base_url) if new.base_url is not None else spec.default_base_url
    if not base_url:
        raise ChannelError(f"--type {spec.type} needs --base-url")
    return NewChannel(new.name, spec.type, models, base_url, _check_key(spec, new.key, new.no_key),
                      new.no_key, model_map, new.priority, new.weight, new.timeouts, api_version, native_apis)


def native_apis_given(value: object) -> frozenset[str] | str:
    """What an operator gave for --native-apis: "chat,responses" (or a list of names), "none"
    for no API, or "default" (DEFAULT) for the channel type's own. ChannelError otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == DEFAULT:
            return DEFAULT
        names = [] if text == "none" else [part.strip().lower() for part in text.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        names = [v.strip().lower() for v in value]
    else:
        raise ChannelError("--native-apis must be a comma list of chat, responses and messages, 'none' or 'default'")
    return check_native_apis(frozenset(names)) or frozenset()


def check_native_apis(apis: frozenset[str] | None) -> frozenset[str] | None:
    if apis is None:
        return None
    unknown = sorted(a for a in apis if a not in NATIVE_APIS)
    if unknown:
        raise ChannelError(f"--native-apis: {unknown[0]!r} is not one of {', '.join(NATIVE_APIS)} "
                           "(or give 'none', or 'default' for the channel type's own)")
    return frozenset(apis)


def native_apis_text(apis: frozenset[str]) -> str:
    """A set of native APIs as `channel list` shows it, in NATIVE_APIS' order."""
    return ",".join(a for a in NATIVE_APIS if a in apis) or "none"


def api_version_given(text: str) -> str:
    """What an operator typed for --api-version: "" for the provider's current version
    ("default", or nothing), else the version as typed (checked by `check`)."""
    return "" if text.strip().lower() in ("", "default") else text


def check_api_version(version: str | None) -> str | None:
    """The upstream API version a channel calls, or None for the provider's current one."""
    if version is None:
        return None
    if not isinstance(version, str) or not API_VERSION.fullmatch(version):
        raise ChannelError(f"--api-version {version!r} must be 1 to 64 letters, digits, '-', '.' or '_' "
                           "(e.g. 2024-10-21), or 'default' for the provider's current version")
    return version


def _check_routing(new: NewChannel) -> None:
    """Weight and timeouts arrive checked one by one (server/admin/rules.py); here, what
    only the whole shows."""
    t = new.timeouts
    for name, value in (("connect", t.connect), ("first-byte", t.first_byte), ("idle", t.idle), ("total", t.total)):
        if value is not None and not value > 0:
            raise ChannelError(f"--timeout-{name} must be a number of seconds above 0")
    if new.weight < 0:
        raise ChannelError("--weight must be 0 or more")
    if t.total is not None:
        for name, value in (("connect", t.connect), ("first-byte", t.first_byte)):
            if value is not None and value > t.total:
                raise ChannelError(f"--timeout-{name} {value:g} is longer than --timeout-total {t.total:g}: "
                                   "it could never apply")


def check_base_url(url: str) -> str:
    """An upstream API's base URL: http(s), a host, no endpoint path, query, fragment or
    credentials (the key goes in --key). Returned without a trailing slash."""
    try:
        parts = url_rules.check_http_url(url, "https://api.openai.com/v1",
                                         secrets_hint="; give the upstream key with --key")
    except ValueError as exc:
        raise ChannelError(f"--base-url: {exc}") from None
    path = parts.path.rstrip("/")
    for endpoint in sorted(ENDPOINT_PATHS, key=len, reverse=True):
        if path.lower() == f"/{endpoint}" or path.lower().endswith(f"/{endpoint}"):
            base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path[:-len(endpoint) - 1], "", ""))
            raise ChannelError(f"--base-url: {url!r} names the endpoint /{endpoint}; give the API's base, "
                               f"e.g. {base}")
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


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
    if not key.isascii():  # it travels in an HTTP header, where only ASCII is safe
        raise ChannelError("--key must be ASCII: check it was copied whole and unchanged")
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
