"""Where st-ai may fetch a URL a provider chose: the address rules (many address forms),
the channel's-own-network exception, schemes, and the pinned fetch with its redirects
and limits. Names resolve only through a stub resolver, and every connection the fetch
tests make is to a real local server on 127.0.0.1: a socket factory refuses any other."""
from __future__ import annotations

import asyncio
import ipaddress
import socket

import aiohttp
import pytest
from aiohttp import web

from server.errors import GatewayError
from server.safe_fetch import FetchLimits, SafeFetch
from server.url_guard import Refused, UrlGuard, classify
from tests.fakes.resolver import StubResolver

pytestmark = pytest.mark.timeout(30)

PUBLIC_BASE = "https://api.provider.example"   # resolves (stub) to a public address
LOOPBACK_BASE = "http://127.0.0.1:9"


def guard(names: dict[str, list[str]] | None = None) -> UrlGuard:
    return UrlGuard(StubResolver({"api.provider.example": ["93.184.216.34"], **(names or {})}))


async def refusal(url: str, base: str | None = PUBLIC_BASE, names: dict | None = None) -> Refused:
    with pytest.raises(Refused) as caught:
        await guard(names).check(url, base)
    assert caught.value.code == "unsafe_url" and caught.value.http_status == 502
    assert not caught.value.retryable
    return caught.value


# -- the address rules -------------------------------------------------------------------

REFUSED_HOSTS = {
    "loopback": ["127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1",
                 "017700000001", "127.255.255.254", "[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]",
                 "[::ffff:7f00:1]", "[2002:7f00:1::]", "[::127.0.0.1]", "[64:ff9b::127.0.0.1]"],
    "private": ["10.0.0.1", "10.255.255.255", "012.1.2.3", "167772161", "172.16.0.1", "172.31.255.255",
                "192.168.0.1", "192.168.255.255", "[::ffff:10.0.0.1]", "[::ffff:192.168.1.1]",
                "[2002:c0a8:101::1]", "[64:ff9b::a00:1]"],
    "private (unique local)": ["[fc00::1]", "[fd12:3456::1]"],
    "shared (carrier-grade NAT)": ["100.64.0.1", "100.127.255.254", "[::ffff:100.64.0.1]"],
    "link-local": ["169.254.0.1", "169.254.254.254", "[fe80::1]", "[febf::1]", "[::ffff:169.254.1.1]"],
    "cloud metadata": ["169.254.169.254", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]", "2852039166",
                       "0xa9fea9fe", "0251.0376.0251.0376", "169.254.170.2", "[fd00:ec2::254]", "100.100.100.200",
                       "[64:ff9b::169.254.169.254]", "[2002:a9fe:a9fe::]"],
    "unspecified": ["[::]", "0.0.0.0", "0"],
    "multicast": ["224.0.0.1", "239.255.255.250", "[ff02::1]", "[ff05::1:3]"],
    "reserved": ["240.0.0.1", "255.255.255.255", "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1",
                 "192.0.0.8", "0.1.2.3", "[2001:db8::1]", "[fec0::1]", "[100::1]", "[2001::1]"],
}


@pytest.mark.parametrize("kind,host", [(k, h) for k, hosts in REFUSED_HOSTS.items() for h in hosts])
async def test_non_public_address_is_refused_in_every_spelling(kind, host):
    error = await refusal(f"http://{host}/video.mp4")
    assert f"a {kind} address" in error.message


@pytest.mark.parametrize("host", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]",
                                  "[2a00:1450:4001:80b::200e]", "[::ffff:8.8.8.8]"])
async def test_public_address_is_allowed(host):
    target = await guard().check(f"https://{host}/v.mp4?sig=1", PUBLIC_BASE)
    assert ipaddress.ip_address(target.address) == ipaddress.ip_address(host.strip("[]"))


def test_zone_ids_and_every_block_are_classified():
    assert classify(ipaddress.ip_address("fe80::1%eth0")).kind == "link-local"
    assert classify(ipaddress.ip_address("fd00:ec2::254%2")).kind == "cloud metadata"
    assert classify(ipaddress.ip_address("100.63.255.255")) is None    # just below the CGNAT block
    assert classify(ipaddress.ip_address("172.32.0.1")) is None         # just above 172.16/12


# -- names: what they resolve to is what counts ---------------------------------------------

@pytest.mark.parametrize("addresses,kind", [
    (["10.0.0.7"], "private"), (["169.254.169.254"], "cloud metadata"), (["127.0.0.1"], "loopback"),
    (["::1"], "loopback"), (["fd00:ec2::254"], "cloud metadata"), (["::ffff:192.168.0.10"], "private"),
    (["93.184.216.34", "10.0.0.7"], "private"),  # one bad answer spoils the name
])
async def test_a_name_resolving_to_a_refused_address_is_refused(addresses, kind):
    error = await refusal("https://cdn.example.test/v.mp4", names={"cdn.example.test": addresses})
    assert f"a {kind} address" in error.message


@pytest.mark.parametrize("name", ["metadata.google.internal", "METADATA.google.internal.", "metadata",
                                  "instance-data"])
