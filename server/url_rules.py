"""URLs and addresses an operator types (a channel's base URL, the public URL, a gRPC
target), checked where they are given: http(s), a real host, a port in range, nothing
that hides a secret. Each refusal is a ValueError saying what is wrong with the value
(the caller names the option), never repeating a part that may be a secret."""
from __future__ import annotations

import ipaddress
import re
import urllib.parse

from server import ip_forms

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")  # `_` for container and compose service names
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*", re.IGNORECASE)  # no top-level domain looks like this
BLANK = re.compile(r"[\s\x00-\x1f\x7f]")
# grpc target forms other than HOST:PORT (https://grpc.github.io/grpc/core/md_doc_naming.html)
_GRPC_SCHEMES = ("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:")


def check_http_url(url: str, example: str, secrets_hint: str = "") -> urllib.parse.SplitResult:
    """`url` split, if it is an http(s) URL with a valid host and no credentials, query
    or fragment; `secrets_hint` says where those belong instead."""
    if not url or BLANK.search(url):
        raise ValueError(f"{url!r} must be a URL without spaces, e.g. {example}")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not url.lower().startswith(f"{scheme}://"):
        raise ValueError(f"{url!r} must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"the URL must not hold credentials (user:password@){secrets_hint}")
    check_host(parts.hostname or "", url, example)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port <= 65535:
        raise ValueError(f"{url!r} has a port that is not a number from 1 to 65535")
    if parts.netloc.endswith(":"):  # `http://h:/v1`: clients disagree on what an empty port means
        raise ValueError(f"{url!r} has an empty port after ':'; drop the ':' or give a port")
    check_path(parts.path, url)
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"the URL must not have a ?query or #fragment{secrets_hint}")  # not echoed: keys hide there
    return parts


def check_path(path: str, where: str) -> None:
    """A path that means what it says: no `.`/`..` segment (clients and proxies resolve
    them differently) and no escaped slash or dot hiding one."""
    for segment in path.split("/"):
        decoded = segment
        for _ in range(3):  # `%252e` is `%2e` to a proxy that decodes once more
            decoded = urllib.parse.unquote(decoded)
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded or "\\" in segment:
            raise ValueError(f"{where!r} has a path with a '.' or '..' segment, a backslash or an encoded slash or dot; "
                             "write the path plainly")


def check_host(host: str, where: str, example: str) -> None:
    if not host:
        raise ValueError(f"{where!r} has no host, e.g. {example}")
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    # `2130706433`, `0x7f.1`, `0177.0.0.1`: numbers resolvers read as an address (or reject)
    loose = ip_forms.parse_ipv4_loose(host.rstrip("."))
    if loose is not None:
        raise ValueError(f"{where!r} writes the address {loose} in an unusual form; write it as {loose}")
    if _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        raise ValueError(f"{where!r} has a host that is neither an IP address nor a host name")
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"{where!r} has no valid host name") from None
    labels = ascii_host.rstrip(".").split(".")
    if len(ascii_host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{where!r} has no valid host name")


def check_public_url(url: str) -> str:
    """Where clients reach the REST bridge (a path prefix of a reverse proxy is fine)."""
    parts = check_http_url(url, "https://gateway.example.com")
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))


def check_grpc_target(target: str) -> str:
    """HOST:PORT, [IPv6]:PORT, or one of grpc's own forms such as unix:PATH."""
    if not target or BLANK.search(target):
        raise ValueError(f"{target!r} must be HOST:PORT or unix:PATH, without spaces")
    if target.startswith(_GRPC_SCHEMES):
        if target.endswith(":"):
            raise ValueError(f"{target!r} names no address")
        return target
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{target!r} must be HOST:PORT (a port from 1 to 65535) or unix:PATH")
    check_host(host[1:-1] if host.startswith("[") and host.endswith("]") else host, target, "127.0.0.1:50051")
    return target
