"""The pooled HTTP/1.1 client of model calls (server/api_client), against a raw TCP server on
127.0.0.1 that writes exactly the bytes each scenario needs: keep-alive reuse, chunked,
close-delimited and compressed bodies, interim answers, cut and malformed answers, timeouts,
the limit per origin, an answer left early, large bodies, TLS."""
from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import aiohttp
import pytest

from server.api_client import ApiClient
from server.api_client import client as client_module
from server.api_client.errors import BadAnswer, CannotConnect, ConnectionDropped

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]
JSON_OK = b'{"ok": true}'


@dataclass
class Server:
    handler: Handler
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    url: str = ""
    closed_by_client: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request's head and body; None when the client closed the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed_by_client += 1
            return None
        self.requests.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        self.bodies.append(await reader.readexactly(length))
        return head


@pytest.fixture
async def serve():
    servers: list[asyncio.base_events.Server] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> Server:
        server = Server(handler)
        listening = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=tls)
        servers.append(listening)
        port = listening.sockets[0].getsockname()[1]
        server.url = f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{port}/v1/chat"
        return server

    yield start
    for listening in servers:
        listening.close()


def answer(body: bytes = JSON_OK, status: str = "200 OK", headers: str = "Content-Type: application/json\r\n") -> bytes:
    return f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def answers_each(reader, writer, server: Server) -> None:
    """A keep-alive server: one JSON answer per request, until the client leaves."""
    while await server.read_request(reader) is not None:
        writer.write(answer())
        await writer.drain()


async def call(client: ApiClient, url: str, **kwargs) -> tuple[int, bytes]:
    async with client.post(url, data=b'{"q": 1}', headers={"Content-Type": "application/json"}, **kwargs) as got:
        return got.status, await got.read()


async def test_calls_in_turn_share_one_kept_alive_connection(serve):
    server = await serve(answers_each)
    client = ApiClient()
    for _ in range(3):
        assert await call(client, server.url) == (200, JSON_OK)
    assert server.connections == 1
    head = server.requests[0].decode()
    assert head.startswith("POST /v1/chat HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.url.split(':')[2].split('/')[0]}\r\n" in head
    assert "Content-Length: 8\r\n" in head and "Content-Type: application/json\r\n" in head
    assert server.bodies == [b'{"q": 1}'] * 3
    await client.close()


async def test_a_chunked_body_is_read_as_it_comes_and_whole(serve):
    release = asyncio.Event()

    async def chunked(reader, writer, server):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" b"7\r\ndata: 1\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"7\r\ndata: 2\r\n0\r\n\r\n")
        await writer.drain()
        await server.read_request(reader)

    server = await serve(chunked)
    client = ApiClient()
    async with client.post(server.url, data=b"{}") as got:
        assert (got.status, got.content_type) == (200, "text/event-stream")
        assert await asyncio.wait_for(got.content.readany(), 5) == b"data: 1"
        release.set()
        assert await asyncio.wait_for(got.read(), 5) == b"data: 2"
        assert await got.content.readany() == b""
    await client.close()


async def test_a_body_that_ends_with_the_connection_is_read_to_its_end_and_the_connection_not_reused(serve):
    async def close_delimited(reader, writer, server):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + JSON_OK)
        await writer.drain()

    server = await serve(close_delimited)
    client = ApiClient()
    assert await call(client, server.url) == (200, JSON_OK)
    assert await call(client, server.url) == (200, JSON_OK)
    assert server.connections == 2
    await client.close()


async def test_an_interim_answer_is_passed_over_for_the_real_one(serve):
    async def early_hints(reader, writer, server):
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + answer())
            await writer.drain()

    server = await serve(early_hints)
    client = ApiClient()
    assert await call(client, server.url) == (200, JSON_OK)
    assert await call(client, server.url) == (200, JSON_OK)
    assert server.connections == 1
    await client.close()


@pytest.mark.parametrize("coding, encode", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),  # zlib-wrapped, as the RFC says
    ("deflate", lambda raw: zlib.compress(raw, wbits=-15)),  # raw, as some servers send it
])
async def test_a_compressed_body_comes_out_decoded(serve, coding, encode):
    payload = b'{"text": "' + b"hello " * 2000 + b'"}'

    async def compressed(reader, writer, server):
        while await server.read_request(reader) is not None:
            writer.write(answer(encode(payload), headers=f"Content-Encoding: {coding}\r\n"))
            await writer.drain()

    server = await serve(compressed)
    client = ApiClient()
    assert await call(client, server.url) == (200, payload)
    assert b"Accept-Encoding: gzip, deflate\r\n" in server.requests[0]
    await client.close()


