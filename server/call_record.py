"""What one request did, as the access log tells it: a small record per call that the
transports open and the relay core fills in (token, model, channel, upstream time).
It knows neither HTTP nor gRPC; outside a call (e.g. the video poller) notes are dropped."""
from __future__ import annotations

import contextvars
import operator
import os
import re
import time
from dataclasses import dataclass, fields

# A request id a client may choose: printable, no spaces or quotes (it is echoed into
# headers and log lines), and short.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
MAX_NOTED_CHARS = 128  # a client-chosen model name can be anything; logs keep a bounded part


def request_id(candidate: str | None) -> str:
    """The client's own id when it is a valid one, else a new one."""
    if candidate and _REQUEST_ID.match(candidate):
        return candidate
    try:
        return _FRESH_IDS.pop()
    except IndexError:
        return _refill()


# New ids come from the system's random source as a uuid4's do (unguessable), read for
# many at once: os.urandom lets go of the GIL for its system call, and a request's thread
# that lets go of it waits for whichever thread took it (the database's) before going on.
_IDS_PER_READ = 256
_FRESH_IDS: list[str] = []


def _refill() -> str:
    block = os.urandom(16 * _IDS_PER_READ).hex()
    _FRESH_IDS.extend(block[i:i + 32] for i in range(32, len(block), 32))  # list ops: atomic under the GIL
    return block[:32]


# a forked worker must not hand out the ids its parent still holds
os.register_at_fork(after_in_child=_FRESH_IDS.clear)


@dataclass
class CallRecord:
    """Facts only the server side knows; the transport adds status, latency and bytes."""
    request_id: str
    token: str | None = None
    model: str | None = None
    channel: str | None = None
    upstream_ms: int | None = None
    stream: bool = False
    error_code: str | None = None
    status: int | None = None  # the HTTP-equivalent status of an error, when one was raised
    client_address: str | None = None  # the client's IP address, as the transport saw it
    rate: object | None = None  # a limited token's figures, for its headers (server/billing/limits.py)
    started: float = 0.0  # time.monotonic() when the call arrived, for Server-Timing and metrics
    upstream_seconds: float = 0.0  # upstream_ms unrounded: the gateway's own time is a fraction of a ms
    open_upstream_seconds: float = 0.0  # a stream's winning attempt so far: time to its first event
    span: object | None = None  # the request's trace span (server/tracing.py), when tracing

    def facts(self) -> dict:
        return {name: value for name in _FACTS if (value := getattr(self, name)) is not None and value is not False}

    def take(self, facts: dict) -> None:
        """Adopt facts another process (or socket) reported for this call."""
        for key, value in facts.items():
            if key in _FACT_SET and isinstance(value, (str, int, bool)):
                setattr(self, key, value)

    def adopt(self, other: "CallRecord") -> None:
        """Adopt the facts of the same process's record of this call (`take` of its `facts`,
        without the dict between them)."""
        for name, value in zip(_FACTS, _fact_values(other)):
            if value is not None and value is not False:
                setattr(self, name, value)


_NOT_FACTS = ("request_id", "rate", "started", "upstream_seconds", "open_upstream_seconds", "span")
_FACTS = tuple(f.name for f in fields(CallRecord) if f.name not in _NOT_FACTS)
_FACT_SET = frozenset(_FACTS)
_fact_values = operator.attrgetter(*_FACTS)
_current: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar("st_ai_call", default=None)


def open_record(rid: str) -> CallRecord:
    """Start recording the calling task's request (and the tasks it starts)."""
    record = CallRecord(rid, started=time.monotonic())
    _current.set(record)
    return record


def current() -> CallRecord | None:
    return _current.get()


def note_token(name: str) -> None:
    if (record := _current.get()) is not None:
        record.token = name


def note_model(model: object) -> None:
    if (record := _current.get()) is not None and isinstance(model, str):
        record.model = model[:MAX_NOTED_CHARS]


def note_stream() -> None:
    if (record := _current.get()) is not None:
        record.stream = True


def note_attempt(channel: str, seconds: float) -> None:
    """An upstream call on `channel` took `seconds`; with fallback, the times add up
    and the last channel tried is the one named."""
    if (record := _current.get()) is not None:
        record.channel = channel
        record.upstream_ms = (record.upstream_ms or 0) + int(seconds * 1000)
        record.upstream_seconds += seconds
        record.open_upstream_seconds = 0.0


def note_first_byte(channel: str, seconds: float) -> None:
    """A stream's winning attempt on `channel` sent its first event after `seconds`; its
    whole time is noted (note_attempt) when the stream ends."""
    if (record := _current.get()) is not None:
        record.channel = channel
        record.open_upstream_seconds = seconds


def note_channel(channel: str) -> None:
    """The request was routed to `channel` (a video create, sent upstream later)."""
    if (record := _current.get()) is not None:
        record.channel = channel


def upstream_so_far(record: CallRecord) -> float:
    """Seconds the call has spent upstream: finished attempts, and an open stream's wait
    for its first event."""
    return record.upstream_seconds + record.open_upstream_seconds


def note_error(code: str | None, status: int) -> None:
    if (record := _current.get()) is not None:
        record.error_code, record.status = code, status
