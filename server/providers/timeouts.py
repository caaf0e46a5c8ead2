"""The aiohttp timeout of one upstream call: the channel's connect limit, inside the
seconds the attempt loop gave the call (its first-byte budget, or what remains of the
request's deadline). Every provider builds its ClientTimeout here."""
from __future__ import annotations

import aiohttp

from server.store.channels import Channel

FALLBACK_TOTAL = 600.0  # a call made outside the attempt loop with no budget of its own


def client_timeout(channel: Channel, budget: float | None) -> aiohttp.ClientTimeout:
    total = budget or channel.timeouts.total or FALLBACK_TOTAL
    connect = channel.timeouts.connect
    return aiohttp.ClientTimeout(total=total, sock_connect=min(connect, total) if connect else None)
