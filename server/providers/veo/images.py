"""Images for Veo: the Gemini API takes them only inline (`bytesBase64Encoded` and
`mimeType`), so base64 and data: URIs are checked and passed on, and an http(s) URL a
client gives is marked in the prepared body and fetched by st-ai at submit time, through
the same checked fetcher (address rules, size cap, timeouts) as every upstream file.
`parse` is pure; `fetch_marked` does the fetching."""
from __future__ import annotations

import asyncio
import base64
import binascii
import re

from yarl import URL

from server.errors import invalid_request
from server.media_types import image_type
from server.providers.client_images import FETCH_TIMEOUT, fetch_image, refused
from server.safe_fetch import SafeFetch
from server.store.channels import Channel
from server.url_guard import Refused, classify, literal_address

# A client's image URL waiting to be fetched: {FETCH: url, "param": "image"}; never sent.
FETCH = "stAiFetchUrl"
PARAM = "stAiParam"
MAX_IMAGE_BYTES = 20 * 1024 * 1024   # the Gemini API's inline request limit
DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[^;,]*)*?);base64,", re.IGNORECASE)


def inline(raw: bytes, param: str, declared: str | None = None) -> dict:
    """Image bytes as the Gemini API takes them; the type is read from the bytes."""
    if not raw:
        raise invalid_request("The image is empty.", param, "invalid_image")
    kind = image_type(raw[:16])
    if kind is None:
        raise invalid_request("Veo takes a JPEG, PNG or WebP image.", param, "invalid_image_format")
    if len(raw) > MAX_IMAGE_BYTES:
        raise invalid_request(f"Veo takes an image of at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB.", param,
                              "image_too_large")
    return {"bytesBase64Encoded": base64.b64encode(raw).decode("ascii"), "mimeType": kind}


def parse(value: object, param: str, base_url: str) -> dict:
    """An image a client gave (URL, data: URI or bare base64) as Veo's image object, or
    a fetch marker for a URL. A URL st-ai would never fetch is refused here already
    when its host is an address; a name is checked when it is resolved, at submit."""
    if not isinstance(value, str) or not value.strip():
        raise invalid_request("An image is a URL, a data: URI or base64 text.", param, "invalid_image")
    value = value.strip()
    if value[:8].lower().startswith(("http://", "https://")):
        _check_url(value, param, base_url)
        return {FETCH: value, PARAM: param}
    match = DATA_URI.match(value)
    if value[:5].lower() == "data:" and match is None:
        raise invalid_request("A data: URI image must be base64-encoded.", param, "invalid_image")
    if match is not None:
        value = value[match.end():]
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request("The image must be an http(s) URL, a data: URI or base64.", param,
                              "invalid_image") from None
    return inline(raw, param)


def _check_url(url: str, param: str, base_url: str) -> None:
    try:
        parsed = URL(url)
        host = (parsed.raw_host or "").rstrip(".").lower()
    except (ValueError, TypeError):
        host = ""
    if not host:
        raise invalid_request("The image URL is not a valid http(s) URL.", param, "invalid_image_url")
    address = literal_address(host)
    if address is None:
        return
    verdict = classify(address)
    if verdict is None:
        return
    base_host = (URL(base_url).raw_host or "") if base_url else ""
    base_address = literal_address(base_host) if base_host else None
    base_verdict = classify(base_address) if base_address is not None else None
    # The one exception the fetch rules make: the channel's own network (a local provider).
    if verdict.network is None or base_verdict is None or base_verdict.network != verdict.network:
        raise refused(param, verdict.kind)


def marked(body: dict) -> list[dict]:
    """Every image object of a prepared body still waiting for its bytes."""
    instance = body["instances"][0]
    found = [instance[k] for k in ("image", "lastFrame") if isinstance(instance.get(k), dict)]
    found += [ref["image"] for ref in instance.get("referenceImages", ())]
    return [image for image in found if FETCH in image]


async def check_marked(body: dict, files: SafeFetch, channel: Channel) -> None:
    """The address rules for each image URL still to be fetched, checked now (the fetch at
    submit connects to the address it checks again then)."""
    for image in marked(body):
        try:
            await asyncio.wait_for(files.guard.check(image[FETCH], channel.base_url), FETCH_TIMEOUT)
        except Refused:
            raise refused(image[PARAM]) from None
        except asyncio.TimeoutError:
            raise invalid_request(f"The image URL in '{image[PARAM]}' could not be resolved.", image[PARAM],
                                  "invalid_image_url") from None


async def fetch_marked(body: dict, files: SafeFetch, channel: Channel) -> None:
    """Replaces each marker in `body` by the fetched image, inline."""
    for image in marked(body):
        url, param = image.pop(FETCH), image.pop(PARAM)
        raw, kind = await fetch_image(files, url, param, channel, MAX_IMAGE_BYTES,
                                      f"Veo takes an image of at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB.")
        image.update(inline(raw, param, kind))
