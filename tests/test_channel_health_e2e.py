"""Channel selection and health end to end: a real `st-ai serve` with FakeOpenAI channels
(HTTP servers on 127.0.0.1 that count the requests reaching them), plain chat requests
over REST, and the CLI and the Admin API reading the state as other processes.

Weights share a tier's traffic, priority tiers are respected, failing channels cool
down and come back by themselves, a 429's Retry-After is honoured, a rejected key
disables the channel until `channel test` or the background probe finds it working."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.store import channel_health as health_store
from server.store.db import open_db
from tests.conftest import ROOT, start_gateway, stop_gateway
from tests.fakes.faults import Fault
from tests.test_relay_upstream import HI, fakes, post_chat, unique  # noqa: F401 (fakes: a fixture)

pytestmark = pytest.mark.timeout(180)

ADMIN_KEY = "admin-test-key-health-0123456789abcdef"
CHAT = "/v1/chat/completions"
COOLDOWN_BASE = 8.0  # long enough for the CLI to look while it lasts, on a busy machine


def start(db_path: str, *extra: str):
    open_db(db_path).close()
    return start_gateway(db_path, "--cooldown-failures", "3", "--cooldown-base", str(COOLDOWN_BASE),
                         "--max-attempts", "3", *extra, env={"ST_AI_ADMIN_KEY": ADMIN_KEY})


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    # no probe during these tests: `channel test` is the only way back here
    gateway = start(str(tmp_path_factory.mktemp("health") / "st-ai.db"), "--probe-interval", "3600")
    yield gateway
    stop_gateway(gateway)


def cli(gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", *args, "--db", gateway.db_path], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "ST_AI_LOG_LEVEL": "ERROR"})


def add_channel(gateway, fake, model: str, *options: str, key: str | None = None) -> str:
    name = unique("ch")
    done = cli(gateway, "channel", "add", "--name", name, "--type", "openai", "--base-url", fake.base_url,
               "--key", key or fake.api_key, "--models", model, *options)
    assert done.returncode == 0, done.stderr
    return name


def token_for(gateway, model: str) -> str:
    key = gateway.token(unique("t"), [model])
    gateway.wait_for(lambda: model in gateway._models(key), f"model {model}")
    return key


def chat(gateway, key: str, model: str) -> int:
    status, _ = post_chat(gateway, key, {"model": model, "messages": HI})
    return status


def admin_channel(gateway, name: str) -> dict:
    request = urllib.request.Request(f"{gateway.http_url}/api/v1/channels/{name}",
                                     headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def listed_state(gateway, name: str) -> str:
    """The STATE column `st-ai channel list` prints for `name` (the last column)."""
    done = cli(gateway, "channel", "list")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    start_at = header.index("STATE")
    return next(row[start_at:].strip() for row in rows if row.split()[0] == name)


# -- selection -------------------------------------------------------------------------

def test_weights_3_to_1_share_400_requests_within_5_standard_deviations(gw, fakes):
    model = unique("weighted")
    heavy, light = fakes(), fakes()
    add_channel(gw, heavy, model, "--weight", "3")
    add_channel(gw, light, model, "--weight", "1")
    key = token_for(gw, model)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: chat(gw, key, model), range(400)))
    assert statuses == [200] * 400
    shares = heavy.faults.hits(CHAT), light.faults.hits(CHAT)
    assert sum(shares) == 400  # no request went twice
    assert abs(shares[0] - 300) < 5 * math.sqrt(400 * 0.75 * 0.25), shares


def test_a_higher_priority_tier_takes_everything_while_usable_and_the_lower_one_only_when_not(gw, fakes):
    model = unique("tiers")
    high, also_high, low = fakes(), fakes(), fakes()
    add_channel(gw, high, model, "--priority", "5")
    add_channel(gw, also_high, model, "--priority", "5")
    add_channel(gw, low, model, "--priority", "0")
    key = token_for(gw, model)
    assert [chat(gw, key, model) for _ in range(30)] == [200] * 30
    assert high.faults.hits(CHAT) + also_high.faults.hits(CHAT) == 30 and low.faults.hits(CHAT) == 0

    high.faults.always(CHAT, Fault.error(503))
    also_high.faults.always(CHAT, Fault.error(503))
    assert [chat(gw, key, model) for _ in range(10)] == [200] * 10
    assert low.faults.hits(CHAT) == 10


def test_channel_options_are_stored_listed_and_reset_to_the_gateways_defaults(gw, fakes):
    model = unique("options")
    name = add_channel(gw, fakes(), model, "--weight", "0", "--timeout-first-byte", "20", "--timeout-idle", "5")
    shown = admin_channel(gw, name)
    assert (shown["weight"], shown["timeout_first_byte"], shown["timeout_idle"]) == (0, 20.0, 5.0)
    assert "timeout_connect" not in shown and shown["state"] == "enabled"  # the gateway's default

    done = cli(gw, "channel", "update", name, "--timeout-idle", "default", "--weight", "2")
    assert done.returncode == 0, done.stderr
    shown = admin_channel(gw, name)
    assert (shown["weight"], shown["timeout_first_byte"], shown.get("timeout_idle")) == (2, 20.0, None)
    row = next(line for line in cli(gw, "channel", "list").stdout.splitlines() if line.startswith(name))
    assert "default/20s/default/default" in row

    refused = cli(gw, "channel", "update", name, "--weight", "-1")
    assert refused.returncode != 0 and "--weight" in refused.stderr
    refused = cli(gw, "channel", "update", name, "--timeout-total", "10")  # shorter than its first-byte limit
    assert refused.returncode != 0 and "--timeout-first-byte" in refused.stderr


# -- circuit breaking --------------------------------------------------------------------

def test_three_failures_cool_a_channel_that_comes_back_by_itself_after_one_successful_trial(gw, fakes):
    model = unique("cooling")
    primary, backup = fakes(), fakes()
    name = add_channel(gw, primary, model, "--priority", "1")
    add_channel(gw, backup, model)
    key = token_for(gw, model)
    primary.faults.always(CHAT, Fault.error(503))

    assert [chat(gw, key, model) for _ in range(3)] == [200] * 3
    began = time.time()
    assert primary.faults.hits(CHAT) == 3
    assert [chat(gw, key, model) for _ in range(5)] == [200] * 5
    assert primary.faults.hits(CHAT) == 3  # not hit while it cools
    assert time.time() - began < COOLDOWN_BASE, "the machine was too slow to check the cooldown"

    # the CLI and the Admin API (other readers of the database) see it cooling
    seen: list[str] = []
    gw.wait_for(lambda: seen.append(listed_state(gw, name)) or seen[-1].startswith("cooling until"),
                "channel list to show cooling")
    assert "(3 failures, last HTTP 502 upstream_error)" in seen[-1]
    shown = admin_channel(gw, name)
    assert (shown["state"], shown["failures"]) == ("cooling", 3)

    primary.faults.always(CHAT, None)
    time.sleep(max(0.0, shown["cooling_until"] - time.time()) + 0.2)
    assert chat(gw, key, model) == 200
    assert primary.faults.hits(CHAT) == 4  # the trial
    assert [chat(gw, key, model) for _ in range(5)] == [200] * 5
    assert primary.faults.hits(CHAT) == 9  # back in full service
    gw.wait_for(lambda: listed_state(gw, name) == "enabled", "channel list to show enabled")


def test_a_429_with_retry_after_keeps_the_channel_out_for_that_long(gw, fakes):
    model = unique("limited")
    primary, backup = fakes(), fakes()
    add_channel(gw, primary, model, "--priority", "1")
    add_channel(gw, backup, model)
    key = token_for(gw, model)
    primary.faults.add(CHAT, Fault.error(429, retry_after="4"))

    assert chat(gw, key, model) == 200
    began = time.time()
    while time.time() - began < 3.0:
        assert chat(gw, key, model) == 200
        assert primary.faults.hits(CHAT) == 1
        time.sleep(0.1)
    time.sleep(max(0.0, began + 4.2 - time.time()))
    assert chat(gw, key, model) == 200
    assert primary.faults.hits(CHAT) == 2


# -- rejected keys ---------------------------------------------------------------------

def test_a_rejected_key_disables_the_channel_until_channel_test_finds_it_working(gw, fakes):
    model = unique("revoked")
    primary, backup = fakes(), fakes()
    channel_key = "sk-upstream-rotated-away-0123456789"
    name = add_channel(gw, primary, model, "--priority", "1", key=channel_key)
    add_channel(gw, backup, model)
    key = token_for(gw, model)

    assert chat(gw, key, model) == 200  # answered by the backup
    assert primary.faults.hits(CHAT) == 1
    gw.wait_for(lambda: listed_state(gw, name).startswith("disabled by st-ai:"), "channel list to show the disable")
    assert "rejected the channel's credentials" in listed_state(gw, name)
    shown = admin_channel(gw, name)
    assert (shown["state"], shown["enabled"]) == ("auto_disabled", False)
    assert "rejected" in shown["disabled_reason"] and channel_key not in json.dumps(shown)
    assert [chat(gw, key, model) for _ in range(5)] == [200] * 5
    assert primary.faults.hits(CHAT) == 1

    failed = cli(gw, "channel", "test", name)
    assert failed.returncode != 0 and "failed" in failed.stdout and channel_key not in failed.stdout
    assert listed_state(gw, name).startswith("disabled by st-ai:")

    primary.api_key = channel_key  # the upstream accepts the key again
    passed = cli(gw, "channel", "test", name)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "enabled again" in passed.stdout
    assert listed_state(gw, name) == "enabled"
    hits = primary.faults.hits(CHAT)
    gw.wait_for(lambda: chat(gw, key, model) == 200 and primary.faults.hits(CHAT) > hits,
                "the gateway to route to the channel again")


def test_a_model_whose_only_channel_st_ai_disabled_is_unavailable_not_unknown(gw, fakes):
    model = unique("sole")
    upstream = fakes()
    channel_key = "sk-upstream-sole-0123456789abcdef"
    name = add_channel(gw, upstream, model, key=channel_key)
    key = token_for(gw, model)

    status, body = post_chat(gw, key, {"model": model, "messages": HI})
    assert status == 502 and "credentials" in body["error"]["message"], body
    assert upstream.faults.hits(CHAT) == 1  # a rejected key is not asked again in the same request
    gw.wait_for(lambda: post_chat(gw, key, {"model": model, "messages": HI})[0] == 503,
                "the model to be answered as unavailable")
    status, body = post_chat(gw, key, {"model": model, "messages": HI})
    assert body["error"]["code"] == "no_available_channel", body
    assert upstream.faults.hits(CHAT) == 1

    upstream.api_key = channel_key
    assert cli(gw, "channel", "test", name).returncode == 0
    gw.wait_for(lambda: chat(gw, key, model) == 200, "the model to be served again")


def test_an_operators_disable_stays_after_a_successful_test(gw, fakes):
    model = unique("operator")
    name = add_channel(gw, fakes(), model)
    assert cli(gw, "channel", "disable", name).returncode == 0
    passed = cli(gw, "channel", "test", name)
    assert passed.returncode == 0 and "enabled again" not in passed.stdout
    assert listed_state(gw, name) == "disabled (operator)"


def disabled_by_st_ai(gateway, name: str) -> None:
    """Record in the database what a gateway records when an upstream rejected the
    channel's key (server/core/channel_health.py), as another process would see it."""
    db = open_db(gateway.db_path)
    try:
        channel_id = db.execute("SELECT id FROM channels WHERE name = ?", [name]).fetchone()[0]
        assert health_store.auto_disable(db, channel_id, health_store.rejected_key_reason(
            "The upstream service rejected the channel's credentials.", time.time()))
    finally:
        db.close()


