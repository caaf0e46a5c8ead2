"""Images, audio and files a client gives in a chat message, as the Gemini API takes them:
inline bytes (`inlineData` with a MIME type and base64). Data URIs are passed on as they
are; an http(s) image URL is marked by the pure translation and fetched by st-ai before
the call, through the checked fetcher (address rules, redirects, size cap, timeouts), so
Gemini never fetches a client's URL and a refused one is a 400 naming the field."""
from __future__ import annotations

import base64
import binascii
import re


from server.errors import invalid_request
from server.providers.client_images import fetch_image
from server.safe_fetch import SafeFetch
from server.store.channels import Channel

# A client's URL waiting to be fetched, in place of a part: {FETCH: url, PARAM: field}; never sent.
FETCH = "stAiFetchUrl"
PARAM = "stAiParam"
MAX_INLINE_BYTES = 20 * 1024 * 1024   # the Gemini API's inline request limit
DATA_URI = re.compile(r"data:([\w.+-]+/[\w.+-]+)((?:;[^;,]*)*?);base64,", re.IGNORECASE)
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


def inline(mime_type: str, data: str, param: str) -> dict:
    data = "".join(data.split())
    try:
        size = len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        raise invalid_request(f"'{param}' is not valid base64.", param, "invalid_value") from None
    if size == 0:
        raise invalid_request(f"'{param}' is empty.", param, "invalid_value")
    if size > MAX_INLINE_BYTES:
        raise invalid_request(f"'{param}' is larger than the {MAX_INLINE_BYTES // (1024 * 1024)} MB Gemini takes "
                              "inline.", param, "file_too_large")
    return {"inlineData": {"mimeType": mime_type.lower(), "data": data}}


def data_uri(value: str, param: str) -> dict:
    match = DATA_URI.match(value)
    if match is None:
        raise invalid_request(f"'{param}' must be an http(s) URL or a base64 data: URI.", param, "invalid_value")
    return inline(match.group(1), value[match.end():], param)


def image(url: object, param: str) -> dict:
    """An `image_url.url` as a part, or a fetch marker for an http(s) URL."""
    if not isinstance(url, str) or not url.strip():
        raise invalid_request(f"'{param}' must be an http(s) URL or a base64 data: URI.", param, "invalid_value")
    url = url.strip()
    if url[:8].lower().startswith(("http://", "https://")):
        return {FETCH: url, PARAM: param}
    return data_uri(url, param)


def audio(value: object, param: str) -> dict:
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        raise invalid_request(f"'{param}' must hold base64 'data' and a 'format'.", param, "invalid_value")
    kind = AUDIO_TYPES.get(value.get("format"))
    if kind is None:
        raise invalid_request(f"'{param}.format' must be one of {', '.join(AUDIO_TYPES)}.", f"{param}.format",
                              "invalid_value")
    return inline(kind, value["data"], f"{param}.data")


def file(value: object, param: str) -> dict:
    data = value.get("file_data") if isinstance(value, dict) else None
    if not isinstance(data, str):
        raise invalid_request(f"'{param}.file_data' is required: Gemini channels take files inline as a base64 "
                              "data: URI (file ids are OpenAI's own).", f"{param}.file_data", "invalid_value")
    return data_uri(data, f"{param}.file_data")


def marked(request: dict) -> list[tuple[list, int]]:
    """Where a prepared request still has URLs to fetch: (parts list, index) pairs."""
    return [(content["parts"], i) for content in request.get("contents", ())
            for i, part in enumerate(content["parts"]) if FETCH in part]


async def fetch_marked(request: dict, files: SafeFetch, channel: Channel) -> None:
    """Replaces each marker in `request` with the fetched image, inline."""
    total = 0
    for parts, i in marked(request):
        url, param = parts[i][FETCH], parts[i][PARAM]
        raw, kind = await fetch_image(files, url, param, channel, MAX_INLINE_BYTES,
                                      f"The image in '{param}' is larger than the "
                                      f"{MAX_INLINE_BYTES // (1024 * 1024)} MB Gemini takes inline.")
        total += len(raw)
        if total > MAX_INLINE_BYTES:
            raise invalid_request(f"The images of this request are larger than the {MAX_INLINE_BYTES // (1024 * 1024)}"
                                  " MB Gemini takes inline.", param, "file_too_large")
        parts[i] = {"inlineData": {"mimeType": kind, "data": base64.b64encode(raw).decode("ascii")}}
