"""Where st-ai's log lines go and how they look: text or JSON lines, written by a
thread so that a slow stderr never blocks the event loop. Access lines carry their
fields as a dict (`extra={"fields": ...}`), so both formats render them."""
from __future__ import annotations

import atexit
import datetime as dt
import logging
import logging.handlers
import queue
import sys

import orjson

ACCESS = logging.getLogger("st_ai.access")
FORMATS = ("text", "json")


def _text_value(value: object) -> str:
    if value is None:
        return "-"  # as nginx: every field is always there, so lines line up
    if isinstance(value, bool):
        return "true" if value else "false"  # as in the JSON lines
    text = str(value)
    # one request, one line: quote anything that could split or blur the key=value pairs
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return orjson.dumps(text).decode()
    return text


class TextFormatter(logging.Formatter):
    def __init__(self, tag_pid: bool = False) -> None:
        # `name[pid]:` as syslog writes it: which process of `serve --workers` wrote the line
        name = "%(name)s[%(process)d]" if tag_pid else "%(name)s"
        super().__init__(f"%(asctime)s %(levelname)s {name}: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if not fields:
            return super().formatMessage(record)
        record.message = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage(),
               "pid": record.process}  # which worker of `serve --workers` wrote it
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure(log_format: str, level: str, tag_pid: bool = False) -> None:
    """`tag_pid`: text lines name their process too (JSON lines always carry `pid`)."""
    formatter = JsonFormatter() if log_format == "json" else TextFormatter(tag_pid)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    records: queue.SimpleQueue = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, stream)
    listener.start()
    atexit.register(listener.stop)  # flushes what is queued when the process ends
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(records)]
    root.setLevel(level)


def access_enabled() -> bool:
    return ACCESS.isEnabledFor(logging.INFO)


def access(fields: dict) -> None:
    """One access line; in text its message is the fields as key=value pairs."""
    ACCESS.info("access", extra={"fields": fields})
