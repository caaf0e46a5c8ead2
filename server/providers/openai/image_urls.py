"""Image URLs an OpenAI-compatible server hands out on its own host (a self-hosted
server's `http://10.0.0.5:8000/files/x.png`): such a URL names the channel's base URL,
which no client may see, and which clients could not reach anyway. st-ai fetches the
image itself, through the checked fetcher, and serves it (a PNG, from its own assets)
or returns it inline. URLs elsewhere (OpenAI's signed storage URLs) pass through."""
from __future__ import annotations

import asyncio
import base64
import secrets

import aiohttp

from server import redact
from server.errors import upstream_failed
from server.providers.interface import Upstream
from server.safe_fetch import fetcher_for
from server.store.channels import Channel

MAX_IMAGE_BYTES = 32 * 1024 * 1024
PNG = b"\x89PNG\r\n\x1a\n"


async def rehost_private_urls(answer: dict, channel: Channel, upstream: Upstream) -> dict:
    redactor = redact.for_channel(channel)
    for item in answer["data"]:
        url = item.get("url") if isinstance(item, dict) else None
        if not isinstance(url, str) or not redactor.contains_secret(url):
            continue
        image = await _fetch(url, channel, upstream)
        del item["url"]
        if upstream.assets is not None and upstream.public_url and image.startswith(PNG):
            stored = await upstream.assets.save_bytes("images", "img_" + secrets.token_hex(16), ".png", image)
            item["url"] = f"{upstream.public_url.rstrip('/')}/v1/images/files/{stored.path.rsplit('/', 1)[-1]}"
        else:  # st-ai serves PNGs only: any other image comes back inline
            item["b64_json"] = base64.b64encode(image).decode()
    return answer


async def _fetch(url: str, channel: Channel, upstream: Upstream) -> bytes:
    try:
        response = await fetcher_for(upstream).get(url, channel.base_url)
        try:
            if response.status != 200:
                raise upstream_failed(f"The upstream's image could not be fetched (HTTP {response.status}).")
            chunks, size = [], 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > MAX_IMAGE_BYTES:
                    raise upstream_failed(f"The upstream's image is larger than {MAX_IMAGE_BYTES} bytes.")
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            response.release()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        raise upstream_failed("The upstream's image could not be fetched.") from None
