"""The Admin API's token rate limits and address rules, and its usage query, against a real
`st-ai serve`: limits set, shown, changed and cleared over REST, over gRPC by reflection and
through the CLI, one view everywhere; careless values refused with the CLI's line and
nothing written; a limit set over the API enforced on the next chat; `GET /api/v1/usage`
answering exactly what `st-ai usage --json` prints over the same database."""
from __future__ import annotations

import json
import urllib.parse

import grpc
import pytest

from server.billing.prices import PriceChanges
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway
from tests.fakes.openai_upstream import FakeOpenAI
from tests.reflection_client import Reflected, error_detail
from tests.test_admin_api import ADMIN_KEY, TIMEOUT, audit_events, cli, ok, rest, rpc
from tests.test_quota_relay import HI, priced_model
from tests.test_rate_limits import assert_refused, call
from tests.test_usage_report import at, book, request

pytestmark = pytest.mark.timeout(180)

LIMITS = ("rpm", "tpm", "max_concurrency", "allow_ip")
INT64 = ("rpm", "tpm", "max_concurrency", "expires_at", "created_at")  # gRPC's JSON writes these as strings


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("admin-limits") / "st-ai.db")
    gateway = start_gateway(db_path, env={"ST_AI_ADMIN_KEY": ADMIN_KEY})
    yield gateway
    stop_gateway(gateway)


