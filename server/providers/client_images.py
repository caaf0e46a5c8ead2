"""A client's image URL fetched by st-ai, for providers that take images inline (Gemini chat,
Veo): through the checked fetcher (address rules at every hop, redirects), bounded in size
and time. However it fails — a refused address, an error status, something that is not an
image, too many bytes, no answer in time — it is the client's 400 naming the field, never a
failure of the upstream channel (another channel would fetch the same URL)."""
from __future__ import annotations

import asyncio

import aiohttp

from server.errors import GatewayError, invalid_request
from server.media_types import image_type
from server.safe_fetch import SafeFetch
from server.store.channels import Channel
from server.url_guard import Refused

FETCH_TIMEOUT = 30.0  # seconds for one image, connect to last byte
READ_CHUNK = 64 * 1024
# what a file server says when it does not know what it serves: the bytes tell
UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})


def refused(param: str, kind: str | None = None) -> GatewayError:
    where = f" points to a {kind} address" if kind else " cannot be fetched under st-ai's address rules"
    return invalid_request(f"The image URL in '{param}'{where}; st-ai fetches images only from public "
                           "http(s) addresses.", param, "invalid_image_url")


async def fetch_image(files: SafeFetch, url: str, param: str, channel: Channel, max_bytes: int,
                      too_large: str) -> tuple[bytes, str]:
    """The image's bytes and MIME type. `too_large`: the 400's words past `max_bytes`."""
    try:
        return await asyncio.wait_for(_read(files, url, param, channel, max_bytes, too_large), FETCH_TIMEOUT)
    except Refused:
        raise refused(param) from None
    except (aiohttp.ClientError, asyncio.TimeoutError):
        raise invalid_request(f"The image URL in '{param}' could not be fetched.", param,
                              "invalid_image_url") from None


async def _read(files: SafeFetch, url: str, param: str, channel: Channel, max_bytes: int,
                too_large: str) -> tuple[bytes, str]:
    response = await files.get(url, channel.base_url)
    try:
        if response.status != 200:
            raise invalid_request(f"The image URL in '{param}' answered HTTP {response.status}.", param,
                                  "invalid_image_url")
        declared = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not (declared.startswith("image/") or declared in UNTYPED):
            raise _not_an_image(param)
        chunks, size = [], 0
        async for chunk in response.content.iter_chunked(READ_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise invalid_request(too_large, param, "image_too_large")
            chunks.append(chunk)
        raw = b"".join(chunks)
        kind = declared if declared.startswith("image/") else image_type(raw[:16])
        if kind is None:
            raise _not_an_image(param)
        return raw, kind
    finally:
        response.release()


def _not_an_image(param: str) -> GatewayError:
    return invalid_request(f"The image URL in '{param}' did not serve an image.", param, "invalid_image_format")
