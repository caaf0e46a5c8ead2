"""The HTTP client's address, which the bridge hands to the gRPC side in private metadata
(server/client_address.py says who believes it).

It is the connection's peer. Only when the operator names trusted reverse proxies
(`--trusted-proxy`) and the peer is one of them is `X-Forwarded-For` read: from the right,
each hop a trusted proxy appended is skipped, and the first address no trusted proxy
vouches for is the client. Hops further left were written by that client and prove
nothing. Without the option, client-sent forwarding headers are never read."""
from __future__ import annotations

from aiohttp import web

from server import client_address
from server.store.tokens import Network

TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)


def of_request(request: web.BaseRequest, trusted: tuple[Network, ...]) -> str | None:
    if not trusted:
        return client_address.written(request.remote)
    peer = client_address.parse(request.remote)
    if peer is None or not client_address.within(peer, trusted):
        return str(peer) if peer is not None else None
    hops = [hop.strip() for header in request.headers.getall("X-Forwarded-For", ()) for hop in header.split(",")]
    nearest = peer
    for hop in reversed(hops):
        address = client_address.parse(hop)
        if address is None:  # garbage (or "unknown"): the last proxy that wrote a real hop is all we know
            break
        nearest = address
        if not client_address.within(address, trusted):
            break
    return str(nearest)


def metadata(request: web.BaseRequest) -> tuple[tuple[str, str], ...]:
    address = of_request(request, request.app.get(TRUSTED_PROXIES, ()))
    return ((client_address.METADATA_KEY, address),) if address is not None else ()
