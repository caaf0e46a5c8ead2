"""Whether st-ai may fetch a URL that someone else chose (a provider's finished video
today; a client's image URL or a webhook later): http(s) only, and after DNS resolution
only public addresses, unless an address is on the same network as the channel's own
base URL (a provider on the operator's LAN, or a local fake on 127.0.0.1).

`UrlGuard.check` answers with the address to connect to. Callers connect to exactly that
address (see safe_fetch.py), so a name that resolves to something else a moment later
(DNS rebinding) changes nothing. The resolver is injected, so tests stub it."""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from server import ip_forms
from server.errors import GatewayError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
# Named in a refusal only when known: an arbitrary "scheme" may be text an upstream chose.
KNOWN_SCHEMES = frozenset({"ftp", "ftps", "file", "data", "gopher", "ldap", "dict", "sftp", "ssh", "smb",
                           "tftp", "ws", "wss", "javascript", "blob", "jar", "netdoc", "s3", "gs"})

# Cloud instance metadata services: never fetched, whatever network the channel is on.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
    "169.254.170.2",     # AWS ECS task metadata
    "169.254.169.253",   # AWS VPC DNS
    "169.254.169.123",   # AWS time sync
    "fd00:ec2::254",     # AWS over IPv6
    "fd00:ec2::253",
    "fd00:ec2::123",
    "100.100.100.200",   # Alibaba Cloud
))
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal", "metadata.tencentyun.com"})

# Special-purpose blocks, each with the network name the channel exception compares:
# a URL may reach a block only when the channel's own base URL resolves into it.
_BLOCKS: tuple[tuple[str, str, str], ...] = (
    ("127.0.0.0/8", "loopback", "loopback"),
    ("::1/128", "loopback", "loopback"),
    ("10.0.0.0/8", "private", "10.0.0.0/8"),
    ("172.16.0.0/12", "private", "172.16.0.0/12"),
    ("192.168.0.0/16", "private", "192.168.0.0/16"),
    ("fc00::/7", "private (unique local)", "fc00::/7"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)", "100.64.0.0/10"),
    ("169.254.0.0/16", "link-local", "169.254.0.0/16"),
    ("fe80::/10", "link-local", "fe80::/10"),
)
_NETWORKS = tuple((ipaddress.ip_network(block), kind, network) for block, kind, network in _BLOCKS)
# Special-purpose blocks Python's is_global calls global in some versions.
_RESERVED = tuple(ipaddress.ip_network(block) for block in ("192.0.0.0/24", "192.88.99.0/24", "2001::/23"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class Refused(GatewayError):
    """A URL or file st-ai will not fetch. Permanent: asking again changes nothing."""


@dataclass(frozen=True)
class Verdict:
    kind: str                  # e.g. "loopback", "private", "cloud metadata"
    network: str | None        # what the channel exception compares; None: never allowed


@dataclass(frozen=True)
class Target:
    """A checked URL and the one address it may be fetched from."""
    url: URL
    address: str


def unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64, IPv4-compatible), or ip."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def classify(ip: IPAddress) -> Verdict | None:
    """None for a public unicast address; otherwise what kind of address it is."""
    ip = unwrap(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])  # fe80::1%eth0 is still fe80::1
    if ip in METADATA_ADDRESSES:
        return Verdict("cloud metadata", None)
    for block, kind, network in _NETWORKS:
        if ip in block:
            return Verdict(kind, network)
    if ip.is_unspecified:
        return Verdict("unspecified", None)
    if ip.is_multicast:
        return Verdict("multicast", None)
    if (ip.is_reserved or not ip.is_global or getattr(ip, "is_site_local", False)
            or any(ip in block for block in _RESERVED)):
        return Verdict("reserved", None)
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names without DNS, in any spelling inet_aton or IPv6 takes
    (`127.1`, `2130706433`, `[::ffff:10.0.0.1]`, ...)."""
    return ip_forms.parse_literal(host)


def refused(message: str) -> Refused:
    return Refused(502, message, "unsafe_url")


class UrlGuard:
    def __init__(self, resolver: AbstractResolver | None = None, timeout: float = 15.0) -> None:
        self._resolver = resolver  # None: the system's, via the loop's getaddrinfo (made on first use)
        self._timeout = timeout

    async def check(self, url: str | URL, base_url: str | None) -> Target:
        """The address `url` may be fetched from, or Refused. `base_url` is the channel's."""
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError):
            raise refused("The URL the provider returned is not a valid URL.") from None
        scheme = parsed.scheme.lower()
        if scheme not in SCHEMES:
            shown = f"the '{scheme}' scheme" if scheme in KNOWN_SCHEMES else "a scheme other than http(s)"
            raise refused(f"The URL the provider returned uses {shown}; st-ai fetches only http and https URLs.")
        host = (parsed.raw_host or "").rstrip(".").lower()
        if not host or parsed.port is None:
            raise refused("The URL the provider returned names no host.")
        if host in METADATA_NAMES:
            raise refused("The URL the provider returned points to a cloud metadata service, "
                          "which st-ai never fetches.")
        addresses = await self._addresses(host, parsed.port)
        allowed = await self._networks(base_url)
        for ip in addresses:
            verdict = classify(ip)
            if verdict is not None and (verdict.network is None or verdict.network not in allowed):
                raise refused(f"The URL the provider returned points to a {verdict.kind} address, "
                              "which st-ai does not fetch from a provider.")
        return Target(parsed, str(addresses[0]))

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """What `host` resolves to (a literal names itself), through this guard's resolver."""
        return await self._addresses(host, port)

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        literal = literal_address(host)
        if literal is not None:
            return [literal]
        if self._resolver is None:
            self._resolver = aiohttp.ThreadedResolver()
        try:
            answers = await asyncio.wait_for(self._resolver.resolve(host, port, family=socket.AF_UNSPEC),
                                             self._timeout)
        except (OSError, asyncio.TimeoutError):
            # DNS may be down for a moment: worth another try later
            raise GatewayError(502, "The host of the provider's file URL could not be resolved.",
                               "upstream_unreachable", retryable=True) from None
        addresses = [literal_address(answer["host"]) for answer in answers]
        if not addresses or None in addresses:
            raise refused("The host of the URL the provider returned resolves to no usable address.")
        return addresses  # type: ignore[return-value]

    async def _networks(self, base_url: str | None) -> set[str]:
        """The special networks the channel's own base URL is on."""
        if not base_url:
            return set()
        try:
            base = URL(base_url)
            host = (base.raw_host or "").rstrip(".").lower()
            addresses = await self._addresses(host, base.port or 443) if host else []
        except (ValueError, TypeError, GatewayError):
            return set()
        verdicts = [classify(ip) for ip in addresses]
        return {v.network for v in verdicts if v is not None and v.network is not None}
