"""What one request did, as the access log tells it: a small record per call that the
transports open and the relay core fills in (token, model, channel, upstream time).
It knows neither HTTP nor gRPC; outside a call (e.g. the video poller) notes are dropped."""
from __future__ import annotations

import contextvars
import re
import uuid
from dataclasses import asdict, dataclass, fields

# A request id a client may choose: printable, no spaces or quotes (it is echoed into
# headers and log lines), and short.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
MAX_NOTED_CHARS = 128  # a client-chosen model name can be anything; logs keep a bounded part


def request_id(candidate: str | None) -> str:
    """The client's own id when it is a valid one, else a new one."""
    if candidate and _REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


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

    def facts(self) -> dict:
        return {k: v for k, v in asdict(self).items()
                if k not in ("request_id", "rate") and v is not None and v is not False}

    def take(self, facts: dict) -> None:
        """Adopt facts another process (or socket) reported for this call."""
        names = {f.name for f in fields(self)} - {"request_id"}
        for key, value in facts.items():
            if key in names and isinstance(value, (str, int, bool)):
                setattr(self, key, value)


_current: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar("st_ai_call", default=None)


def open_record(rid: str) -> CallRecord:
    """Start recording the calling task's request (and the tasks it starts)."""
    record = CallRecord(rid)
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


def note_channel(channel: str) -> None:
    """The request was routed to `channel` (a video create, sent upstream later)."""
    if (record := _current.get()) is not None:
        record.channel = channel


def note_error(code: str | None, status: int) -> None:
    if (record := _current.get()) is not None:
        record.error_code, record.status = code, status
