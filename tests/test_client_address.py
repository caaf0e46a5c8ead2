"""The client's address and a token's `--allow-ip` rule, end to end. Every request comes
from 127.0.0.1, so the address a test wants st-ai to see is made by a trusted proxy's
X-Forwarded-For, or by rules that exclude 127.0.0.1; nothing leaves loopback."""
from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import urlsplit

import grpc
import pytest
from aiohttp.test_utils import make_mocked_request

from rest_bridge import client_address as bridge_address
from server import client_address
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from server.token_rules import parse_allow_ip
from tests.conftest import start_gateway, stop_gateway
from tests.test_relay_upstream import auth, grpc_request
from tests.test_split_processes import _start, _stop
from st_ai.v1 import chat_pb2_grpc, models_pb2, models_pb2_grpc

pytestmark = pytest.mark.timeout(120)

MODEL = "addr-sim"


def token_from(db_path: str, wait, allow_ip: str | None) -> str:
    """A token allowed only from `allow_ip` (None: anywhere), known to the server."""
    name = f"ip-{uuid.uuid4().hex[:8]}"
    db = open_db(db_path)
    try:
        _, key = token_store.create(db, name, allow_ip=parse_allow_ip(allow_ip) if allow_ip else None)
    finally:
        db.close()
    wait(name)
    return key


