"""IP addresses in every spelling resolvers accept, reduced to one value.

`inet_aton` (and so curl, browsers and most HTTP clients) reads `127.1`, `2130706433`,
`0x7f000001` and `0177.0.0.1` as 127.0.0.1, and IPv6 has expanded, compressed,
mixed-case and IPv4-mapped forms. The scrubber needs them to recognise a channel's host
however an upstream echoes it; the operator-input rules need them to refuse a host that
is not written the one canonical way."""
from __future__ import annotations

import ipaddress
import re

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_PART = re.compile(r"0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*", re.IGNORECASE)


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """`text` read the way inet_aton reads it (1 to 4 parts, each decimal, 0x-hex or
    0-octal; the last part fills the remaining bytes), or None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_PART.fullmatch(p) for p in parts):
        return None
    values = []
    for part in parts:
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        else:
            values.append(int(part, 8) if len(part) > 1 and part[0] == "0" else int(part))
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for i, value in enumerate(leading):
        number += value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def parse_literal(text: str) -> Address | None:
    """Any spelling of an IPv4 or IPv6 address (brackets allowed), as written: an IPv6
    form stays IPv6."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return parse_ipv4_loose(text)


def parse(text: str) -> Address | None:
    """Any spelling of an IPv4 or IPv6 address, reduced by `canonical`."""
    address = parse_literal(text)
    return canonical(address) if address is not None else None


def canonical(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address it maps."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
