"""multipart/form-data bodies (RFC 7578) split into named parts, strictly.

The body is already in memory (bounded by the bridge's body limit), so this is a
plain parse over bytes: every way a body can be malformed is one clear 400
(`invalid_multipart`), never an exception from deep inside a streaming reader.
"""
from __future__ import annotations

import codecs
import warnings
from dataclasses import dataclass

from aiohttp.helpers import parse_mimetype
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from server.errors import GatewayError, invalid_request

MAX_BOUNDARY = 70                 # RFC 2046 5.1.1
MAX_PART_HEADER_BYTES = 16 * 1024  # all header lines of one part together
MAX_PARTS = 256
# Charsets a text part may declare; anything else is refused rather than guessed.
TEXT_CHARSETS = frozenset({"utf-8", "ascii", "iso8859-1", "iso8859-15", "cp1252", "utf-16", "utf-16-le",
                           "utf-16-be"})  # as codecs.lookup() names them
# RFC 7578 4.7: senders must not use other transfer encodings
IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    filename: str | None        # set (maybe empty) when the part is an uploaded file
    content_type: str | None

    @property
    def is_file(self) -> bool:
        return self.filename is not None


def _error(message: str) -> GatewayError:
    return invalid_request(f"The multipart/form-data body is malformed: {message}", code="invalid_multipart")


def boundary_of(content_type: str) -> bytes:
    boundary = parse_mimetype(content_type).parameters.get("boundary", "")
    if not (0 < len(boundary) <= MAX_BOUNDARY) or not boundary.isascii() or not boundary.isprintable():
        raise _error("its Content-Type needs a boundary of 1 to 70 printable ASCII characters.")
    return boundary.encode("ascii")


def parse(body: bytes, content_type: str) -> list[Part]:
    """The parts of `body`, in order. Names are unique: a repeated one is an error."""
    delimiter = b"--" + boundary_of(content_type)
    view = memoryview(body)  # slices without copying the body again
    position = body.find(delimiter)
    if position < 0 or (position > 0 and body[position - 2:position] != b"\r\n"):
        raise _error("no part starts with the boundary its Content-Type names.")
    parts: list[Part] = []
    seen: set[str] = set()
    position += len(delimiter)
    while True:
        if body.startswith(b"--", position):
            if not parts:
                raise _error("it has no parts.")
            return parts
        while body[position:position + 1] in (b" ", b"\t"):  # transport padding
            position += 1
        if not body.startswith(b"\r\n", position):
            raise _error("a boundary line is not followed by a line break (is the body cut short?).")
        position += 2
        head_end = body.find(b"\r\n\r\n", position - 2, position + MAX_PART_HEADER_BYTES + 2)
        if head_end < 0:
            raise _error(f"a part's headers are missing their end or longer than {MAX_PART_HEADER_BYTES} bytes.")
        headers = _headers(bytes(view[position:head_end])) if head_end > position else {}
        start = head_end + 4
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise _error("a part does not end with a boundary (is the body cut short?).")
        part = _part(headers, view[start:end])
        if part.name in seen:
            raise invalid_request(f"The form field '{_shown(part.name)}' is sent more than once.",
                                  param=part.name, code="invalid_multipart")
        seen.add(part.name)
        parts.append(part)
        if len(parts) > MAX_PARTS:
            raise _error(f"it has more than {MAX_PARTS} parts.")
        position = end + 2 + len(delimiter)


def _shown(name: str) -> str:
    return name if len(name) <= 80 else name[:79] + "\u2026"


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    try:  # browsers send field names as raw UTF-8; any other byte maps to a Latin-1 character
        decoded = block.decode("utf-8")
    except UnicodeDecodeError:
        decoded = block.decode("latin-1")
    for line in decoded.split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _error("a part has a header line that is not 'Name: value'.")
        headers[name.lower()] = value.strip(" \t")
    return headers


def _disposition(header: str | None) -> tuple[str, str | None]:
    if header is None:
        raise _error("a part has no Content-Disposition header.")
    with warnings.catch_warnings():  # aiohttp warns about the malformed headers it refuses
        warnings.simplefilter("ignore")
        kind, params = parse_content_disposition(header)
        name = content_disposition_filename(params, "name")
        filename = content_disposition_filename(params, "filename")
    if kind != "form-data":
        raise _error("a part's Content-Disposition is not 'form-data; name=\"...\"'.")
    if not name:
        raise _error("a part has no name.")
    if filename is None and any(key.startswith("filename") for key in params):
        filename = ""  # a file part whose name could not be read is still a file
    return name, filename


def _part(headers: dict[str, str], data: memoryview) -> Part:
    name, filename = _disposition(headers.get("content-disposition"))
    encoding = headers.get("content-transfer-encoding", "binary").lower()
    if encoding not in IDENTITY_ENCODINGS:
        raise _error(f"the part '{_shown(name)}' uses a Content-Transfer-Encoding st-ai does not read.")
    return Part(name, bytes(data), filename, headers.get("content-type") or None)


def codec_name(charset: str) -> str | None:
    """Python's name for a charset st-ai reads; None for others."""
    try:
        name = codecs.lookup(charset).name
    except (LookupError, ValueError):  # ValueError: a NUL or a lone surrogate in the name
        return None
    return name if name in TEXT_CHARSETS else None


def decode(data: bytes, charset: str | None, what: str, param: str | None = None) -> str:
    """`data` decoded by a declared charset (UTF-8 when none); a charset st-ai does not
    read, or bytes that are not in it, are the client's error."""
    codec = codec_name(charset or "utf-8")
    if codec is None:
        raise invalid_request(f"{what} has a charset st-ai does not read; send UTF-8.", param=param,
                              code="unsupported_charset")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        raise invalid_request(f"{what} is not valid {codec}.", param=param, code="invalid_encoding") from None


def text(part: Part) -> str:
    """A text part's value, decoded by the charset its Content-Type declares."""
    charset = parse_mimetype(part.content_type).parameters.get("charset") if part.content_type else None
    return decode(part.data, charset, f"The form field '{_shown(part.name)}'", part.name)
