"""Webhooks through st-ai's core: each finished video task is POSTed once to its token's
URL (or the create's callback_url) with the Standard Webhooks headers the official `openai`
SDK verifies; a receiver that fails is retried with doubling delays until it answers 2xx,
then never again; a client's callback_url follows the address rules. The simulator and a
fake Kling make the videos, the receivers are real HTTP servers on 127.0.0.1, names
resolve only through a stub resolver."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest
from openai import OpenAI

from server.admin import audit
from server.admin import tokens as admin_tokens
from server.callback_urls import CallbackRules, shown
from server.errors import GatewayError
from server.gateway import Config, open_core
from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from server.url_guard import UrlGuard
from server.video_tasks import VideoConfig
from server.webhook_sender import WebhookConfig, next_attempt_at
from tests.fakes.kling import SAFETY_FAILURE, FakeKling
from tests.fakes.resolver import StubResolver
from tests.fakes.webhook_receiver import WebhookReceiver

SIM_MODEL = "sim-video"
KLING_MODEL = "kling-v1"
PROMPT = "a lighthouse in a storm"
NAMES = {"hooks.public.test": ["93.184.216.34"], "hooks.private.test": ["10.1.2.3"],
         "hooks.metadata.test": ["169.254.169.254"], "hooks.mixed.test": ["93.184.216.34", "127.0.0.1"]}
sdk = OpenAI(api_key="unused", base_url="http://127.0.0.1:1/v1")  # only its webhook verification is used


@pytest.fixture
def receiver():
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


@pytest.fixture
def kling():
    fake = FakeKling().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def quick_simulator(monkeypatch):
    monkeypatch.setenv("ST_AI_SIMULATOR_VIDEO_SECONDS", "0.2")


def setup_db(tmp_path, kling: FakeKling | None = None, webhook_url: str | None = None) -> tuple[str, str, str | None]:
    """The database with a simulator channel (and Kling's), a token and its webhook: (path, key, secret)."""
    db_path = str(tmp_path / "st-ai.db")
    db = open_db(db_path)
    channel_store.add(db, "sim", "simulator", "", "", [SIM_MODEL])
    if kling is not None:
        channel_store.add(db, "kling-fake", "kling", kling.base_url, kling.key, [KLING_MODEL])
    _, key = token_store.create(db, "hooked")
    secret = None
    if webhook_url is not None:
        _, secret = admin_tokens.change(db, audit.CLI, "hooked", admin_tokens.TokenChanges(webhook_url=webhook_url))
    db.close()
    return db_path, key, secret


@contextlib.asynccontextmanager
async def core_for(tmp_path, db_path: str, **webhooks):
    config = Config(db_path=db_path, assets_dir=str(tmp_path / "assets"),
                    video=VideoConfig(poll_interval=0.1),
                    webhooks=WebhookConfig(**{"retry_base": 0.2, "timeout": 5.0, **webhooks}))
    async with open_core(config, "http://127.0.0.1:1", resolver=StubResolver(NAMES)) as core:
        yield core


async def make(core, key: str, model: str = SIM_MODEL, **fields) -> str:
    token = await core.catalog.authenticate(f"Bearer {key}")
    created = await core.videos.create(token, {"model": model, "prompt": PROMPT, "duration": 1,
                                               "width": 160, "height": 96, **fields})
    return created["id"]


async def eventually(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def unwrap(delivery, secret: str):
    return sdk.webhooks.unwrap(delivery.body, delivery.headers, secret=secret)


def outbox(db_path: str) -> list[dict]:
    db = open_db(db_path)
    try:
        return list(db.query("SELECT * FROM webhook_events ORDER BY created_at"))
    finally:
        db.close()


# -- one event per finished task ------------------------------------------------------------

async def test_a_completed_and_a_failed_task_each_send_one_event_the_openai_sdk_accepts(tmp_path, receiver, kling):
    kling.fail_with = SAFETY_FAILURE
    db_path, key, secret = setup_db(tmp_path, kling, receiver.url("/hook?token=receiver-s3cret"))
    assert secret.startswith("whsec_")
    async with core_for(tmp_path, db_path) as core:
        completed = await make(core, key)
        failed = await make(core, key, KLING_MODEL)
        await eventually(lambda: len(receiver.acknowledged()) == 2, "both events")
        await asyncio.sleep(1.0)  # nothing more comes
    deliveries = receiver.all()
    assert len(deliveries) == 2
    events = {unwrap(d, secret).data.id: unwrap(d, secret) for d in deliveries}
    assert events[completed].type == "video.completed"
    assert events[failed].type == "video.failed"
    for delivery in deliveries:
        event = unwrap(delivery, secret)
        assert delivery.path == "/hook?token=receiver-s3cret"
        assert delivery.headers["webhook-id"] == event.id and event.id.startswith("evt_")
        assert delivery.headers["content-type"] == "application/json"
        assert event.object == "event" and abs(event.created_at - time.time()) < 60
    with pytest.raises(Exception, match="signature"):  # another secret does not verify
        sdk.webhooks.unwrap(deliveries[0].body, deliveries[0].headers,
                            secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
    assert {row["status"] for row in outbox(db_path)} == {"delivered"}


async def test_a_token_without_a_webhook_sends_nothing_and_keeps_no_event(tmp_path, receiver):
    db_path, key, _ = setup_db(tmp_path)
    async with core_for(tmp_path, db_path) as core:
        video_id = await make(core, key)
        token = await core.catalog.authenticate(f"Bearer {key}")
        deadline = time.monotonic() + 20
        while (await core.videos.get(token, video_id))["status"] != "completed":
            assert time.monotonic() < deadline, "the task never completed"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
    assert outbox(db_path) == [] and receiver.all() == []


# -- retries ----------------------------------------------------------------------------------

async def test_a_receiver_failing_twice_gets_the_event_again_each_time_then_never_again(tmp_path, receiver):
    receiver.plan = [500, 503]
    db_path, key, secret = setup_db(tmp_path, webhook_url=receiver.url())
    async with core_for(tmp_path, db_path, retry_base=0.3) as core:
        await make(core, key)
        await eventually(lambda: receiver.acknowledged(), "the acknowledged delivery")
        await asyncio.sleep(2.5)  # several retry periods: an acknowledged event is not sent again
    deliveries = receiver.all()
    assert [d.answered for d in deliveries] == [500, 503, 200]
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1  # one event, sent three times
    assert all(unwrap(d, secret).type == "video.completed" for d in deliveries)  # each signed anew
    first_wait, second_wait = deliveries[1].at - deliveries[0].at, deliveries[2].at - deliveries[1].at
    assert first_wait >= 0.3 * 0.9 and second_wait >= 0.6 * 0.9, (first_wait, second_wait)  # doubling
    [row] = outbox(db_path)
    assert row["status"] == "delivered" and row["attempts"] == 3


async def test_an_event_never_acknowledged_is_given_up_after_the_last_attempt_and_logged_without_secrets(
        tmp_path, receiver, caplog):
    receiver.plan = [500] * 10
    db_path, key, secret = setup_db(tmp_path, webhook_url=receiver.url("/private/path?token=receiver-s3cret"))
    with caplog.at_level(logging.INFO, logger="st_ai.webhooks"):
        async with core_for(tmp_path, db_path, retry_base=0.1, max_attempts=3) as core:
            await make(core, key)
            await eventually(lambda: [r for r in outbox(db_path) if r["status"] == "failed"], "the event to fail")
            await asyncio.sleep(1.0)
    assert len(receiver.all()) == 3
    assert "given up" in caplog.text and "HTTP 500" in caplog.text
    for secret_part in ("receiver-s3cret", "/private/path", secret):
        assert secret_part not in caplog.text


def test_the_retry_delay_doubles_from_the_base_until_the_last_attempt():
    config = WebhookConfig(retry_base=5, max_attempts=4)
    assert [next_attempt_at(100, made, config) for made in (1, 2, 3, 4)] == [105, 110, 120, None]


# -- callback_url ------------------------------------------------------------------------------

async def test_a_callback_url_gets_the_tasks_event_instead_of_the_tokens_url(tmp_path, receiver):
    other = WebhookReceiver().start()
    try:
        db_path, key, secret = setup_db(tmp_path, webhook_url=receiver.url("/token-hook"))
        async with core_for(tmp_path, db_path, allow_callback_hosts=("127.0.0.1",)) as core:
            overridden = await make(core, key, callback_url=other.url("/task-hook"))
            plain = await make(core, key)
            await eventually(lambda: other.acknowledged() and receiver.acknowledged(), "both events")
            await asyncio.sleep(0.5)
        [to_other] = other.all()
        [to_token] = receiver.all()
        assert (to_other.path, unwrap(to_other, secret).data.id) == ("/task-hook", overridden)
        assert (to_token.path, unwrap(to_token, secret).data.id) == ("/token-hook", plain)
    finally:
        other.stop()


@pytest.mark.parametrize("url,words", [
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://[::1]:9/hook", "loopback"),
    ("http://2130706433/hook", "loopback"),
    ("http://10.0.0.8/hook", "private"),
    ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
    ("http://metadata.google.internal/hook", "cloud metadata"),
    ("http://hooks.private.test/hook", "private"),
    ("http://hooks.metadata.test/hook", "cloud metadata"),
    ("http://hooks.mixed.test/hook", "loopback"),
    ("http://nowhere.test/hook", "could not be resolved"),
    ("ftp://hooks.public.test/hook", "http(s) URL"),
    ("not a url", "http(s) URL"),
])
async def test_a_callback_url_to_a_refused_address_is_a_400_before_anything_is_sent(tmp_path, receiver, url, words):
    db_path, key, _ = setup_db(tmp_path, webhook_url=receiver.url())
    async with core_for(tmp_path, db_path) as core:
        token = await core.catalog.authenticate(f"Bearer {key}")
        with pytest.raises(GatewayError) as refused:
            await core.videos.create(token, {"model": SIM_MODEL, "prompt": PROMPT, "callback_url": url})
        assert (refused.value.http_status, refused.value.param) == (400, "callback_url")
        assert words in refused.value.message
        assert (await core.videos.list(token, None, None, None))["data"] == []


async def test_a_callback_url_needs_the_tokens_webhook_secret(tmp_path, receiver):
    db_path, key, _ = setup_db(tmp_path)
    async with core_for(tmp_path, db_path, allow_callback_hosts=("127.0.0.1",)) as core:
        token = await core.catalog.authenticate(f"Bearer {key}")
        with pytest.raises(GatewayError) as refused:
            await core.videos.create(token, {"model": SIM_MODEL, "prompt": PROMPT, "callback_url": receiver.url()})
        assert refused.value.code == "webhook_secret_missing" and refused.value.param == "callback_url"


async def test_callback_rules_pin_a_public_name_and_let_allowed_hosts_through():
    rules = CallbackRules(UrlGuard(StubResolver(NAMES)), allowed_hosts=("hooks.private.test", "127.0.0.1"))
    assert (await rules.check("https://hooks.public.test/h")).address == "93.184.216.34"
    assert (await rules.check("http://hooks.private.test/h")).address is None
    assert (await rules.check("http://127.0.0.1:8/h")).address is None
    with pytest.raises(GatewayError, match="loopback"):
        await rules.check("http://[::1]/h")


def test_logged_urls_show_only_scheme_and_host():
    assert shown("https://hooks.example.com/T0/B1/XYZSECRET?token=abc") == "https://hooks.example.com/…"
    assert shown("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