@pytest.mark.parametrize("reply, expected", [
    (answer(b"\x00\x01", headers="Content-Encoding: br\r\n"), BadAnswer),
    (answer(b"not gzip at all", headers="Content-Encoding: gzip\r\n"), BadAnswer),
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", BadAnswer),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"cut\":", ConnectionDropped),
    (b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * 70_000, BadAnswer),  # a head that does not end
    (b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", BadAnswer),
    (b"", ConnectionDropped),
])
async def test_an_answer_that_cannot_be_read_is_a_client_error(serve, reply, expected):
    async def bad(reader, writer, server):
        await server.read_request(reader)
        writer.write(reply)
        await writer.drain()

    server = await serve(bad)
    client = ApiClient()
    with pytest.raises(expected) as raised:
        await asyncio.wait_for(call(client, server.url), 5)
    assert isinstance(raised.value, aiohttp.ClientError)  # what every provider already catches
    server.handler = answers_each
    assert await asyncio.wait_for(call(client, server.url), 5)  # the pool is not left holding a dead connection
    await client.close()


async def test_a_refused_connection_is_a_client_error():
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = ApiClient()
    with pytest.raises(CannotConnect):
        await call(client, f"http://127.0.0.1:{port}/v1")
    await client.close()


async def test_the_total_bounds_the_wait_for_the_answer_and_for_its_body(serve):
    async def silent(reader, writer, server):
        await server.read_request(reader)
        await reader.read()  # holds the answer until the client leaves

    async def stalls_after_head(reader, writer, server):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        await reader.read()

    client = ApiClient()
    for handler in (silent, stalls_after_head):
        server = await serve(handler)
        started = asyncio.get_running_loop().time()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call(client, server.url, timeout=aiohttp.ClientTimeout(total=0.3)), 5)
        assert asyncio.get_running_loop().time() - started < 2
        await asyncio.sleep(0.05)
        assert server.open_now == 0  # the connection was closed, not pooled with an answer in it
    await client.close()


async def test_calls_beyond_the_limit_per_origin_wait_for_a_connection(serve):
    gate = asyncio.Event()

    async def held(reader, writer, server):
        while await server.read_request(reader) is not None:
            await gate.wait()
            writer.write(answer())
            await writer.drain()

    server = await serve(held)
    client = ApiClient(limit_per_host=2)
    calls = [asyncio.create_task(call(client, server.url)) for _ in range(5)]
    await asyncio.sleep(0.2)
    assert server.open_now == 2
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(*calls), 5) == [(200, JSON_OK)] * 5
    assert server.most_open == 2
    await client.close()


async def test_a_cancelled_call_frees_its_slot_and_its_connection_is_not_reused(serve):
    gate = asyncio.Event()

    async def first_held(reader, writer, server):
        while await server.read_request(reader) is not None:
            if len(server.requests) == 1:
                await gate.wait()
            writer.write(answer())
            await writer.drain()

    server = await serve(first_held)
    client = ApiClient(limit_per_host=1)
    stuck = asyncio.create_task(call(client, server.url))
    await asyncio.sleep(0.1)
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    gate.set()
    assert await asyncio.wait_for(call(client, server.url), 5) == (200, JSON_OK)
    assert server.connections == 2
    await client.close()


async def test_an_answer_left_before_its_end_keeps_its_connection_once_the_rest_has_come(serve):
    async def stream(reader, writer, server):
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"e\r\ndata: [DONE]\n\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)  # the stream's end comes a moment after its last event
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    server = await serve(stream)
    client = ApiClient()
    for _ in range(3):
        async with client.post(server.url, data=b"{}") as got:
            assert await got.content.readany() == b"data: [DONE]\n\n"  # and the reader stops here
        await asyncio.sleep(0.1)
    assert server.connections == 1
    await client.close()


async def test_an_answer_left_whose_rest_never_comes_loses_its_connection(serve, monkeypatch):
    monkeypatch.setattr(client_module, "DISCARD_SECONDS", 0.1)

    async def endless(reader, writer, server):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await reader.read()

    server = await serve(endless)
    client = ApiClient(limit_per_host=1)
    async with client.post(server.url, data=b"{}") as got:
        assert await got.content.readany() == b"first"
    await asyncio.sleep(0.3)
    assert server.open_now == 0
    server.handler = answers_each
    assert await asyncio.wait_for(call(client, server.url), 5) == (200, JSON_OK)  # its slot was freed
    await client.close()


