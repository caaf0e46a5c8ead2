"""What an operator may set as a token's rate limits and address rules, checked before
anything is stored: one place for the rules, so the CLI and the Admin API refuse the same
input with the same one-line message (like server/channel_rules.py)."""
from __future__ import annotations

import ipaddress

from server.store.tokens import Network, TokenError

MAX_LIMIT = 1_000_000_000  # no operator means more requests or tokens a minute than this
CLEAR = ("none", "unlimited")  # what `token update` takes to remove a limit


def parse_limit(text: str, flag: str, clearable: bool = False) -> int | None:
    """A whole number from 1 to MAX_LIMIT; with `clearable`, "none" (None: no limit)."""
    text = text.strip()
    if clearable and text.lower() in CLEAR:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        hint = " (none: no limit)" if clearable else ""
        raise TokenError(f"{flag} {text!r} is not a whole number from 1 to {MAX_LIMIT}{hint}")
    return int(text)


def parse_allow_ip(text: str, clearable: bool = False, what: str = "--allow-ip") -> tuple[Network, ...] | None:
    """Comma-separated CIDRs (IPv4 or IPv6; a bare address is a /32 or /128), written the
    usual way; with `clearable`, "none" (None: any address). `what` names the input in
    messages ("" when the caller names it, as argparse does)."""
    if clearable and text.strip().lower() in CLEAR:
        return None
    named = f"{what} " if what else ""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise TokenError(f"{named}{text!r} names no address")
    return tuple(dict.fromkeys(_network(item, named) for item in items))


def _network(item: str, named: str) -> Network:
    try:
        return ipaddress.ip_network(item, strict=True)
    except ValueError:
        pass
    try:  # host bits set: say which network was probably meant
        loose = ipaddress.ip_network(item, strict=False)
    except ValueError:
        raise TokenError(f"{named}{item!r} is not an IPv4 or IPv6 address or CIDR "
                         "(e.g. 203.0.113.7, 10.0.0.0/8, 2001:db8::/32)") from None
    raise TokenError(f"{named}{item!r} has bits set after its prefix: write {loose}")
