"""The gateway's Prometheus metrics: plain functions the core and the gRPC edge call when
something happened, and `exposition()` for whoever serves GET /metrics.

Labels are only operator-defined names (models that routed to a channel, channel names)
and st-ai's own status codes; a client's string never becomes a label (an unknown model
is `-`), so the number of series stays bounded. Nothing here knows HTTP or protobuf.

Several processes sharing one port (`st-ai serve --workers N`) each write their numbers
to files in `PROMETHEUS_MULTIPROC_DIR` (prometheus-client's multiprocess mode, chosen by
that variable before this module is imported; the parent sets it for its workers,
server/metrics_folder.py); any process's /metrics then adds them up.
What is counted in the database at scrape time (server/metrics_scrape.py) is handed to
`exposition` instead: the scraping process's count is already everyone's.
"""
from __future__ import annotations

import asyncio
import bisect
import math
import os
import re
from typing import Callable, Iterable

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest)
from prometheus_client import multiprocess
from prometheus_client.metrics_core import Metric

UNROUTED = "-"  # the model label of a request no channel served (its name is the client's)
OTHER = "other"  # an error code beyond the bounded set this process has labelled
MAX_ERROR_CODES = 64
_ERROR_CODE = re.compile(r"^[a-z0-9_]{1,48}$")

# Latencies from a fraction of a millisecond (the gateway's own time) to minutes (video,
# long streams).
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

REQUESTS = Counter("st_ai_requests", "Client requests answered, by model, channel, status and error code.",
                   ("model", "channel", "status", "code"))
UPSTREAM_ATTEMPTS = Counter("st_ai_upstream_attempts", "Upstream calls (attempts), by channel, status and code.",
                            ("channel", "status", "code"))
UPSTREAM_SECONDS = Histogram("st_ai_upstream_attempt_seconds", "How long each upstream attempt took.",
                             ("channel",), buckets=_SECONDS)
TTFT_SECONDS = Histogram("st_ai_time_to_first_token_seconds",
                         "From a streamed request's arrival to its first event sent.", ("model", "channel"),
                         buckets=_SECONDS)
OVERHEAD_SECONDS = Histogram("st_ai_gateway_overhead_seconds",
                             "The gateway's own time per request: its whole time minus the upstream's, "
                             "measured at the front the request came in by (rest, grpc).",
                             ("front", "stream"), buckets=_OVERHEAD)
STREAMS_IN_FLIGHT = Gauge("st_ai_streams_in_flight", "Streamed answers being sent now.",
                          multiprocess_mode="livesum")
VIDEO_TASKS = Counter("st_ai_video_tasks", "Video tasks reaching a state (queued, completed, failed, ...).",
                      ("state",))
# One series per live process in multiprocess mode (a pid label): a leak shows in the
# worker that has it, and a dead worker's series goes with it.
ASYNCIO_TASKS = Gauge("st_ai_asyncio_tasks", "asyncio tasks of this process, pending and running.",
                      multiprocess_mode="liveall")
SAMPLE_EVERY = 5.0  # seconds between samples of a process's own gauges, for scrapes other processes answer
LEDGER_WRITE_SECONDS = Histogram("st_ai_ledger_write_seconds",
                                 "One group commit of settlements to the ledger.", buckets=_SECONDS)
LEDGER_WRITE_ROWS = Counter("st_ai_ledger_rows_written", "Settlements committed to the ledger.")


class _ErrorCodes:
    """Error codes as labels: st-ai's own snake_case codes, at most MAX_ERROR_CODES of them
    per process (an upstream may invent codes), the rest counted as `other`."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def label(self, code: str | None) -> str:
        if not code:
            return ""
        if code in self._seen:
            return code
        if len(self._seen) >= MAX_ERROR_CODES or not _ERROR_CODE.match(code):
            return OTHER
        self._seen.add(code)
        return code


_codes = _ErrorCodes()


# Counting goes to the children's values directly, each child's made once per label values
# and kept: prometheus-client's `labels()` checks and locks on every call, and its `inc` and
# `observe` check on every call what a labelled child settled when it was made (its labels,
# the amount's sign) and walk the buckets one by one; with its lock, that was a few per cent
# of a whole answer's instructions. The values are the library's own
# (in-process, or its multiprocess files), so scrapes read them as before; a child whose
# parts are not where they are looked for is counted through the public API instead
# (tests/test_metrics_counting.py checks both give the same exposition).
_counts: dict[tuple, Callable[[float], None]] = {}
_observers: dict[tuple, Callable[[float], None]] = {}


def _count(metric: Counter, *labels: str) -> Callable[[float], None]:
    """`inc(amount)` of `metric`'s child for `labels` (amount ≥ 0, as every caller's is)."""
    key = (metric, labels)
    inc = _counts.get(key)
    if inc is None:
        child = metric.labels(*labels) if labels else metric
        value = getattr(child, "_value", None)
        inc = _counts[key] = value.inc if hasattr(value, "inc") else child.inc
    return inc


def _observer(metric: Histogram, *labels: str) -> Callable[[float], None]:
    """`observe(seconds)` of `metric`'s child for `labels`."""
    key = (metric, labels)
    observe = _observers.get(key)
    if observe is None:
        child = metric.labels(*labels) if labels else metric
        observe = _observers[key] = _fast_observe(child) or child.observe
    return observe