@pytest.fixture(scope="module")
def reflected(gw):
    with grpc.insecure_channel(gw.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield Reflected(channel)


def plain(view: dict) -> dict:
    """A token view without its absent settings, numbers as numbers: REST leaves absent
    fields out, the CLI's JSON writes them as null, gRPC's JSON writes int64 as text."""
    return {k: int(v) if k in INT64 else v for k, v in view.items() if v is not None}


def cli_view(gw, name: str) -> dict:
    result = cli(gw, "token", "show", name, "--json")
    assert result.returncode == 0, result.stderr
    return plain(json.loads(result.stdout))


def limits(view: dict) -> dict:
    return {key: view.get(key) for key in LIMITS}


def same_everywhere(gw, reflected, name: str) -> dict:
    """The token as REST, gRPC and the CLI show it, after checking the three agree."""
    over_rest = plain(ok(rest(gw, "GET", f"/api/v1/tokens/{name}")))
    assert plain(rpc(reflected, "GetToken", {"name": name})) == over_rest
    assert cli_view(gw, name) == over_rest
    return over_rest


# -- limits set, shown, changed and cleared ----------------------------------------------------

def test_limits_set_shown_changed_and_cleared_over_rest(gw, reflected):
    created = ok(rest(gw, "POST", "/api/v1/tokens", {
        "name": "lim-rest", "rpm": 60, "tpm": 40000, "max_concurrency": 4,
        "allow_ip": ["203.0.113.7", "10.0.0.0/8", "2001:db8::/32"]}))["token"]
    assert limits(created) == {"rpm": 60, "tpm": 40000, "max_concurrency": 4,
                               "allow_ip": ["203.0.113.7/32", "10.0.0.0/8", "2001:db8::/32"]}
    assert limits(same_everywhere(gw, reflected, "lim-rest")) == limits(created)

    changed = ok(rest(gw, "PATCH", "/api/v1/tokens/lim-rest", {"rpm": 5, "allow_ip": ["192.0.2.0/24"]}))
    assert limits(changed) == {"rpm": 5, "tpm": 40000, "max_concurrency": 4, "allow_ip": ["192.0.2.0/24"]}
    assert same_everywhere(gw, reflected, "lim-rest") == plain(changed)

    cleared = ok(rest(gw, "PATCH", "/api/v1/tokens/lim-rest", {"no_rpm": True, "no_tpm": True,
                                                               "no_max_concurrency": True, "any_ip": True}))
    assert limits(cleared) == dict.fromkeys(LIMITS)
    assert same_everywhere(gw, reflected, "lim-rest") == plain(cleared)

    events = audit_events(gw, "lim-rest")
    assert [e["operation"] for e in events] == ["token.update", "token.update", "token.create"]
    assert events[0]["summary"] == {"rpm": None, "tpm": None, "max_concurrency": None, "allow_ip": None}
    assert events[1]["summary"] == {"rpm": 5, "allow_ip": ["192.0.2.0/24"]}
    assert events[2]["summary"]["allow_ip"] == ["203.0.113.7/32", "10.0.0.0/8", "2001:db8::/32"]


def test_limits_set_changed_and_cleared_over_grpc_by_reflection(gw, reflected):
    created = rpc(reflected, "CreateToken", {"name": "lim-grpc", "tpm": "1000", "allow_ip": ["::1"]})["token"]
    assert limits(plain(created)) == {"rpm": None, "tpm": 1000, "max_concurrency": None, "allow_ip": ["::1/128"]}
    changed = rpc(reflected, "UpdateToken", {"name": "lim-grpc", "max_concurrency": "2", "rpm": "30"})
    assert limits(plain(changed)) == {"rpm": 30, "tpm": 1000, "max_concurrency": 2, "allow_ip": ["::1/128"]}
    assert same_everywhere(gw, reflected, "lim-grpc") == plain(changed)
    cleared = rpc(reflected, "UpdateToken", {"name": "lim-grpc", "no_tpm": True, "any_ip": True})
    assert limits(plain(cleared)) == {"rpm": 30, "tpm": None, "max_concurrency": 2, "allow_ip": None}
    assert same_everywhere(gw, reflected, "lim-grpc") == plain(cleared)


def test_limits_set_through_the_cli_show_the_same_over_the_api(gw, reflected):
    made = cli(gw, "token", "create", "--name", "lim-cli", "--rpm", "7", "--max-concurrency", "3",
               "--allow-ip", "198.51.100.0/24")
    assert made.returncode == 0, made.stderr
    shown = same_everywhere(gw, reflected, "lim-cli")
    assert limits(shown) == {"rpm": 7, "tpm": None, "max_concurrency": 3, "allow_ip": ["198.51.100.0/24"]}
    assert cli(gw, "token", "update", "lim-cli", "--rpm", "none", "--tpm", "900").returncode == 0
    assert limits(same_everywhere(gw, reflected, "lim-cli")) == {
        "rpm": None, "tpm": 900, "max_concurrency": 3, "allow_ip": ["198.51.100.0/24"]}


# -- careless values -------------------------------------------------------------------------

# (the API's body, the CLI's flags for the same values, the words of the refusal)
REFUSED = [
    ({"rpm": 0}, ("--rpm", "0"), "is not a whole number from 1 to 1000000000"),
    ({"tpm": -5}, ("--tpm", "-5"), "is not a whole number from 1 to 1000000000"),
    ({"max_concurrency": 10**10}, ("--max-concurrency", str(10**10)), "is not a whole number from 1"),
    ({"allow_ip": ["10.0.0.1/8"]}, ("--allow-ip", "10.0.0.1/8"), "has bits set after its prefix: write 10.0.0.0/8"),
    ({"allow_ip": ["intranet"]}, ("--allow-ip", "intranet"), "is not an IPv4 or IPv6 address or CIDR"),
    ({"allow_ip": ["10.0.0.0/33"]}, ("--allow-ip", "10.0.0.0/33"), "is not an IPv4 or IPv6 address or CIDR"),
    ({"allow_ip": [" "]}, ("--allow-ip", " "), "names no address"),
]


def _api_line(cli_stderr: str, flags: tuple[str, str]) -> str:
    """The CLI's refusal with its flag written as the API's field name."""
    line = cli_stderr.strip().splitlines()[-1].removeprefix("st-ai: ")
    return line.replace(flags[0], flags[0][2:].replace("-", "_"), 1)


@pytest.mark.parametrize("body, flags, words", REFUSED, ids=[str(b) for b, _, _ in REFUSED])
def test_a_careless_limit_is_refused_with_the_cli_line_and_nothing_is_written(gw, body, flags, words):
    name = f"careless-{abs(hash(str(body))) % 10**8}"
    said_by_cli = cli(gw, "token", "create", "--name", name, *flags)
    assert said_by_cli.returncode != 0 and words in said_by_cli.stderr

    refused = rest(gw, "POST", "/api/v1/tokens", {"name": name, **body})
    assert refused.status == 400, refused.body
    assert refused.body["error"]["message"] == _api_line(said_by_cli.stderr, flags)
    assert set(refused.body["error"]) == {"message", "type", "param", "code"}
    assert rest(gw, "GET", f"/api/v1/tokens/{name}").status == 404
    assert audit_events(gw, name) == []

    ok(rest(gw, "POST", "/api/v1/tokens", {"name": name, "rpm": 9, "allow_ip": ["127.0.0.1"]}))
    before, events = ok(rest(gw, "GET", f"/api/v1/tokens/{name}")), audit_events(gw, name)
    refused = rest(gw, "PATCH", f"/api/v1/tokens/{name}", {"quota": "5", **body})
    assert refused.status == 400 and words in refused.body["error"]["message"]
    assert ok(rest(gw, "GET", f"/api/v1/tokens/{name}")) == before  # not even the quota beside it
    assert audit_events(gw, name) == events


def test_wrong_types_and_a_limit_both_set_and_cleared_are_refused(gw, reflected):
    ok(rest(gw, "POST", "/api/v1/tokens", {"name": "lim-types", "rpm": 3}))
    events = audit_events(gw, "lim-types")
    for body, words in (({"rpm": "60"}, "Invalid type for 'rpm'"), ({"rpm": True}, "Invalid type for 'rpm'"),
                        ({"allow_ip": "10.0.0.0/8"}, "Invalid type for 'allow_ip'"),
                        ({"rpm": 5, "no_rpm": True}, "give either rpm or no_rpm, not both"),
                        ({"allow_ip": ["10.0.0.0/8"], "any_ip": True}, "give either allow_ip or any_ip, not both")):
        refused = rest(gw, "PATCH", "/api/v1/tokens/lim-types", body)
        assert refused.status == 400 and words in refused.body["error"]["message"], (body, refused.body)
    with pytest.raises(grpc.RpcError) as caught:
        rpc(reflected, "UpdateToken", {"name": "lim-types", "rpm": "0"})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_detail(reflected, caught.value).http_status == 400
    assert limits(ok(rest(gw, "GET", "/api/v1/tokens/lim-types")))["rpm"] == 3
    assert audit_events(gw, "lim-types") == events


# -- a limit set over the API is enforced -------------------------------------------------------

@pytest.fixture(scope="module")
def upstream():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def test_a_token_given_rpm_1_over_the_admin_api_gets_429_on_its_second_chat(gw, upstream):
    model = priced_model(gw, upstream, PriceChanges(per_request=1000))
    key = ok(rest(gw, "POST", "/api/v1/tokens", {"name": "lim-e2e", "rpm": 1}))["key"]
    gw.wait_for(lambda: gw._status("/v1/models", key) == 200, "the new key to work")
    body = {"model": model, "messages": HI}
    status, headers, _ = call(gw, key, "POST", "/v1/chat/completions", body)
    assert status == 200 and headers["x-ratelimit-limit-requests"] == "1"
    sent = len(upstream.received)
    status, headers, answer = call(gw, key, "POST", "/v1/chat/completions", body)
    assert_refused(status, headers, answer, "requests")
    assert len(upstream.received) == sent

    ok(rest(gw, "PATCH", "/api/v1/tokens/lim-e2e", {"no_rpm": True}))
    status, headers, _ = call(gw, key, "POST", "/v1/chat/completions", body)
    assert status == 200 and "x-ratelimit-limit-requests" not in headers


def test_an_address_rule_set_over_the_admin_api_refuses_other_addresses(gw):
    key = ok(rest(gw, "POST", "/api/v1/tokens", {"name": "lim-ip", "allow_ip": ["192.0.2.0/24"]}))["key"]
    gw.wait_for(lambda: gw._status("/v1/models", key) == 403, "the address rule to apply")
    ok(rest(gw, "PATCH", "/api/v1/tokens/lim-ip", {"allow_ip": ["127.0.0.0/8"]}))
    assert gw._status("/v1/models", key) == 200


# -- the usage query --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def booked(gw):
    """Ledger rows of two tokens (one deleted), two channels and three models over three
    January days, a request refused before a token was known, and one pruned day."""
    db = open_db(gw.db_path)
    try:
        alice, _ = token_store.create(db, "u-alice")
        bob, _ = token_store.create(db, "u-bob")
        east = channel_store.add(db, "u-east", "simulator", "", "", ["u-gpt"], {}, 0)
        west = channel_store.add(db, "u-west", "simulator", "", "", ["u-sora"], {}, 0)
        book(db, [
            request(alice, east, "u-gpt", at(1, 9), prompt_tokens=100, cached_tokens=40, completion_tokens=10,
                    cost=1250),
            request(alice, west, "u-gpt", at(1, 23.99), prompt_tokens=50, completion_tokens=5, cost=125),
            request(alice, east, "u-dalle", at(2, 0), kind="images", images=2, cost=80_000),
            request(bob, west, "u-sora", at(2, 10), kind="video", video_seconds="5.5", cost=1_650_000),
            request(bob, west, "u-sora", at(3, 10), kind="video", video_seconds="0.1", cost=30_000),
            request(bob, east, "u-gpt", at(3, 11), status=400, error_code="invalid_value"),
            request(bob, None, "u-gpt", at(3, 12), status=429, error_code="insufficient_quota"),
        ])
        token_store.delete(db, "u-bob")
    finally:
        db.close()
    assert cli(gw, "usage", "prune", "--before", "2026-01-02").returncode == 0  # day 1 lives in daily totals


# each: the REST query string, the CLI's flags for the same query
QUERIES = [
    ("", ()),
    ("by=token", ("--by", "token")),
    ("by=model", ("--by", "model")),
    ("by=channel", ("--by", "channel")),
    ("by=day", ("--by", "day")),
    ("by=day,token", ("--by", "day,token")),
    ("by=channel&by=model,day", ("--by", "channel", "--by", "model,day")),
    ("by=token&token=u-alice", ("--by", "token", "--token", "u-alice")),
    ("by=day&token=u-bob", ("--by", "day", "--token", "u-bob")),
    ("by=token&model=u-gpt", ("--by", "token", "--model", "u-gpt")),
    ("by=model&channel=u-west", ("--by", "model", "--channel", "u-west")),
    ("by=day&since=2026-01-02", ("--by", "day", "--since", "2026-01-02")),
    ("by=day&until=2026-01-03", ("--by", "day", "--until", "2026-01-03")),
    ("by=token,model&since=2026-01-02T09:00:00%2B00:00&until=2026-01-03T10:30:00Z",
     ("--by", "token,model", "--since", "2026-01-02T09:00:00+00:00", "--until", "2026-01-03T10:30:00Z")),
    ("by=model&model=u-nothing-booked", ("--by", "model", "--model", "u-nothing-booked")),
    ("by=api", ("--by", "api")),
    ("by=api,day&since=2026-01-02", ("--by", "api,day", "--since", "2026-01-02")),
]


def _cli_usage(gw, *flags: str) -> list[dict]:
    result = cli(gw, "usage", *flags, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("query, flags", QUERIES, ids=[q or "total" for q, _ in QUERIES])
def test_usage_over_rest_is_exactly_the_cli_json(gw, booked, query, flags):
    answer = ok(rest(gw, "GET", f"/api/v1/usage?{query}"))
    assert answer["object"] == "list" and answer["currency"] == "USD"
    assert answer["data"] == _cli_usage(gw, *flags)


def test_usage_groups_carry_the_reports_keys_nulls_and_decimal_strings(gw, booked):
    groups = ok(rest(gw, "GET", "/api/v1/usage?by=token,channel&model=u-gpt&until=2026-01-04"))["data"]
    assert groups == _cli_usage(gw, "--by", "token,channel", "--model", "u-gpt", "--until", "2026-01-04")
    refused_early = [g for g in groups if g["channel_id"] is None]
    assert refused_early and refused_early[0]["channel"] is None and refused_early[0]["errors"] == 1
    assert {g["token"] for g in groups} == {"u-alice", "u-bob"}
    assert all(g["token_deleted"] is (g["token"] == "u-bob") for g in groups)
    alice = ok(rest(gw, "GET", "/api/v1/usage?token=u-alice"))["data"]
    assert alice == [{"requests": 3, "errors": 0, "prompt_tokens": 150, "cached_tokens": 40, "cache_write_tokens": 0,
                      "completion_tokens": 15, "images": 2, "video_seconds": "0", "cost": "0.081375"}]


def test_usage_over_grpc_by_reflection_is_the_same_report(gw, booked, reflected):
    answer = rpc(reflected, "GetUsage", {"by": ["token", "day"], "since": "2026-01-01"})
    over_rest = ok(rest(gw, "GET", "/api/v1/usage?by=token&by=day&since=2026-01-01"))
    extra = [json.loads(g.pop("extra_json", "{}")) for g in answer["data"]]  # the report's nulls
    assert [plain_group(g) | e for g, e in zip(answer["data"], extra)] == over_rest["data"]
    assert answer["currency"] == "USD"


def plain_group(group: dict) -> dict:
    counts = ("token_id", "channel_id", "requests", "errors", "prompt_tokens", "cached_tokens",
              "completion_tokens", "images")
    return {k: int(v) if k in counts else v for k, v in group.items()}


@pytest.mark.parametrize("query, words", [
    ("since=2026-02-30", "'2026-02-30' is not a date"),
    ("until=yesterday", "'yesterday' is not a date"),
    ("since=2026-01-05T10:00:00", "has no offset"),
    ("until=1969-12-31", "is out of range"),
    ("by=token,week", "'week' is not a grouping"),
    ("by=token&by=hour", "'hour' is not a grouping"),
    ("since=2026-01-05&until=2026-01-01", "the period is empty"),
    ("token=nobody", "no token is or was named 'nobody'"),
    ("channel=nowhere", "no channel is or was named 'nowhere'"),
    ("since=", "'' is not a date"),
    ("by=", "'' is not a grouping"),
    ("token=", "no token is or was named ''"),
])
def test_a_bad_usage_query_is_a_400_with_the_cli_line(gw, booked, query, words):
    answer = rest(gw, "GET", f"/api/v1/usage?{query}")
    assert answer.status == 400, answer.body
    assert words in answer.body["error"]["message"]
    assert set(answer.body["error"]) == {"message", "type", "param", "code"}
    flags = [part for pair in urllib.parse.parse_qsl(query, keep_blank_values=True) for part in (f"--{pair[0]}", pair[1])]
    said = cli(gw, "usage", *flags)
    assert said.returncode != 0 and answer.body["error"]["message"] in said.stderr


def test_usage_refuses_a_client_token_and_no_key(gw, booked, reflected):
    client_key = gw.token("u-client")
    for key in (client_key, None):
        answer = rest(gw, "GET", "/api/v1/usage", key=key)
        assert answer.status == 401 and answer.body["error"]["code"] == "invalid_api_key"
    with pytest.raises(grpc.RpcError) as caught:
        rpc(reflected, "GetUsage", {}, key=client_key)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_usage_by_api_over_rest_names_each_client_api_pruned_days_included(gw, booked):
    groups = ok(rest(gw, "GET", "/api/v1/usage?by=api,model"))["data"]
    assert [(g["api"], g["model"], g["requests"]) for g in groups if g["model"].startswith("u-")] == [
        ("chat", "u-gpt", 4), ("images", "u-dalle", 1), ("videos", "u-sora", 2)]
