"""What a failed upstream call raises. Each is an aiohttp client error, so the providers'
one `except (aiohttp.ClientError, asyncio.TimeoutError)` reads this client's failures and
aiohttp's alike; a call out of time raises asyncio.TimeoutError, as aiohttp's does."""
from __future__ import annotations

import aiohttp


class CannotConnect(aiohttp.ClientConnectionError):
    """No connection could be opened (refused, unresolvable, TLS handshake failed)."""


class ConnectionDropped(aiohttp.ClientConnectionError):
    """The upstream closed the connection before its answer was complete."""


class BadAnswer(aiohttp.ClientPayloadError):
    """What came back is not an HTTP/1.1 answer st-ai can read."""
