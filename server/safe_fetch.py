"""GET for URLs an upstream chose: every hop (redirects included, a bounded number) is
checked by the UrlGuard and connected to the very address that was checked, and each
download is bounded in size, in connect time, in time between reads and in total.
Runs on a long-lived pooled session; nothing is set up per request."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from server.url_guard import Refused, UrlGuard, refused

if TYPE_CHECKING:
    from server.providers.interface import Upstream

REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 2 * 1024**3
    connect: float = 15.0          # seconds to resolve and connect, per hop
    read: float = 60.0             # seconds allowed between two reads
    total: float = 1800.0          # seconds for the whole download, redirects included
    max_redirects: int = 5


class SafeFetch:
    def __init__(self, http: aiohttp.ClientSession, guard: UrlGuard, limits: FetchLimits = FetchLimits()) -> None:
        self._http = http
        self.guard = guard
        self.limits = limits

    async def get(self, url: str, base_url: str | None) -> aiohttp.ClientResponse:
        """The final response (any status) for `url`; the caller reads and releases it.
        Raises Refused for a URL or hop the rules refuse, or a file over the size cap;
        aiohttp.ClientError or asyncio.TimeoutError for network failures."""
        deadline = time.monotonic() + self.limits.total
        current: str | URL = url
        for _ in range(self.limits.max_redirects + 1):
            target = await self.guard.check(current, base_url)
            response = await self._request(target.url, target.address, deadline)
            location = response.headers.get("Location") if response.status in REDIRECTS else None
            if location is None:
                self._check_size(response)
                return response
            response.release()
            try:
                current = target.url.join(URL(location))
            except (ValueError, TypeError):
                raise refused("The provider's file URL redirected to something that is not a URL.") from None
        raise refused(f"The provider's file URL redirected more than {self.limits.max_redirects} times.")

    async def _request(self, url: URL, address: str, deadline: float) -> aiohttp.ClientResponse:
        left = max(0.001, deadline - time.monotonic())
        timeout = aiohttp.ClientTimeout(total=left, sock_connect=self.limits.connect, sock_read=self.limits.read)
        # Pinned: connect to the checked address, and name the host in Host and TLS (SNI,
        # certificate) as the URL does. No credentials and no cookies go to such URLs.
        return await self._http.get(url.with_host(address), allow_redirects=False, timeout=timeout,
                                    headers={"Host": url.host_port_subcomponent or address},
                                    server_hostname=url.raw_host if url.scheme == "https" else None)

    def _check_size(self, response: aiohttp.ClientResponse) -> None:
        if response.content_length is not None and response.content_length > self.limits.max_bytes:
            response.release()
            raise Refused(502, f"The provider's file is larger than the {self.limits.max_bytes} bytes "
                          "st-ai accepts.", "file_too_large")


def fetcher_for(upstream: "Upstream") -> SafeFetch:
    """The upstream's SafeFetch; the default rules on its session when none was given."""
    return upstream.files or SafeFetch(upstream.http, UrlGuard())
