"""`ApiClient`: the pooled HTTP/1.1 client of the calls that carry a model request (chat,
embeddings, images, a client API passed through), the gateway's hottest path.

Why not aiohttp's ClientSession, which st-ai keeps for everything else (files, video task
polling, webhooks): per call it builds a URL, a request and a response object, header
multidicts, a timer context, a connection lease and a stream reader, about 0.38 M
instructions, more than a bare aiohttp server spends on the whole request it answers
(scripts/bench_instructions.py). What a model call needs is much less: an idle keep-alive
connection from the pool, one write of the request, the answer parsed as it arrives
(server/api_client/connection.py) and the connection back in the pool.

What it does, as aiohttp's client does it for these calls: keep-alive connections per
origin (at most LIMIT_PER_HOST at once; further calls wait for one), idle ones closed after
KEEPALIVE seconds, TLS verified against the system's CAs, bodies gzip- or deflate-decoded,
large request bodies written in slices that wait for the socket, a ClientTimeout's `total`
(the whole call, its body's reading included) and `sock_connect`. What it does not do:
redirects are not followed (an API endpoint that redirects is a misconfigured channel, and
following one would carry its key elsewhere), no proxy, no cookies.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import quote, urlsplit

import aiohttp

from server.api_client.connection import Answer, Connection
from server.api_client.errors import CannotConnect

LIMIT_PER_HOST = 256
KEEPALIVE = 60.0  # seconds an idle connection is kept
SLICE_BYTES = 256 * 1024  # a body larger than this is written in slices, each waiting for the socket
DISCARD_SECONDS = 2.0  # the most an early-left answer's rest is waited for, to keep its connection
_URLS_KEPT = 4096
_PCHARS = "/%:@!$&'()*+,;=-._~"  # what a request target keeps as it is (RFC 3986)
USER_AGENT = "st-ai"


@dataclass(frozen=True)
class _Target:
    origin: tuple[str, str, int]  # scheme, host, port
    head: str  # "{method} " goes before it: "{path} HTTP/1.1\r\nHost: ...\r\n"


@dataclass
class _Pool:
    idle: list[Connection] = field(default_factory=list)
    open: int = 0
    waiters: deque[asyncio.Future[Connection | None]] = field(default_factory=deque)


class ApiClient:
    def __init__(self, limit_per_host: int = LIMIT_PER_HOST, keepalive: float = KEEPALIVE,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._limit = limit_per_host
        self._keepalive = keepalive
        self._ssl = ssl_context
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._targets: dict[str, _Target] = {}
        self._closed = False

    def request(self, method: str, url: str, *, data: bytes | aiohttp.Payload | None = None,
                headers: Mapping[str, str] | None = None,
                timeout: aiohttp.ClientTimeout | None = None) -> "_Call":
        """`async with client.request(...) as answer`: the answer once its status and headers
        have arrived; its connection goes back to the pool (or is closed) when the block ends."""
        return _Call(self, method, url, data, headers, timeout)

    def post(self, url: str, **kwargs) -> "_Call":
        return self.request("POST", url, **kwargs)

    async def close(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            for conn in pool.idle:
                conn.close()
            pool.idle.clear()
            while (waiter := _next_waiter(pool)) is not None:
                waiter.set_result(None)

    # -- the pool --

    def _idle(self, origin: tuple[str, str, int]) -> Connection | None:
        """An idle connection to `origin`, without waiting, if one is there."""
        pool = self._pools.get(origin)
        if pool is None:
            return None
        now = time.monotonic()
        while pool.idle:
            conn = pool.idle.pop()  # the most recently used: the least likely to be closed by now
            if now - conn.idle_since <= self._keepalive and not conn.closed:
                conn.leased = True
                return conn
            conn.close()
            self._drop(conn)
        return None

    async def _acquire(self, target: _Target, connect_within: float | None) -> Connection:
        """A connection once one is free or a new one is open (within the limit per origin)."""
        pool = self._pools.get(target.origin)
        if pool is None:
            pool = self._pools[target.origin] = _Pool()
        while True:
            if self._closed:
                raise CannotConnect("the upstream client is closed")
            if (conn := self._idle(target.origin)) is not None:
                return conn
            if pool.open < self._limit:
                break
            waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            pool.waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and (conn := waiter.result()) is not None:
                    self._release(conn, reuse=True)  # handed over as this caller left: pass it on
                raise
            if handed is not None:
                return handed
        pool.open += 1
        try:
            conn = await self._connect(target, connect_within)
        except BaseException:
            pool.open -= 1
            self._wake(pool)
            raise
        conn.leased = True
        return conn

    async def _connect(self, target: _Target, within: float | None) -> Connection:
        scheme, host, port = target.origin
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            async with asyncio.timeout(within):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop, target.origin, self._lost), host, port, ssl=tls,
                    server_hostname=host if tls is not None else None)
        except TimeoutError:  # an OSError too: said as the timeout it is (504), as aiohttp's is
            raise
        except (OSError, ssl.SSLError) as exc:
            raise CannotConnect(f"cannot connect ({type(exc).__name__})") from None
        return conn

    def _release(self, conn: Connection, reuse: bool, wait_rest: bool = False) -> None:
        """A call is done with `conn`: it goes back to the pool, or to the next caller waiting,
        when its answer was read to the end and it may carry another; else it is closed. An
        answer whose reader left early (a stream stopped at its last event) is read to its
        end first, for at most DISCARD_SECONDS, so its connection is not lost for it
        (`wait_rest`: only when its reader simply stopped, not when it failed or was cancelled)."""
        answer = conn.answer
        if (wait_rest and not self._closed and answer is not None and answer.on_end is None and not answer.complete
                and answer.error is None and not conn.closed):
            timer = asyncio.get_running_loop().call_later(DISCARD_SECONDS, conn.close)
            answer.discard_rest(lambda: (timer.cancel(), self._release(conn, reuse=True)))
            return
        conn.leased = False
        pool = self._pools.get(conn.origin)
        if pool is None or not (reuse and conn.reusable and not self._closed):
            conn.close()
            self._drop(conn)
            return
        conn.answer = None
        if (waiter := _next_waiter(pool)) is not None:
            conn.leased = True
            waiter.set_result(conn)
            return
        conn.idle_since = time.monotonic()
        pool.idle.append(conn)
        oldest = pool.idle[0]
        if conn.idle_since - oldest.idle_since > self._keepalive:  # one expired idle connection a call
            pool.idle.pop(0)
            oldest.close()
            self._drop(oldest)

    def _lost(self, conn: Connection) -> None:
        """A connection closed; one in a call is dropped by that call's release."""
        if conn.leased:
            return
        pool = self._pools.get(conn.origin)
        if pool is not None and conn in pool.idle:
            pool.idle.remove(conn)
        self._drop(conn)

    def _drop(self, conn: Connection) -> None:
        """`conn` no longer counts against its origin's limit (once only)."""
        if conn.counted:
            conn.counted = False
            pool = self._pools.get(conn.origin)
            if pool is not None:
                pool.open -= 1
                self._wake(pool)

    def _wake(self, pool: _Pool) -> None:
        """A slot freed up: the first waiter opens a connection of its own."""
        if (waiter := _next_waiter(pool)) is not None:
            waiter.set_result(None)

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _URLS_KEPT:
                self._targets.clear()
            target = self._targets[url] = _parse(url)
        return target


