"""The order of a graceful shutdown (SIGTERM, SIGINT, or SIGHUP) for the fronts a process
runs, `st-ai serve`'s two or `st-ai grpc`'s and `st-ai bridge`'s one, within one grace
period shared by both:

1. readiness goes false (gRPC health NOT_SERVING, REST /readyz 503);
2. new requests are refused with a 503 `shutting_down` (server/draining.py);
3. the requests in flight, streams included, may finish for up to the grace period, or
   until a second SIGTERM or SIGINT says the operator will not wait;
4. what still runs then is cut: it ends with a 503 `shutting_down` (a stream: an error event
   after what it sent), billed for what it sent and booked 503 `shutting_down`
   (server/draining.py `cancelled_status`);
5. the fronts close (the REST listener, then the gRPC server, whose health watches end).

Settlements, the video poller and the webhook sender are stopped after this, by the core's
own clean-up (server/gateway.py `open_core`), once no request can produce more work."""
from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field

from aiohttp import web
from grpc import aio as grpc_aio
from grpc_health.v1 import health as grpc_health

from server.draining import Drain

log = logging.getLogger("st_ai")

# After a cut: how long the requests it ended may take to send their end.
CUT_ALLOWANCE = 5.0
# Closing a front whose requests are all done: time for their last bytes to go out.
CLOSE_ALLOWANCE = 1.0


@dataclass
class StopSignals:
    """What the stop signals asked for: the first (SIGTERM, SIGINT or SIGHUP) a graceful
    shutdown; a SIGTERM or SIGINT after it, the drain's end now. A SIGHUP never hurries:
    it is a terminal closing, not an operator insisting."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    hurry: asyncio.Event = field(default_factory=asyncio.Event)

    def received(self, signum: int) -> None:
        if not self.stop.is_set():
            self.stop.set()
        elif signum != signal.SIGHUP and not self.hurry.is_set():
            log.warning("shutting down: a second signal; what still runs is cut now")
            self.hurry.set()


@dataclass
class Fronts:
    drain: Drain
    grpc: grpc_aio.Server | None = None
    health: grpc_health.aio.HealthServicer | None = None
    bridge: web.BaseRunner | None = None  # made with shutdown_timeout=CLOSE_ALLOWANCE


async def shut_down(fronts: Fronts, grace: float, hurry: asyncio.Event | None = None) -> None:
    """`hurry`: set when the drain must end at once (StopSignals)."""
    drain = fronts.drain
    if fronts.health is not None:
        await fronts.health.enter_graceful_shutdown()
    drain.begin()
    # Counts are of calls: under `serve` a REST request and the gRPC call behind it are two.
    if drain.in_flight:
        log.info("shutting down: waiting up to %gs for %d calls in flight", grace, drain.in_flight)
    if not await drain.settle(grace, hurry):
        log.warning("shutting down: %d calls still running %s are cut short", drain.cut(),
                    "at a second signal" if hurry is not None and hurry.is_set() else f"after the {grace:g}s grace")
        if not await drain.settle(CUT_ALLOWANCE):
            log.warning("shutting down: %d calls did not end when cut; closing their connections",
                        drain.in_flight)
    if fronts.bridge is not None:
        await fronts.bridge.cleanup()
    if fronts.grpc is not None:
        await fronts.grpc.stop(CLOSE_ALLOWANCE)
