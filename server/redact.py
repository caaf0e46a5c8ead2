"""The one scrubber: removes a channel's secrets from any text st-ai got from an
upstream before it reaches a client, the database or a log line.

A channel's secrets are its key (whole, its colon-separated parts such as Kling's
access and secret keys, and any run of WINDOW characters of either, since upstreams
echo keys cut or masked), the base-64 forms of the key, and its base URL
in any form: any URL, `host:port` or (where it is not a short bare word) host on that
host, whatever the scheme, path or case. Credentials st-ai sends that a channel does
not store (Kling's signed JWT) and any `Bearer`/`Basic` value are removed by shape.
Matching ignores case, and text whose percent-, JSON-, HTML- or backslash-escapes
decode to a secret is scrubbed in its decoded form, so encodings do not slip through.
"""
from __future__ import annotations

import base64
import functools
import html
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from server.store.channels import Channel

MASK = "***"
WINDOW = 12         # shortest run of a key's characters that is removed on its own
MIN_SECRET = 4      # a key (part) shorter than this is no secret worth mangling text for
MIN_BARE_HOST = 8   # a dotless host shorter than this (e.g. "kling") is only removed with its port
MAX_SCRUBBED = 64 * 1024  # longer texts are cut first: no error message or log line needs more
DECODE_ROUNDS = 3   # nested encodings (%253A) decoded this many times at most

# Credentials by shape, whoever they belong to: an auth scheme's value, and JWTs (whole or
# any base64url JSON segment of one, which starts with `eyJ`, the encoding of `{"`).
CREDENTIAL_SHAPES = (
    r"\bbearer\s+[^\s\"'<>,;)\]}]+",
    r"\bbasic\s+[A-Za-z0-9+/]{8,}={0,2}",
    r"eyJ[A-Za-z0-9_\-+/=]{6,}(?:\.[A-Za-z0-9_\-+/=]*){0,2}",
)
_URL_LEAD = r"(?:[a-z][a-z0-9+.\-]*:(?://|\\/\\/|%2f%2f)?)?(?:[^\s/@\"'<>]*@)?"
_URL_TAIL = r"(?:(?::|%3a)\d{1,5})?(?:(?:/|\\/|%2f|[?#])[^\s\"'<>()\[\]{},;|]*)?"
_ESCAPES = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|\\(/)")


@dataclass(frozen=True)
class Redactor:
    pattern: re.Pattern[str]

    def scrub(self, text: str) -> str:
        """`text` without any secret this redactor knows, each replaced by MASK."""
        if not text:
            return text
        text = text[:MAX_SCRUBBED]
        decoded = _decoded(text)
        if decoded != text and self.pattern.search(decoded):
            text = decoded  # a secret hides behind an encoding: show the decoded text, scrubbed
        return self._mask(text)

    def _mask(self, text: str) -> str:
        # Matches are found at every position (a lookahead), so overlapping key windows
        # join into one span covering the whole run of the key.
        spans: list[list[int]] = []
        for match in self.pattern.finditer(text):
            start, end = match.start(), match.start() + len(match.group(1))
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            elif end > start:
                spans.append([start, end])
        if not spans:
            return text
        out, last = [], 0
        for start, end in spans:
            out += [text[last:start], MASK]
            last = end
        out.append(text[last:])
        return "".join(out)

    def contains_secret(self, text: str) -> bool:
        return self.scrub(text) != text[:MAX_SCRUBBED]


def _decoded(text: str) -> str:
    for _ in range(DECODE_ROUNDS):
        step = html.unescape(unquote(_ESCAPES.sub(_unescape, text)))
        if step == text:
            break
        text = step
    return text


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1) or match.group(2)
    return chr(int(code, 16)) if code else match.group(3)


def _key_parts(key: str) -> list[str]:
    parts = [key.strip(), *(p.strip() for p in key.split(":"))]
    return [p for p in dict.fromkeys(parts) if len(p) >= MIN_SECRET]


def _key_forms(key: str) -> list[str]:
    forms: list[str] = []
    for part in _key_parts(key):
        if len(part) <= WINDOW:
            forms.append(part)
        else:
            forms += [part[i:i + WINDOW] for i in range(len(part) - WINDOW + 1)]
        raw = part.encode()
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            forms.append(encoded.decode().rstrip("="))
    return [re.escape(f) for f in dict.fromkeys(forms)]


def _url_forms(base_url: str) -> list[str]:
    text = base_url.strip()
    if not text:
        return []
    try:
        parts = urlsplit(text if "://" in text else f"//{text}")
        host, port = parts.hostname, parts.port
    except ValueError:  # not a URL st-ai can use, but it may still be echoed as given
        return [re.escape(text)] if len(text) >= MIN_SECRET else []
    forms = [re.escape(text)]
    if host:
        bare = "." in host or ":" in host or len(host) >= MIN_BARE_HOST
        host_re = re.escape(host)
        if ":" in host:  # IPv6: written in brackets in URLs
            host_re = rf"\[?{host_re}\]?"
        if bare:
            forms.append(_URL_LEAD + host_re + _URL_TAIL)
        if port is not None:
            forms.append(_URL_LEAD + host_re + rf"(?::|%3a){port}" + _URL_TAIL)
    return forms


def _compile(forms: Iterable[str]) -> re.Pattern[str]:
    alternatives = sorted(set(forms), key=len, reverse=True)
    return re.compile(f"(?=({'|'.join(alternatives)}))", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def _redactor(secrets: tuple[tuple[str, str], ...]) -> Redactor:
    forms = list(CREDENTIAL_SHAPES)
    for key, base_url in secrets:
        forms += _key_forms(key) + _url_forms(base_url)
    return Redactor(_compile(forms))


def for_channel(channel: Channel | None) -> Redactor:
    """The scrubber for what one channel's upstream said."""
    return for_channels([channel] if channel is not None else [])


def for_channels(channels: Iterable[Channel]) -> Redactor:
    """The scrubber for every secret of all the given channels (for logs)."""
    return _redactor(tuple(sorted({(c.key or "", c.base_url or "") for c in channels})))


def scrub(text: str, channel: Channel | None) -> str:
    return for_channel(channel).scrub(text)


# -- logs --------------------------------------------------------------------------------

def install_log_scrubber(channels: Callable[[], Iterable[Channel]]) -> Callable[[], None]:
    """Scrub every secret of the current channels from every log record made in this
    process, whatever logger or handler it goes to: the formatted message, the
    traceback and stack. A record factory rather than a handler filter, so handlers
    added later (an access log, JSON output) are covered too. (`extra=` fields are set
    by logging after the factory: they must hold st-ai's own values, as the errors
    from upstream_errors are.) Returns the undo."""
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            _scrub_record(record, for_channels(channels()))
        except Exception:  # a log line must never fail the code that logs it
            record.msg, record.args = "(log line withheld: it could not be scrubbed)", ()
        return record

    logging.setLogRecordFactory(factory)

    def undo() -> None:
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(previous)
    return undo


def _scrub_record(record: logging.LogRecord, redactor: Redactor) -> None:
    message = record.getMessage()
    clean = redactor.scrub(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[0] is not None:
        # Formatted now and the exception dropped, so no formatter renders its raw text.
        record.exc_text = redactor.scrub(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redactor.scrub(record.stack_info)
