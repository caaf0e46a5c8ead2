"""What Gemini chat and embeddings share on the wire: the method URL
(`{base}/{version}/models/{model}:{method}`, the version from the channel, v1beta by
default; a base URL written with a version works too), the key header and one JSON call."""
from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import aiohttp

from server.api_client import ApiClient
from server.providers import failures
from server.providers.gemini import errors
from server.providers.json_body import json_body
from server.providers.timeouts import client_timeout
from server.store.channels import Channel

DEFAULT_VERSION = "v1beta"
WRITTEN_VERSION = re.compile(r"/(v\d+(?:alpha|beta)?\d*)$")


def method_url(channel: Channel, model: str, method: str) -> str:
    base = channel.base_url.rstrip("/")
    written = WRITTEN_VERSION.search(base)
    if written:
        base = base[:written.start()]
    version = channel.api_version or (written.group(1) if written else DEFAULT_VERSION)
    return f"{base}/{version}/models/{quote(model.removeprefix('models/'), safe='')}:{method}"


def headers(channel: Channel, accept: str = "application/json") -> dict[str, str]:
    return {"x-goog-api-key": channel.key, "Content-Type": "application/json", "Accept": accept}


async def post_json(http: ApiClient, channel: Channel, url: str, request: dict,
                    timeout: float | None) -> dict:
    """One call whose answer is a JSON object; Google's errors come out as GatewayErrors."""
    try:
        async with http.post(url, data=json_body(request), headers=headers(channel),
                             timeout=client_timeout(channel, timeout)) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise errors.from_response(resp.status, raw, channel, resp.headers)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise errors.network_error(exc) from None
    return failures.json_object(raw, errors.WHO)
