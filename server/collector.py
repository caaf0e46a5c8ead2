"""The cyclic garbage collector's settings for a server process, applied once it has started.

CPython's defaults collect the youngest generation whenever tracked objects outnumber the
freed ones by 700. A gateway's requests in flight hold a few hundred objects each, so at
a few dozen requests in flight that count is passed every few requests, although serving a
request leaves almost no cyclic garbage (refcounting frees it); every tenth young
collection promotes the objects of the requests then in flight, and those promotions set
off full collections that walk every object the process holds, its imported modules and
descriptors included. Measured under `scripts/bench.py`'s load (16 requests in flight) that
was about 50 microseconds per request, 7% of its CPU, and a 40 ms pause every thousand
requests or so.

So, once a server has started: what start-up made is frozen (`gc.freeze()`: moved to a
generation the collector never walks; it lives as long as the process anyway), and the
youngest generation is collected after GEN0_THRESHOLD more objects, not 700. The
collector stays on: cycles a request does leave (an exception and the frames of its
traceback) are still found, a few thousand requests later rather than a few.
"""
from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000


def settle_after_start() -> None:
    """Call once, when the server is ready to serve and before it does."""
    gc.collect()  # start-up's own garbage goes, not into the frozen generation
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, older, oldest)
