"""What the OpenAI provider's chat, images and videos share on the wire: auth
headers, one wording for network failures, and a request whose answer is a JSON
object. `Wire` says where an OpenAI-shaped API takes a call and how it is signed, so a
service that speaks OpenAI's bodies at other addresses (Azure OpenAI) reuses the
calls as they are."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable, Protocol

import aiohttp

from server.api_client import ApiClient
from server.errors import GatewayError, unreachable
from server.providers import failures
from server.providers.failures import Headers
from server.providers.openai import errors
from server.store.channels import Channel


def auth_headers(channel: Channel, accept: str = "application/json", json_body: bool = False) -> dict[str, str]:
    headers = {"Accept": accept}
    if json_body:
        headers["Content-Type"] = "application/json"
    if channel.key:
        headers["Authorization"] = f"Bearer {channel.key}"
    return headers


class ErrorReader(Protocol):
    def __call__(self, status: int, body: bytes, channel: Channel, endpoint: bool = False,
                 headers: Headers | None = None) -> GatewayError: ...


def _path_url(channel: Channel, path: str, model: str) -> str:
    return f"{channel.base_url}/{path}"


@dataclass(frozen=True)
class Wire:
    """How calls reach an OpenAI-shaped API: `url(channel, path, model)` for an API path
    such as "chat/completions" and the upstream model the call is for; `headers` as
    `auth_headers` takes them; `error` reads a failed answer as errors.from_response does."""
    url: Callable[[Channel, str, str], str] = _path_url
    headers: Callable[..., dict[str, str]] = auth_headers
    error: ErrorReader = errors.from_response


OPENAI = Wire()


def network_error(exc: BaseException) -> GatewayError:
    return unreachable(exc)


async def request_object(http: ApiClient | aiohttp.ClientSession, method: str, url: str, channel: Channel,
                         timeout: aiohttp.ClientTimeout, final_on_bad_key: bool = False,
                         endpoint: bool = False, wire: Wire = OPENAI, **kwargs) -> dict:
    """One request whose answer is a JSON object. Upstream errors come out through the
    wire's reader, errors.from_response for OpenAI (`endpoint`: `url` is one of the API's
    fixed paths); with `final_on_bad_key`, a rejected key (401/403) or a misconfigured
    channel (404/405 on an endpoint) is not retryable, for callers that would otherwise
    send the same call again later."""
    try:
        async with http.request(method, url, timeout=timeout, **kwargs) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                error = wire.error(resp.status, raw, channel, endpoint, resp.headers)
                if final_on_bad_key and (error.channel_fault or endpoint and resp.status in (404, 405)):
                    error.retryable = False
                raise error
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise network_error(exc) from None
    return failures.json_object(raw, errors.WHO)
