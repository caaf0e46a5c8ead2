"""Where a client may ask st-ai to POST its webhook (a create's `callback_url`): http(s)
only, and never to a private, loopback, link-local or cloud metadata address (the rules
of server/url_guard.py), unless the operator let the host through with
`st-ai serve --allow-callback-host`. The check runs at create (a 400 naming the field) and
again before every delivery, which connects to the very address just checked, so a name
that changes its answer in between reaches no internal address. URLs the operator sets on
a token are trusted and not checked here."""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from yarl import URL

from server.errors import invalid_request
from server.url_guard import METADATA_NAMES, SCHEMES, Refused, UrlGuard, classify

MAX_URL_CHARS = 2048


@dataclass(frozen=True)
class Pinned:
    """A checked URL and the address to connect to (None: resolve it as usual)."""
    url: URL
    address: str | None


class CallbackRules:
    def __init__(self, guard: UrlGuard, allowed_hosts: tuple[str, ...] = ()) -> None:
        self._guard = guard
        self._allowed = frozenset(h.strip().lower().rstrip(".").strip("[]") for h in allowed_hosts if h.strip())

    def parse(self, url: object) -> URL:
        """The URL's form alone (no DNS): a 400 naming `callback_url` when it is not one."""
        if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
            raise invalid_request(f"'callback_url' must be an http(s) URL of at most {MAX_URL_CHARS} characters.",
                                  param="callback_url")
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            parsed = None
        if parsed is None or parsed.scheme.lower() not in SCHEMES or not parsed.raw_host or parsed.user:
            raise invalid_request("'callback_url' must be an http(s) URL with a host, e.g. "
                                  "https://example.com/hooks/st-ai.", param="callback_url")
        return parsed

    async def check(self, url: str) -> Pinned:
        """The URL and the one address a delivery may connect to; a 400 when it is refused."""
        parsed = self.parse(url)
        host = parsed.raw_host.rstrip(".").lower().strip("[]")
        if host in self._allowed:
            return Pinned(parsed, None)
        if host in METADATA_NAMES:
            raise _refused("a cloud metadata service")
        try:
            addresses = await self._guard.addresses(host, parsed.port or 443)
        except Refused:
            raise _refused("no usable address") from None
        except Exception:
            raise invalid_request("'callback_url' names a host that could not be resolved.",
                                  param="callback_url", code="invalid_callback_url") from None
        for ip in addresses:
            verdict = classify(ip)
            if verdict is not None:
                raise _refused(f"a {verdict.kind} address")
        return Pinned(parsed, str(addresses[0]))


def _refused(what: str):
    return invalid_request(f"'callback_url' points to {what}, which st-ai does not send webhooks to.",
                           param="callback_url", code="invalid_callback_url")


def shown(url: str) -> str:
    """The URL for a log line: scheme and host only; its path, query or user info may hold
    a token (many receivers put one there)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a URL that could not be read)"
    return f"{parts.scheme}://{host}{port}" + ("/…" if parts.path.strip("/") or parts.query else "")
