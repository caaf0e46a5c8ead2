"""Who is calling: the client's IP address as a transport saw it, and the token's
address rule (`--allow-ip`) applied to it.

Over gRPC the address is the peer's (`ipv4:1.2.3.4:5`, `ipv6:[::1]:5`). A call from the
REST bridge carries the HTTP client's address in the private metadata `st-ai-client-address`;
it is believed only from a trusted bridge: the private Unix socket of `st-ai serve`, or a
peer address the operator named with `st-ai grpc --trusted-bridge`. Anyone else sending it
is ignored (their own peer address is used), so a client cannot choose its address."""
from __future__ import annotations

import functools
import ipaddress

from server import ip_forms
from server.errors import GatewayError
from server.store.tokens import Network, Token

METADATA_KEY = "st-ai-client-address"


# Parsing an address costs more than the rest of a request's address handling; the same
# few clients call again and again.
@functools.lru_cache(maxsize=4096)
def parse(text: str | None) -> ip_forms.Address | None:
    """An address in its usual form (IPv4-mapped IPv6 reduced to IPv4), or None."""
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    return ip_forms.canonical(address)


@functools.lru_cache(maxsize=4096)
def written(text: str | None) -> str | None:
    """`parse(text)` in its usual written form, or None (an address object writes itself
    out in Python, on every request otherwise)."""
    address = parse(text)
    return str(address) if address is not None else None


def from_peer(peer: str | None) -> ip_forms.Address | None:
    """The address of a grpc peer string; None for a Unix socket or anything else."""
    kind, _, rest = (peer or "").partition(":")
    if kind == "ipv4":
        return parse(rest.rpartition(":")[0])
    if kind == "ipv6":
        host = rest.rpartition(":")[0]
        return parse(host[1:-1] if host.startswith("[") else host)
    return None


def within(address: ip_forms.Address | None, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in networks)


def of_call(peer: str | None, claimed: str | None, trusted_bridges: tuple[Network, ...]) -> str | None:
    """The client's address of a gRPC call: the one a trusted bridge claims for its HTTP
    client, else the peer's own."""
    own = from_peer(peer)
    bridged = (peer or "").startswith("unix:") or within(own, trusted_bridges)
    if bridged and (address := written(claimed)) is not None:
        return address
    return str(own) if own is not None else None


def ip_not_allowed() -> GatewayError:
    return GatewayError(403, "This API key may not be used from your IP address.", "ip_not_allowed",
                        type="permission_error")


def check(token: Token, address: str | None) -> None:
    """403 `ip_not_allowed` when the token has address rules and the client is outside
    them (an unknown address is outside every rule)."""
    if token.allow_ip is not None and not within(parse(address), token.allow_ip):
        raise ip_not_allowed()
