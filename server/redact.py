"""The one scrubber: removes a channel's secrets from any text st-ai got from an
upstream before it reaches a client, the database or a log line.

A channel's secrets are its key (whole, its colon-separated parts such as Kling's
access and secret keys, their base-64 forms, and any run of WINDOW characters of
these, since upstreams echo keys cut or masked) and its base URL in any form: any URL
on its host whatever the scheme, user, port or path, `host:port`, and the bare host
where it is not a short dotless word. Credentials st-ai sends that a channel does
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
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from server import ip_forms
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
# What may stand before a host in a URL (scheme, `//`, user info, escapes) and after it
# (port, path, query), so a URL on a channel's host is masked whole.
_URL_LEFT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-:/\\@%_~")
_URL_TAIL = re.compile(r"(?:(?::|%3a)\d{1,5})?(?:(?:/|\\/|%2f|[?#])[^\s\"'<>()\[\]{},;|]*)?", re.IGNORECASE)
_RUN = re.compile(rf"[^\s\"'<>()\[\]{{}},;|]{{{WINDOW},}}")  # where a key window can be
_ESCAPES = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|\\(/)")
# Anything that may be an IP address in some spelling (see ip_forms): an IPv6 form (two
# colons at least, brackets optional) or an inet_aton form (1 to 4 dotted decimal, 0x-hex
# or octal parts). Each candidate is parsed and compared, so one regex covers every spelling.
_IP_CANDIDATE = re.compile(
    r"\[?(?<![\w:.])(?=[0-9a-f.]*:[0-9a-f.]*:)[0-9a-f:.]+\]?"
    r"|(?<![\w.])(?:0x[0-9a-f]*|\d+)(?:\.(?:0x[0-9a-f]*|\d+)){0,3}(?!\.?\w)",
    re.IGNORECASE)


@dataclass(frozen=True)
class Redactor:
    pattern: re.Pattern[str]   # URLs on the channels' hosts, credential shapes, short key parts
    windows: frozenset[str]    # every WINDOW-character run of the keys and their base-64, lower case
    ips: frozenset[ip_forms.Address] = frozenset()  # hosts that are IP addresses, canonical

    def scrub(self, text: str) -> str:
        """`text` without any secret this redactor knows, each replaced by MASK."""
        if not text:
            return text
        text = text[:MAX_SCRUBBED]
        decoded = _decoded(text)
        if decoded != text and self._spans(decoded):
            text = decoded  # a secret hides behind an encoding: show the decoded text, scrubbed
        spans = self._spans(text)
        if not spans:
            return text
        out, last = [], 0
        for start, end in spans:
            out += [text[last:start], MASK]
            last = end
        out.append(text[last:])
        return "".join(out)

    def contains_secret(self, text: str) -> bool:
        return bool(self._spans(text[:MAX_SCRUBBED]))

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Where secrets are, merged: overlapping key windows join into one span that
        covers the whole run of the key. Windows are looked up in a set, run by run,
        so the cost does not grow with the number or length of keys."""
        found = []
        for match in self.pattern.finditer(text):
            start, end = match.span()
            if match.lastgroup == "host":
                while start > 0 and text[start - 1] in _URL_LEFT:
                    start -= 1
                end = _URL_TAIL.match(text, end).end()
            if end > start:
                found.append((start, end))
        if self.ips:
            found += _ip_spans(text, self.ips)
        if self.windows:
            lowered = _lower(text)
            for run in _RUN.finditer(lowered):
                word, offset = run.group(), run.start()
                found += [(offset + i, offset + i + WINDOW) for i in range(len(word) - WINDOW + 1)
                          if word[i:i + WINDOW] in self.windows]
        merged: list[tuple[int, int]] = []
        for start, end in sorted(found):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged


def _ip_spans(text: str, ips: frozenset[ip_forms.Address]) -> list[tuple[int, int]]:
    """Where one of `ips` is written in any spelling, widened to the whole URL like a host."""
    found = []
    for match in _IP_CANDIDATE.finditer(text):
        start, end = match.span()
        candidate = match.group()
        address = ip_forms.parse(candidate)
        if address is None and candidate.rstrip(".:]") != candidate:  # sentence punctuation after it
            candidate = candidate.rstrip(".:]")
            end = start + len(candidate)
            address = ip_forms.parse(candidate.lstrip("["))
        if address in ips:
            while start > 0 and text[start - 1] in _URL_LEFT:
                start -= 1
            found.append((start, _URL_TAIL.match(text, end).end()))
    return found


def _lower(text: str) -> str:
    lowered = text.lower()
    # a few characters lower-case to two (İ): keep positions aligned with the text
    return lowered if len(lowered) == len(text) else "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _decoded(text: str) -> str:
    for _ in range(DECODE_ROUNDS):
        step = _fold(html.unescape(unquote(_ESCAPES.sub(_unescape, text))))
        if step == text:
            break
        text = step
    return text


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1) or match.group(2)
    if not code:
        return match.group(3)
    value = int(code, 16)
    # a lone surrogate would make the text unencodable as UTF-8 (JSON, SQLite)
    return match.group(0) if 0xD800 <= value <= 0xDFFF else chr(value)


