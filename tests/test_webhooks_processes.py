"""Webhooks with real `st-ai serve` processes: an event survives a SIGKILL between the
task's final state and its delivery, two processes on one database deliver each event
once, `--allow-callback-host` lets a chosen host through, and the CLI and the Admin API
set, clear and rotate a token's webhook. Everything listens on 127.0.0.1 and the only
hosts named are literal 127.0.0.1 addresses, so no name is ever resolved."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from openai import OpenAI

from server.store import channels as channel_store
from server.store.db import open_db
from tests.conftest import ROOT, Gateway, start_gateway, stop_gateway
from tests.fakes.webhook_receiver import WebhookReceiver

MODEL = "sim-video"
ADMIN_KEY = "admin-test-key-webhooks-0123456789abc"
SMALL = {"duration": 1, "width": 160, "height": 96}
sdk = OpenAI(api_key="unused", base_url="http://127.0.0.1:1/v1")  # only its webhook verification is used


@pytest.fixture
def receiver():
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


@pytest.fixture
def started():
    """Every gateway a test starts is stopped at its end, however it ends."""
    gateways: list[Gateway] = []
    yield gateways
    for gw in gateways:
        if gw.proc.poll() is None:
            stop_gateway(gw)


def serve(db: str, started: list, *extra: str, render: str = "0.3") -> Gateway:
    gw = start_gateway(db, "--video-poll-interval", "0.1", "--webhook-retry-base", "0.2", *extra,
                       env={"ST_AI_SIMULATOR_VIDEO_SECONDS": render, "ST_AI_ADMIN_KEY": ADMIN_KEY})
    started.append(gw)
    return gw


def cli(db: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", *args, "--db", db], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "ST_AI_LOG_LEVEL": "WARNING"})


def post(gw: Gateway, path: str, key: str, body: dict, method: str = "POST") -> tuple[int, dict]:
    request = urllib.request.Request(gw.http_url + path, method=method, data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_until(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def outbox(db: str) -> list[dict]:
    conn = open_db(db)
    try:
        return list(conn.query("SELECT * FROM webhook_events"))
    finally:
        conn.close()


def hooked_token(db: str, url: str) -> tuple[str, str]:
    """A token made and given its webhook with the CLI: (key, webhook secret)."""
    made = cli(db, "token", "create", "--name", "hooked")
    assert made.returncode == 0, made.stderr
    updated = cli(db, "token", "update", "hooked", "--webhook-url", url)
    assert updated.returncode == 0, updated.stderr
    return made.stdout.strip().splitlines()[-1], updated.stdout.strip().splitlines()[-1]


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "st-ai.db")
    open_db(path).close()
    return path


# -- durable --------------------------------------------------------------------------------------

def test_an_event_whose_delivery_was_cut_by_sigkill_is_delivered_after_restart(db, started, receiver):
    key, secret = hooked_token(db, receiver.url())
    gw = serve(db, started)
    gw.channel("sim", "simulator", [MODEL])
    receiver.hold_next = True  # the first attempt reaches the receiver and is never answered
    status, video = post(gw, "/v1/videos", key, {"model": MODEL, "prompt": "a kite over dunes", **SMALL})
    assert status == 200, video
    wait_until(lambda: getattr(receiver, "held", None), "the first attempt")
    gw.proc.kill()  # SIGKILL: the task is completed in the database, its event not acknowledged
    gw.proc.wait(10)
    [row] = outbox(db)
    assert row["status"] == "pending" and row["lease_owner"]  # held by the dead process
    receiver.let_go()
    serve(db, started)
    delivered = wait_until(receiver.acknowledged, "the event after the restart")
    time.sleep(1.0)  # and only once
    assert len(receiver.all()) == 1
    event = sdk.webhooks.unwrap(delivered[0].body, delivered[0].headers, secret=secret)
    assert (event.type, event.data.id) == ("video.completed", video["id"])
    assert delivered[0].headers["webhook-id"] == receiver.held.headers["webhook-id"]  # the same event
    assert outbox(db)[0]["status"] == "delivered"


def test_two_processes_on_one_database_deliver_each_event_once(db, started, receiver):
    receiver.delay = 0.2  # deliveries overlap with the other process's claims
    key, secret = hooked_token(db, receiver.url())
    conn = open_db(db)
    channel_store.add(conn, "sim", "simulator", "", "", [MODEL])  # known to both from their start
    conn.close()
    gateways = [serve(db, started), serve(db, started)]
    ids = []
    for n in range(8):
        status, video = post(gateways[n % 2], "/v1/videos", key,
                             {"model": MODEL, "prompt": f"scene {n}", **SMALL})
        assert status == 200, video
        ids.append(video["id"])
    wait_until(lambda: len(receiver.acknowledged()) >= len(ids), "every event", timeout=60)
    time.sleep(1.5)
    received = [sdk.webhooks.unwrap(d.body, d.headers, secret=secret) for d in receiver.all()]
    assert sorted(e.data.id for e in received) == sorted(ids)  # each task's event, once
    assert len({e.id for e in received}) == len(ids)
    assert [row["status"] for row in outbox(db)] == ["delivered"] * len(ids)


# -- callback_url and --allow-callback-host ------------------------------------------------------

def test_a_local_callback_url_is_refused_unless_its_host_is_allowed(db, started, receiver, tmp_path):
    other = WebhookReceiver().start()
    try:
        key, secret = hooked_token(db, receiver.url("/token-hook"))
        strict = serve(db, started)
        strict.channel("sim", "simulator", [MODEL])
        body = {"model": MODEL, "prompt": "a harbour at dawn", "callback_url": other.url("/task-hook"), **SMALL}
        status, answer = post(strict, "/v1/videos", key, body)
        assert status == 400, answer
        assert answer["error"]["param"] == "callback_url" and "loopback" in answer["error"]["message"]
        assert set(answer["error"]) == {"message", "type", "param", "code"}
        stop_gateway(strict)

        allowing = serve(db, started, "--allow-callback-host", "127.0.0.1")
        client = OpenAI(api_key=key, base_url=allowing.base_url)
        video = client.videos.create(model=MODEL, prompt="a harbour at dawn", seconds="4",
                                     extra_body={"callback_url": other.url("/task-hook")})
        wait_until(other.acknowledged, "the task's event at its callback_url")
        time.sleep(0.5)
        [delivery] = other.all()
        assert delivery.path == "/task-hook"
        assert sdk.webhooks.unwrap(delivery.body, delivery.headers, secret=secret).data.id == video.id
        assert receiver.all() == []  # the token's URL was not used for this task
    finally:
        other.stop()


def test_a_grpc_create_with_a_callback_url_gets_its_event_there(db, started, receiver):
    import grpc

    from st_ai.v1 import videos_pb2, videos_pb2_grpc

    other = WebhookReceiver().start()
    try:
        key, secret = hooked_token(db, receiver.url("/token-hook"))
        gw = serve(db, started, "--allow-callback-host", "127.0.0.1")
        gw.channel("sim", "simulator", [MODEL])
        with grpc.insecure_channel(gw.grpc_target) as channel:
            video = videos_pb2_grpc.VideosStub(channel).CreateVideo(
                videos_pb2.CreateVideoRequest(model=MODEL, prompt="a harbour at dawn", seconds="1", size="160x96",
                                              callback_url=other.url("/grpc-hook")),
                metadata=(("authorization", f"Bearer {key}"),), timeout=10)
        wait_until(other.acknowledged, "the task's event at its callback_url")
        [delivery] = other.all()
        assert delivery.path == "/grpc-hook"
        assert sdk.webhooks.unwrap(delivery.body, delivery.headers, secret=secret).data.id == video.id
        assert receiver.all() == []
    finally:
        other.stop()


# -- operators: CLI and Admin API ------------------------------------------------------------------

def test_the_cli_sets_clears_and_rotates_a_tokens_webhook(db):
    assert cli(db, "token", "create", "--name", "ops").returncode == 0
    first = cli(db, "token", "update", "ops", "--webhook-url", "https://hooks.example.com/st-ai?token=abc")
    assert first.returncode == 0, first.stderr
    secret = first.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and len(secret) > 40
    moved = cli(db, "token", "update", "ops", "--webhook-url", "https://hooks.example.com/other")
    assert "whsec_" not in moved.stdout  # the secret is shown once, when it is made
    rotated = cli(db, "token", "update", "ops", "--rotate-webhook-secret").stdout.strip().splitlines()[-1]
    assert rotated.startswith("whsec_") and rotated != secret
    shown = json.loads(cli(db, "token", "show", "ops", "--json").stdout)
    assert (shown["webhook_url"], shown["has_webhook_secret"]) == ("https://hooks.example.com/other", True)
    assert "whsec_" not in json.dumps(shown)
    cleared = cli(db, "token", "update", "ops", "--webhook-url", "none")
    assert cleared.returncode == 0 and "whsec_" not in cleared.stdout
    assert json.loads(cli(db, "token", "show", "ops", "--json").stdout)["webhook_url"] is None
    bad = cli(db, "token", "update", "ops", "--webhook-url", "ftp://hooks.example.com/x?token=abc")
    assert bad.returncode != 0 and "token=abc" not in bad.stderr and "http" in bad.stderr
    conn = open_db(db)
    try:
        summaries = " ".join(r["summary"] for r in conn.query("SELECT summary FROM audit"))
    finally:
        conn.close()
    assert "hooks.example.com" not in summaries and "whsec_" not in summaries


def test_the_admin_api_sets_clears_and_rotates_a_tokens_webhook(db, started):
    gw = serve(db, started)
    assert post(gw, "/api/v1/tokens", ADMIN_KEY, {"name": "api-hooked"})[0] == 200
    status, made = post(gw, "/api/v1/tokens/api-hooked", ADMIN_KEY,
                        {"webhook_url": "https://hooks.example.com/a"}, method="PATCH")
    assert status == 200, made
    assert made["webhook_secret"].startswith("whsec_") and made["has_webhook_secret"] is True
    status, again = post(gw, "/api/v1/tokens/api-hooked", ADMIN_KEY,
                         {"webhook_url": "https://hooks.example.com/b"}, method="PATCH")
    assert status == 200 and "webhook_secret" not in again and again["webhook_url"] == "https://hooks.example.com/b"
    status, rotated = post(gw, "/api/v1/tokens/api-hooked", ADMIN_KEY, {"rotate_webhook_secret": True},
                           method="PATCH")
    assert status == 200 and rotated["webhook_secret"] not in (None, made["webhook_secret"])
    status, cleared = post(gw, "/api/v1/tokens/api-hooked", ADMIN_KEY, {"no_webhook_url": True}, method="PATCH")
    assert status == 200 and "webhook_url" not in cleared and "webhook_secret" not in cleared
    with urllib.request.urlopen(urllib.request.Request(gw.http_url + "/api/v1/tokens/api-hooked",
                                                       headers={"Authorization": f"Bearer {ADMIN_KEY}"}),
                                timeout=20) as answer:
        assert "whsec_" not in answer.read().decode()
    status, refused = post(gw, "/api/v1/tokens/api-hooked", ADMIN_KEY,
                           {"webhook_url": "gopher://x?token=abc"}, method="PATCH")
    assert status == 400 and "token=abc" not in json.dumps(refused)
    status, refused = post(gw, "/api/v1/tokens/api-hooked", ADMIN_KEY,
                           {"webhook_url": "https://x.example.com", "no_webhook_url": True}, method="PATCH")
    assert status == 400, refused