def get(http_url: str, key: str, path: str = "/v1/models", forwarded: str | None = None) -> tuple[int, dict]:
    url = urlsplit(http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    headers = {"Authorization": f"Bearer {key}"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def chat(http_url: str, key: str, forwarded: str | None = None) -> int:
    url = urlsplit(http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    try:
        conn.request("POST", "/v1/chat/completions", headers=headers,
                     body=json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}))
        return conn.getresponse().status
    finally:
        conn.close()


def assert_ip_refused(status: int, body: dict) -> None:
    assert status == 403
    assert body["error"]["type"] == "permission_error" and body["error"]["code"] == "ip_not_allowed"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """`st-ai serve` behind a reverse proxy on 127.0.0.1 (`--trusted-proxy 127.0.0.1`)."""
    db_path = str(tmp_path_factory.mktemp("proxied") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path, "--trusted-proxy", "127.0.0.1")
    gw.channel("addr-sim", "simulator", [MODEL])
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def direct(gateway):
    """The shared `st-ai serve`, trusting no proxy."""
    gateway.channel(f"addr-sim-{uuid.uuid4().hex[:6]}", "simulator", [MODEL])
    return gateway


def waiter(gw):
    """Wait until the server knows a token just created. An allow-listed one cannot probe
    from 127.0.0.1, so a throwaway token created after it is waited for instead: the
    catalog reloads whole, so once it knows the later one it knows both."""
    def wait(name: str) -> None:
        db = open_db(gw.db_path)
        try:
            _, probe = token_store.create(db, f"probe-{name}")
        finally:
            db.close()
        gw.wait_for(lambda: gw._status("/v1/models", probe) == 200, f"token {name}")
    return wait


# -- the token's rule ------------------------------------------------------------------------

def test_a_token_is_refused_from_outside_its_allow_ip_for_every_request_over_rest(direct):
    key = token_from(direct.db_path, waiter(direct), "10.0.0.0/8,2001:db8::/32")
    assert_ip_refused(*get(direct.http_url, key))  # reads too
    assert_ip_refused(*get(direct.http_url, key, "/v1/videos/video_nope"))
    assert chat(direct.http_url, key) == 403


def test_a_model_request_refused_for_its_address_is_a_ledger_row_and_a_read_is_none(proxied):
    key = token_from(proxied.db_path, waiter(proxied), "10.0.0.0/8")
    assert chat(proxied.http_url, key, forwarded="198.51.100.7") == 403
    assert_ip_refused(*get(proxied.http_url, key, forwarded="198.51.100.7"))  # a read: no row
    db = open_db(proxied.db_path)
    try:
        rows = db.execute("SELECT l.kind, l.model, l.status, l.error_code, l.cost, l.client_address "
                          "FROM ledger l JOIN tokens t ON t.id = l.token_id WHERE t.key_hash = ?",
                          [token_store.hash_key(key)]).fetchall()
    finally:
        db.close()
    assert rows == [("chat", MODEL, 403, "ip_not_allowed", 0, "198.51.100.7")]


def test_a_token_is_refused_from_outside_its_allow_ip_over_grpc(direct):
    key = token_from(direct.db_path, waiter(direct), "10.0.0.0/8")
    with grpc.insecure_channel(direct.grpc_target) as channel:
        for rpc, request in ((chat_pb2_grpc.ChatStub(channel).CreateChatCompletion, grpc_request(MODEL)),
                             (models_pb2_grpc.ModelsStub(channel).ListModels, models_pb2.ListModelsRequest())):
            with pytest.raises(grpc.RpcError) as refused:
                rpc(request, metadata=auth(key), timeout=10)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "IP address" in refused.value.details()


def test_a_token_is_served_from_inside_its_allow_ip(direct):
    key = token_from(direct.db_path, waiter(direct), "192.0.2.0/24,127.0.0.1")
    assert get(direct.http_url, key)[0] == 200
    assert chat(direct.http_url, key) == 200
    with grpc.insecure_channel(direct.grpc_target) as channel:
        chat_pb2_grpc.ChatStub(channel).CreateChatCompletion(grpc_request(MODEL), metadata=auth(key), timeout=10)


# -- who the client is -------------------------------------------------------------------------

def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(direct):
    key = token_from(direct.db_path, waiter(direct), "10.0.0.0/8")
    assert_ip_refused(*get(direct.http_url, key, forwarded="10.1.2.3"))


def test_a_client_cannot_claim_an_address_in_grpc_metadata(direct):
    key = token_from(direct.db_path, waiter(direct), "10.0.0.0/8")
    with grpc.insecure_channel(direct.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            models_pb2_grpc.ModelsStub(channel).ListModels(
                models_pb2.ListModelsRequest(), metadata=(*auth(key), (client_address.METADATA_KEY, "10.1.2.3")),
                timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(proxied):
    inside = token_from(proxied.db_path, waiter(proxied), "10.0.0.0/8")
    assert get(proxied.http_url, inside, forwarded="10.1.2.3")[0] == 200
    assert chat(proxied.http_url, inside, forwarded="10.1.2.3") == 200
    # what a client wrote left of the proxy's hop proves nothing
    assert get(proxied.http_url, inside, forwarded="192.0.2.9, 10.1.2.3")[0] == 200
    assert_ip_refused(*get(proxied.http_url, inside, forwarded="10.1.2.3, 192.0.2.9"))
    # hops appended by trusted proxies are skipped
    assert get(proxied.http_url, inside, forwarded="10.1.2.3, 127.0.0.1")[0] == 200
    # no header: the proxy itself is the client
    assert_ip_refused(*get(proxied.http_url, inside))


def test_a_separate_bridge_names_its_client_only_to_a_grpc_server_that_trusts_it(tmp_path):
    db_path = str(tmp_path / "st-ai.db")
    db = open_db(db_path)
    channel_store.add(db, "sim", "simulator", "", "", [MODEL])
    _, key = token_store.create(db, "ten", allow_ip=parse_allow_ip("10.0.0.0/8"))
    db.close()
    for trusted, expected in (([], 403), (["--trusted-bridge", "127.0.0.1"], 200)):
        grpc_proc, grpc_ready = _start(["grpc", "--db", db_path, "--grpc-port", "0", "--assets-dir",
                                        str(tmp_path / "assets"), *trusted], r"st-ai gRPC ready: (\S+)")
        try:
            bridge_proc, bridge_ready = _start(["bridge", "--grpc-target", grpc_ready.group(1), "--http-port", "0",
                                                "--trusted-proxy", "127.0.0.1"],
                                               r"st-ai REST bridge ready: (http://\S+)/v1")
            try:
                assert get(bridge_ready.group(1), key, forwarded="10.1.2.3")[0] == expected
            finally:
                _stop(bridge_proc)
        finally:
            _stop(grpc_proc)


# -- the parsing, one hop at a time ----------------------------------------------------------

@pytest.mark.parametrize("peer, expected", [
    ("ipv4:10.0.0.1:5000", "10.0.0.1"), ("ipv6:[::1]:5000", "::1"), ("ipv6:[::ffff:10.0.0.1]:5000", "10.0.0.1"),
    ("unix:/tmp/x.sock", None), ("", None), ("ipv4:garbage:1", None)])
def test_grpc_peers_are_read_as_addresses(peer, expected):
    assert client_address.of_call(peer, None, ()) == expected


@pytest.mark.parametrize("peer, claimed, expected", [
    ("unix:/tmp/st-ai/grpc.sock", "10.1.2.3", "10.1.2.3"),   # serve's private socket
    ("ipv4:127.0.0.1:5000", "10.1.2.3", "10.1.2.3"),         # a trusted bridge
    ("ipv4:192.0.2.1:5000", "10.1.2.3", "192.0.2.1"),        # anyone else: their own address
    ("ipv4:127.0.0.1:5000", "not an address", "127.0.0.1")])
def test_a_claimed_address_is_believed_only_from_a_trusted_bridge(peer, claimed, expected):
    assert client_address.of_call(peer, claimed, parse_allow_ip("127.0.0.0/8")) == expected


@pytest.mark.parametrize("forwarded, expected", [
    (None, "127.0.0.1"), ("10.1.2.3", "10.1.2.3"), ("10.1.2.3, 127.0.0.5", "10.1.2.3"),
    ("10.9.9.9, 10.1.2.3", "10.1.2.3"), ("unknown, 127.0.0.5", "127.0.0.5"), ("127.0.0.2", "127.0.0.2"),
    ("2001:db8::1", "2001:db8::1")])
def test_forwarded_for_from_a_trusted_proxy_gives_the_right_most_untrusted_hop(forwarded, expected):
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    request = make_mocked_request("GET", "/v1/models", headers=headers,
                                  transport=_Transport(("127.0.0.1", 40000)))
    assert bridge_address.of_request(request, parse_allow_ip("127.0.0.0/8")) == expected
    assert bridge_address.of_request(request, ()) == "127.0.0.1"  # no trusted proxy: never read


class _Transport:
    """The socket's peer, as aiohttp asks a transport for it."""

    def __init__(self, peer) -> None:
        self._peer = peer

    def get_extra_info(self, name, default=None):
        return self._peer if name == "peername" else default

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize("peer, expected", [
    (("10.0.0.7", 40000), "10.0.0.7"), (("::ffff:10.0.0.7", 40000, 0, 0), "10.0.0.7"),
    (("2001:DB8::1", 40000, 0, 0), "2001:db8::1"), (None, None)])
def test_without_trusted_proxies_the_peer_is_the_client_in_its_usual_form(peer, expected):
    request = make_mocked_request("GET", "/v1/models", headers={"X-Forwarded-For": "10.9.9.9"},
                                  transport=_Transport(peer))
    assert bridge_address.of_request(request, ()) == expected
    assert client_address.of_call("unix:st-ai-in-process", expected, ()) == expected