def test_the_admin_apis_test_enables_a_channel_st_ai_disabled_once_it_answers(gw, fakes):
    model = unique("admin-test")
    primary = fakes()
    channel_key = "sk-upstream-admin-test-0123456789"
    name = add_channel(gw, primary, model, key=channel_key)
    key = token_for(gw, model)
    disabled_by_st_ai(gw, name)
    gw.wait_for(lambda: admin_channel(gw, name)["state"] == "auto_disabled", "the disable to show")

    failed = admin_test(gw, name)
    assert (failed["ok"], failed.get("reenabled")) == (False, None)
    assert admin_channel(gw, name)["state"] == "auto_disabled"

    primary.api_key = channel_key
    passed = admin_test(gw, name)
    assert (passed["ok"], passed["reenabled"]) == (True, True)
    assert admin_channel(gw, name)["state"] == "enabled"
    assert chat(gw, key, model) == 200  # routed at once: the server reloaded its channels


def admin_test(gateway, name: str) -> dict:
    request = urllib.request.Request(f"{gateway.http_url}/api/v1/channels/{name}/test", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {ADMIN_KEY}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=40) as response:
        return json.load(response)


def test_the_background_probe_enables_a_channel_st_ai_disabled_once_it_answers(tmp_path, fakes):
    gateway = start(str(tmp_path / "st-ai.db"), "--probe-interval", "1")
    try:
        model = unique("probed")
        primary, other = fakes(), fakes()
        channel_key = "sk-upstream-rotated-away-9876543210"
        name = add_channel(gateway, primary, model, key=channel_key)
        operators = add_channel(gateway, other, model)
        key = token_for(gateway, model)
        disabled_by_st_ai(gateway, name)
        assert cli(gateway, "channel", "disable", operators).returncode == 0
        gateway.wait_for(lambda: admin_channel(gateway, name)["state"] == "auto_disabled", "the disable to show")

        gateway.wait_for(lambda: primary.faults.hits(CHAT) >= 2, "two probes", timeout=10)
        assert admin_channel(gateway, name)["state"] == "auto_disabled"  # still refused: still disabled

        primary.api_key = channel_key
        gateway.wait_for(lambda: admin_channel(gateway, name)["state"] == "enabled", "the probe's recovery",
                         timeout=10)
        audit = cli(gateway, "audit", "--target", name, "--json")
        assert any(e["actor"] == "st-ai probe" and e["summary"].get("reenabled") for e in json.loads(audit.stdout))
        hits = primary.faults.hits(CHAT)
        assert chat(gateway, key, model) == 200 and primary.faults.hits(CHAT) == hits + 1
        assert other.faults.hits(CHAT) == 0  # an operator's disable is never probed
        assert admin_channel(gateway, operators)["state"] == "disabled"
    finally:
        stop_gateway(gateway)
