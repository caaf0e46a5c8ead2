"""Response metadata a server may set that clients see as HTTP headers: from the initial
metadata of an answer, from the trailing metadata of a unary answer or of an error."""
from __future__ import annotations

from aiohttp import web

from server.billing.limits import HEADER_NAMES as RATE_LIMIT_HEADERS

FORWARDED_HEADERS = frozenset(("openai-poll-after-ms", *RATE_LIMIT_HEADERS))


def forward_headers(metadata, response: web.StreamResponse) -> web.StreamResponse:
    for key, value in metadata or ():
        if key in FORWARDED_HEADERS:
            response.headers[key] = value
    return response