async def test_metadata_names_are_refused_without_asking_dns(name):
    resolver = StubResolver({name.lower().rstrip("."): ["93.184.216.34"]})
    with pytest.raises(Refused, match="metadata"):
        await UrlGuard(resolver).check(f"http://{name}/computeMetadata/v1/", PUBLIC_BASE)
    assert resolver.asked == []


async def test_a_name_that_does_not_resolve_is_a_transient_error():
    with pytest.raises(GatewayError) as caught:
        await guard().check("https://nowhere.example.test/v.mp4", PUBLIC_BASE)
    assert caught.value.retryable and not isinstance(caught.value, Refused)


async def test_a_public_name_is_allowed_and_pinned_to_its_address():
    target = await guard({"cdn.example.test": ["93.184.216.35"]}).check("https://cdn.example.test/a.mp4",
                                                                          PUBLIC_BASE)
    assert target.address == "93.184.216.35" and target.url.host == "cdn.example.test"


# -- schemes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("url,named", [
    ("ftp://93.184.216.34/v.mp4", "'ftp'"), ("file:///etc/passwd", "'file'"), ("FILE:///etc/passwd", "'file'"),
    ("gopher://93.184.216.34:70/_x", "'gopher'"), ("data:video/mp4;base64,AAAA", "'data'"),
    ("javascript:alert(1)", "'javascript'"), ("sk-live-0123456789abcdef:rest", "other than http(s)"),
    ("//93.184.216.34/v.mp4", "other than http(s)"), ("/relative/v.mp4", "other than http(s)"),
])
async def test_only_http_and_https_are_fetched(url, named):
    error = await refusal(url)
    assert named in error.message and "sk-live" not in error.message


@pytest.mark.parametrize("url", ["http:///v.mp4", "http://", "https://:443/x"])
async def test_a_url_without_a_host_is_refused(url):
    await refusal(url)


# -- the channel's own network ------------------------------------------------------------------

@pytest.mark.parametrize("base,url", [
    (LOOPBACK_BASE, "http://127.0.0.1:8000/v.mp4"), (LOOPBACK_BASE, "http://127.0.0.2/v.mp4"),
    (LOOPBACK_BASE, "http://[::1]:8000/v.mp4"), (LOOPBACK_BASE, "http://cdn.local.test/v.mp4"),
    ("http://[::1]:9", "http://127.0.0.1/v.mp4"), ("http://10.1.2.3:8080/v1", "http://10.200.0.9/v.mp4"),
    ("http://kling.lan:8080", "http://192.168.7.7/v.mp4"), ("http://[fd12::5]", "http://[fd99::7]/v.mp4"),
])
async def test_a_url_on_the_channels_own_network_is_allowed(base, url):
    names = {"cdn.local.test": ["127.0.0.1"], "kling.lan": ["192.168.5.5"]}
    await guard(names).check(url, base)


@pytest.mark.parametrize("base,url", [
    (LOOPBACK_BASE, "http://10.0.0.1/v.mp4"), (LOOPBACK_BASE, "http://169.254.169.254/latest/meta-data/"),
    (LOOPBACK_BASE, "http://[fd00:ec2::254]/"), ("http://10.1.2.3:8080", "http://127.0.0.1/v.mp4"),
    ("http://10.1.2.3:8080", "http://192.168.1.1/v.mp4"), ("http://10.1.2.3:8080", "http://172.16.0.1/v.mp4"),
    ("http://169.254.10.10", "http://169.254.169.254/"), ("http://100.100.1.1", "http://100.100.100.200/"),
    (None, "http://127.0.0.1/v.mp4"), ("", "http://10.0.0.1/"), ("not a url", "http://127.0.0.1/"),
    ("http://unresolvable.test", "http://127.0.0.1/"),
])
async def test_other_networks_and_metadata_stay_refused_for_a_channel_on_a_private_network(base, url):
    await refusal(url, base)


# -- the pinned fetch, against a real server on 127.0.0.1 -------------------------------------------

def loopback_only(addr_info) -> socket.socket:
    """The tests' safety net: a connection anywhere but 127.0.0.1 fails before it starts."""
    family, type_, proto, _, address = addr_info
    if address[0] != "127.0.0.1":
        raise OSError(f"test safety net: refused to connect to {address[0]}")
    return socket.socket(family, type_, proto)