def _next_waiter(pool: _Pool) -> asyncio.Future[Connection | None] | None:
    """The first caller still waiting for a connection (ones who left are passed over)."""
    while pool.waiters:
        waiter = pool.waiters.popleft()
        if not waiter.done():
            return waiter
    return None


def _parse(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an upstream URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("an upstream URL must not hold credentials")
    host = parts.hostname.encode("idna").decode("ascii")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == default else f"{shown}:{port}"
    path = quote(parts.path or "/", safe=_PCHARS)
    if parts.query:
        path += "?" + quote(parts.query, safe=_PCHARS + "?")
    return _Target((scheme, host, port), f"{path} HTTP/1.1\r\nHost: {authority}\r\n")


def _head(method: str, target: _Target, headers: Mapping[str, str] | None, length: int | None,
          content_type: str | None) -> bytes:
    headers = headers or {}
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if fields.count("\n") != len(headers) or fields.count("\r") != len(headers):  # one of each a header
        raise ValueError("a header name or value that holds a line break cannot be sent")
    lines = [method, " ", target.head, fields]
    given = {name.lower() for name in headers}
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}\r\n")
    if "accept" not in given:
        lines.append("Accept: */*\r\n")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    if length is not None:
        lines.append(f"Content-Length: {length}\r\n")
        if content_type is not None and "content-type" not in given:
            lines.append(f"Content-Type: {content_type}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


class _Call:
    """One call's `async with` block."""
    __slots__ = ("_client", "_method", "_url", "_data", "_headers", "_timeout", "_conn", "_timer")

    def __init__(self, client: ApiClient, method: str, url: str, data: bytes | aiohttp.Payload | None,
                 headers: Mapping[str, str] | None, timeout: aiohttp.ClientTimeout | None) -> None:
        self._client, self._method, self._url, self._data = client, method.upper(), url, data
        self._headers, self._timeout = headers, timeout
        self._conn: Connection | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> Answer:
        if self._method == "HEAD":
            raise ValueError("HEAD is not sent by the upstream API client")  # its answer has no body
        client = self._client
        target = client._target(self._url)
        data = self._data
        content_type = None
        if data is not None and not isinstance(data, (bytes, bytearray)):
            content_type = data.content_type
            data = await data.as_bytes()
        length = len(data) if data is not None else (0 if self._method in ("POST", "PUT", "PATCH") else None)
        head = _head(self._method, target, self._headers, length,
                     content_type or ("application/octet-stream" if data else None))
        total, connect = _seconds(self._timeout)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            conn = client._idle(target.origin)
            if conn is None:  # waits for a free slot, or connects: within the call's total
                async with asyncio.timeout(total):
                    conn = await client._acquire(target, connect)
            self._conn = conn
            answer = conn.start()
            if total is not None:
                self._timer = loop.call_at(started + total, answer._fail, asyncio.TimeoutError())
            if data is None or len(data) <= SLICE_BYTES:
                conn.transport.write(head + data if data else head)  # type: ignore[union-attr]
            else:
                await _send_slices(conn, head, data)
            await answer.head
            return answer
        except BaseException:
            self._end(reuse=False)
            raise

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        # an answer read to its end (an error's body too) leaves its connection for the next
        # call; one left early is read to its end only when its reader simply stopped
        self._end(reuse=True, wait_rest=exc is None)

    def _end(self, reuse: bool, wait_rest: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._release(conn, reuse, wait_rest)


def _seconds(timeout: aiohttp.ClientTimeout | None) -> tuple[float | None, float | None]:
    """A ClientTimeout's total and connect seconds (the connect bounded by the total)."""
    if timeout is None:
        return None, None
    if timeout.sock_read is not None:
        raise ValueError("the upstream API client has no sock_read timeout")
    total, connect = timeout.total, timeout.sock_connect or timeout.connect
    if total is not None and connect is not None:
        connect = min(connect, total)
    return total, connect


async def _send_slices(conn: Connection, head: bytes, data: bytes | bytearray) -> None:
    conn.sending = True
    view = memoryview(data)
    conn.transport.write(head)  # type: ignore[union-attr]
    for start in range(0, len(view), SLICE_BYTES):
        await conn.drain()
        conn.transport.write(view[start:start + SLICE_BYTES])  # type: ignore[union-attr]
    conn.sending = False