def _fast_observe(child: Histogram) -> Callable[[float], None] | None:
    total, buckets, bounds = (getattr(child, name, None) for name in ("_sum", "_buckets", "_upper_bounds"))
    if not (hasattr(total, "inc") and isinstance(buckets, list) and isinstance(bounds, list)
            and len(buckets) == len(bounds) and bounds and bounds[-1] == math.inf):
        return None
    add, ones = total.inc, [bucket.inc for bucket in buckets]

    def observe(amount: float) -> None:
        add(amount)
        ones[bisect.bisect_left(bounds, amount)](1)  # the first bucket whose bound is ≥ amount
    return observe


# Each function's own cache, by its arguments as given (a label's value once bounded: a
# client's model name is never a key), so a repeated call skips building its labels.
_attempts: dict[tuple, tuple[Callable[[float], None], Callable[[float], None]]] = {}
_requests: dict[tuple, Callable[[float], None]] = {}
_overheads: dict[tuple, Callable[[float], None]] = {}


def attempt(channel: str, status: int, code: str | None, seconds: float) -> None:
    """One upstream call on `channel` ended (server/billing/admission.py Ticket.attempted)."""
    key = (channel, status, _codes.label(code))
    pair = _attempts.get(key)
    if pair is None:
        pair = _attempts[key] = (_count(UPSTREAM_ATTEMPTS, channel, str(status), key[2]),
                                 _observer(UPSTREAM_SECONDS, channel))
    pair[0](1)
    pair[1](seconds)


def request(model: str | None, channel: str | None, status: int, code: str | None) -> None:
    """A client request ended: counted once, where it was answered (the gRPC service, or
    the REST bridge for a request it refused before calling any)."""
    key = (model if (model and channel) else UNROUTED, channel or "", status, _codes.label(code))
    inc = _requests.get(key)
    if inc is None:
        inc = _requests[key] = _count(REQUESTS, key[0], key[1], str(status), key[3])
    inc(1)


def overhead(front: str, stream: bool, seconds: float, upstream_seconds: float) -> None:
    """A request that came in by `front` ("rest" or "grpc") took `seconds` there, of which
    `upstream_seconds` waiting on upstreams: the rest was st-ai's own."""
    key = (front, stream)
    observe = _overheads.get(key)
    if observe is None:
        observe = _overheads[key] = _observer(OVERHEAD_SECONDS, front, "true" if stream else "false")
    observe(max(0.0, seconds - upstream_seconds))


def first_token(model: str | None, channel: str | None, seconds: float) -> None:
    _observer(TTFT_SECONDS, model if (model and channel) else UNROUTED, channel or "")(seconds)


def stream_started() -> None:
    STREAMS_IN_FLIGHT.inc()


def stream_ended() -> None:
    STREAMS_IN_FLIGHT.dec()


def video_task(state: str) -> None:
    """A video task reached `state` (one of st-ai's own task states)."""
    _count(VIDEO_TASKS, state)(1)


def ledger_write(seconds: float, rows: int) -> None:
    _observer(LEDGER_WRITE_SECONDS)(seconds)
    _count(LEDGER_WRITE_ROWS)(rows)


def sample_process() -> None:
    """This process's own gauges, as of now (on its event loop)."""
    ASYNCIO_TASKS.set(len(asyncio.all_tasks()))


async def sample_every(seconds: float = SAMPLE_EVERY) -> None:
    """Keeps this process's own gauges fresh for scrapes another process answers
    (multiprocess mode); a scrape this process answers samples first anyway."""
    while True:
        sample_process()
        await asyncio.sleep(seconds)


def process_ended(pid: int | None = None) -> None:
    """In multiprocess mode, when a process ends (this one at exit, or a worker its parent
    saw die): its live gauges (streams in flight, asyncio tasks) stop counting; its
    counters and histograms stay in the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid() if pid is None else pid)


class _Counted:
    """Families counted at scrape time, offered as a collector."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition(counted: Iterable[Metric] = ()) -> tuple[bytes, str]:
    """The text a scrape gets, and its content type: every process's numbers in
    multiprocess mode, this process's otherwise, then the families `counted` for this
    scrape (whole already: never added up across processes)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    extra = CollectorRegistry()
    extra.register(_Counted(counted))
    return text + generate_latest(extra), CONTENT_TYPE_LATEST