def _fold(text: str) -> str:
    """Text as it reads: compatibility forms (full-width letters) folded to plain ones and
    invisible format characters (zero-width spaces, joiners, bidi marks) dropped, so a key
    dressed in them still matches."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(c for c in folded if unicodedata.category(c) != "Cf") if not folded.isascii() else folded


def _encoded_forms(raw: bytes) -> list[str]:
    """How bytes read once encoded inside a longer text: hex, and base-64 (standard and
    URL-safe) at each of the three alignments a preceding text can give them (`user:key`
    in a Basic value, a key inside base-64 JSON). Where the neighbouring bytes change the
    encoding (the first and last 4-character groups) it is cut off."""
    forms = [raw.hex()]
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + raw).decode().rstrip("=")
            forms.append(encoded[4:-4] if offset else encoded[:-4])
    return forms


def _key_parts(key: str) -> list[str]:
    parts = [key.strip(), *(p.strip() for p in key.split(":"))]
    return [p for p in dict.fromkeys(parts) if len(p) >= MIN_SECRET]


def _key_secrets(key: str) -> tuple[list[str], set[str]]:
    """(regex literals for parts no window can find, the windows of all the others)"""
    literals: list[str] = []
    windows: set[str] = set()
    for part in _key_parts(key):
        raw = part.encode()
        for form in (part, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
            form = form.rstrip("=") if form is not part else form
            if len(form) < WINDOW or _RUN.fullmatch(form.lower()) is None:
                literals.append(re.escape(form))
            else:
                windows.update(form.lower()[i:i + WINDOW] for i in range(len(form) - WINDOW + 1))
        for form in _encoded_forms(raw):  # only their windows: a cut form is no literal
            windows.update(form.lower()[i:i + WINDOW] for i in range(len(form) - WINDOW + 1))
    return literals, windows


def _url_secrets(base_url: str) -> tuple[list[str], str]:
    """(regexes for the base URL's host as written in a URL, with the port for a short
    one; the URL's parts that may hold an account or tenant id on their own: user
    info, a long path, the query, as one key-like text)"""
    text = base_url.strip()
    if not text:
        return [], ""
    try:
        parts = urlsplit(text if "://" in text else f"//{text}")
        host, port = parts.hostname, parts.port
    except ValueError:  # not a URL st-ai can use, but it may still be echoed as given
        return ([re.escape(text)] if len(text) >= MIN_SECRET else []), ""
    path = parts.path.rstrip("/")
    private = ":".join(p for p in (parts.username, parts.password, path if len(path) >= WINDOW else "",
                                   parts.query) if p)
    if not host:
        return ([re.escape(text)] if len(text) >= MIN_SECRET else []), private
    host_re = "|".join(re.escape(form) for form in _host_forms(host))
    if ":" in host:  # IPv6: written in brackets in URLs
        host_re = rf"\[?{host_re}\]?"
    if "." in host or ":" in host or len(host) >= MIN_BARE_HOST:
        return [host_re], private
    return ([rf"{host_re}(?::|%3a){port}"] if port is not None else []), private


def _host_forms(host: str) -> list[str]:
    """A host name as written and in its other IDNA spelling (an upstream echoes the
    punycode `xn--` form of a Unicode host it was called on, or the reverse)."""
    forms = [host]
    try:
        forms.append(host.encode("idna").decode("ascii") if not host.isascii() else host.encode().decode("idna"))
    except UnicodeError:
        pass
    return list(dict.fromkeys(f.lower() for f in forms))


@functools.lru_cache(maxsize=512)
def _redactor(secrets: tuple[tuple[str, str], ...]) -> Redactor:
    alternatives = list(CREDENTIAL_SHAPES)
    hosts: list[str] = []
    windows: set[str] = set()
    ips: set[ip_forms.Address] = set()
    for key, base_url in secrets:
        url_hosts, url_private = _url_secrets(base_url)
        hosts += url_hosts
        ip = _url_ip(base_url)
        if ip is not None:
            ips.add(ip)
        for text in (key, url_private):
            literals, key_windows = _key_secrets(text)
            alternatives += literals
            windows |= key_windows
    alternatives = sorted(set(alternatives), key=len, reverse=True)
    if hosts:  # found alone, then widened to the whole URL by _spans
        alternatives.append(f"(?P<host>{'|'.join(sorted(set(hosts), key=len, reverse=True))})")
    pattern = re.compile("|".join(alternatives), re.IGNORECASE)
    return Redactor(pattern, frozenset(windows), frozenset(ips))


def _url_ip(base_url: str) -> ip_forms.Address | None:
    """The base URL's host if it is an IP address, in whatever spelling it was stored."""
    text = base_url.strip()
    try:
        host = urlsplit(text if "://" in text else f"//{text}").hostname
    except ValueError:
        return None
    return ip_forms.parse(host) if host else None


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