async def test_a_large_body_arrives_whole(serve):
    body = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MB: written in slices

    async def slow_reader(reader, writer, server):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        got = bytearray()
        while len(got) < length:
            got += await reader.read(65536)
            await asyncio.sleep(0)
        server.bodies.append(bytes(got))
        writer.write(answer())
        await writer.drain()

    server = await serve(slow_reader)
    client = ApiClient()
    async with client.post(server.url, data=body) as got:
        assert (got.status, await got.read()) == (200, JSON_OK)
    assert server.bodies == [body]
    await client.close()


async def test_a_header_that_would_split_the_request_is_refused_before_anything_is_sent(serve):
    server = await serve(answers_each)
    client = ApiClient()
    with pytest.raises(ValueError):
        async with client.post(server.url, data=b"{}", headers={"Authorization": "Bearer k\r\nX-Evil: 1"}):
            pass
    assert server.connections == 0
    await client.close()


async def test_an_idle_connection_the_upstream_closed_is_not_used_again(serve):
    async def one_answer_then_close(reader, writer, server):
        await server.read_request(reader)
        writer.write(answer())
        await writer.drain()
        await asyncio.sleep(0.05)  # then closes while the client's connection is idle

    server = await serve(one_answer_then_close)
    client = ApiClient()
    assert await call(client, server.url) == (200, JSON_OK)
    await asyncio.sleep(0.2)
    assert await call(client, server.url) == (200, JSON_OK)
    assert server.connections == 2
    await client.close()


async def test_an_idle_connection_past_the_keepalive_is_closed_not_used(serve):
    server = await serve(answers_each)
    client = ApiClient(keepalive=0.05)
    assert await call(client, server.url) == (200, JSON_OK)
    await asyncio.sleep(0.15)
    assert await call(client, server.url) == (200, JSON_OK)
    assert server.connections == 2
    await asyncio.sleep(0.05)
    assert server.closed_by_client == 1
    await client.close()


async def test_headers_are_read_without_regard_to_case(serve):
    async def shouting(reader, writer, server):
        await server.read_request(reader)
        writer.write(answer(status="429 Too Many Requests",
                            headers="CONTENT-TYPE: Application/JSON; charset=utf-8\r\nretry-after: 7\r\n"))
        await writer.drain()

    server = await serve(shouting)
    client = ApiClient()
    async with client.post(server.url, data=b"{}") as got:
        assert (got.status, got.content_type, got.headers["Retry-After"]) == (429, "application/json", "7")
    await client.close()


def _self_signed(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for "localhost" and a client context that trusts only it."""
    x509 = pytest.importorskip("cryptography.x509")
    from datetime import datetime, timedelta, timezone

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_https_is_verified_against_the_trusted_certificates(serve, tmp_path, monkeypatch):
    server_tls, client_tls = _self_signed(tmp_path)
    # "localhost" must reach only 127.0.0.1 here, whatever the host's resolver says
    real_getaddrinfo = asyncio.get_running_loop().getaddrinfo

    async def local_only(host, *args, **kwargs):
        assert host == "localhost"
        return await real_getaddrinfo("127.0.0.1", *args, **kwargs)
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", local_only)

    server = await serve(answers_each, tls=server_tls)
    trusting = ApiClient(ssl_context=client_tls)
    assert await call(trusting, server.url) == (200, JSON_OK)
    assert await call(trusting, server.url) == (200, JSON_OK)
    assert server.connections == 1
    await trusting.close()

    system_cas = ApiClient()  # the default: the system's CAs, which never signed this certificate
    with pytest.raises(CannotConnect):
        await call(system_cas, server.url)
    await system_cas.close()


async def test_an_error_answer_read_to_its_end_keeps_its_connection_though_its_reader_raised(serve):
    async def busy(reader, writer, server):
        while await server.read_request(reader) is not None:
            writer.write(answer(b'{"error": {"message": "slow down"}}', status="429 Too Many Requests",
                                headers="Content-Type: application/json\r\nRetry-After: 1\r\n"))
            await writer.drain()

    server = await serve(busy)
    client = ApiClient()
    for _ in range(3):
        with pytest.raises(RuntimeError):
            async with client.post(server.url, data=b"{}") as got:
                assert got.status == 429 and await got.read()
                raise RuntimeError("what a provider raises for an upstream error")
    assert server.connections == 1
    await client.close()


async def test_a_stream_whose_reader_failed_midway_is_not_read_on(serve):
    async def endless_events(reader, writer, server):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            event = b'data: {"x":1}\n\n'
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.01)

    server = await serve(endless_events)
    client = ApiClient()
    with pytest.raises(RuntimeError):
        async with client.post(server.url, data=b"{}") as got:
            await got.content.readany()
            raise RuntimeError("the relay failed")
    await asyncio.sleep(0.1)
    assert server.open_now == 0  # closed at once, not drained for DISCARD_SECONDS
    await client.close()