class Origin:
    """A small file server on 127.0.0.1 that records what it was asked."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []   # (path, Host header)
        self.redirects: dict[str, str] = {}
        self.body = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000
        self.stall = False
        self._unstall = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> "Origin":
        app = web.Application()
        app.router.add_get("/{name}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._unstall.set()
        await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, request.headers.get("Host", "")))
        if request.path in self.redirects:
            raise web.HTTPFound(self.redirects[request.path])
        response = web.StreamResponse(headers={"Content-Length": str(len(self.body))})
        await response.prepare(request)
        if self.stall:
            await response.write(self.body[:10])
            await asyncio.wait_for(self._unstall.wait(), 10)
        await response.write(self.body)
        return response


@pytest.fixture
async def origin():
    server = await Origin().start()
    yield server
    await server.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(socket_factory=loopback_only)) as session:
        yield session


def fetcher(http, names: dict, **limits) -> tuple[SafeFetch, StubResolver]:
    resolver = StubResolver(names)
    return SafeFetch(http, UrlGuard(resolver), FetchLimits(**limits)), resolver


async def test_fetch_connects_to_the_checked_address_and_names_the_host(origin, http):
    files, resolver = fetcher(http, {"cdn.local.test": ["127.0.0.1"]})
    async with await files.get(f"http://cdn.local.test:{origin.port}/v.mp4", LOOPBACK_BASE) as response:
        assert response.status == 200 and await response.read() == origin.body
    assert origin.seen == [("/v.mp4", f"cdn.local.test:{origin.port}")]


class RebindingResolver(StubResolver):
    """An attacker's DNS: the first answer is an allowed address, every later one is not."""

    async def resolve(self, host, port=0, family=socket.AF_INET):
        answer = await super().resolve(host, port, family)
        self.names[host] = ["10.0.0.7"]
        return answer


async def test_dns_rebinding_cannot_move_the_connection(origin, http):
    """The address that was checked is the one connected to: the name is not looked up
    again to connect, so the second (private) answer is never used."""
    resolver = RebindingResolver({"cdn.local.test": ["127.0.0.1"]})
    files = SafeFetch(http, UrlGuard(resolver))
    async with await files.get(f"http://cdn.local.test:{origin.port}/v.mp4", LOOPBACK_BASE) as response:
        assert response.status == 200 and await response.read() == origin.body
    assert resolver.asked == ["cdn.local.test"]
    with pytest.raises(Refused, match="private"):   # the next fetch sees the new answer, and refuses it
        await files.get(f"http://cdn.local.test:{origin.port}/v.mp4", LOOPBACK_BASE)
    assert len(origin.seen) == 1


@pytest.mark.parametrize("location,kind", [
    ("http://10.0.0.7/v.mp4", "private"), ("http://internal.test/v.mp4", "cloud metadata"),
    ("http://[::ffff:169.254.169.254]/latest/", "cloud metadata"), ("ftp://93.184.216.34/v.mp4", "'ftp'"),
    ("file:///etc/passwd", "'file'"), ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
])
async def test_a_redirect_to_a_refused_place_is_refused_before_it_is_followed(origin, http, location, kind):
    files, resolver = fetcher(http, {"internal.test": ["169.254.169.254"]})
    origin.redirects["/v.mp4"] = location
    with pytest.raises(Refused, match=kind):
        await files.get(f"http://127.0.0.1:{origin.port}/v.mp4", LOOPBACK_BASE)
    assert [path for path, _ in origin.seen] == ["/v.mp4"]


async def test_redirects_on_the_allowed_network_are_followed_relative_and_absolute(origin, http):
    files, _ = fetcher(http, {"cdn.local.test": ["127.0.0.1"]})
    origin.redirects["/a"] = "/b"
    origin.redirects["/b"] = f"http://cdn.local.test:{origin.port}/final.mp4"
    async with await files.get(f"http://127.0.0.1:{origin.port}/a", LOOPBACK_BASE) as response:
        assert await response.read() == origin.body
    assert [path for path, _ in origin.seen] == ["/a", "/b", "/final.mp4"]


async def test_a_redirect_loop_is_cut_after_the_limit(origin, http):
    files, _ = fetcher(http, {}, max_redirects=3)
    origin.redirects["/loop"] = "/loop"
    with pytest.raises(Refused, match="more than 3 times"):
        await files.get(f"http://127.0.0.1:{origin.port}/loop", LOOPBACK_BASE)
    assert len(origin.seen) == 4


async def test_a_file_announced_larger_than_the_cap_is_refused(origin, http):
    files, _ = fetcher(http, {}, max_bytes=100)
    with pytest.raises(Refused) as caught:
        await files.get(f"http://127.0.0.1:{origin.port}/v.mp4", LOOPBACK_BASE)
    assert caught.value.code == "file_too_large"


async def test_a_stalled_download_times_out_between_reads(origin, http):
    files, _ = fetcher(http, {}, read=0.3)
    origin.stall = True
    started = asyncio.get_running_loop().time()
    with pytest.raises(asyncio.TimeoutError):
        async with await files.get(f"http://127.0.0.1:{origin.port}/v.mp4", LOOPBACK_BASE) as response:
            await response.read()
    assert asyncio.get_running_loop().time() - started < 3


async def test_a_slow_download_is_cut_at_the_total_time(origin, http):
    files, _ = fetcher(http, {}, read=5, total=0.5)
    origin.stall = True
    started = asyncio.get_running_loop().time()
    with pytest.raises(asyncio.TimeoutError):
        async with await files.get(f"http://127.0.0.1:{origin.port}/v.mp4", LOOPBACK_BASE) as response:
            await response.read()
    assert asyncio.get_running_loop().time() - started < 3
