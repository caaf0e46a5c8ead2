"""The ledger under load when st-ai is stopped: a real `st-ai serve` with a priced model in
front of FakeOpenAI on 127.0.0.1, many concurrent clients (plain and streamed chat,
images), and then SIGKILL — or SIGTERM — in the middle of it.

Every request whose answer a client received in full (plain and images: the whole JSON;
stream: `data: [DONE]`) has its ledger row, found by its `x-request-id`, because its
settlement is committed before its last byte is sent; each token's `used` is the sum of
its ledger. The SIGKILL lands while another connection holds the database's write lock
(as a CLI command or a second st-ai may): settlements then wait, and an answer released
before its settlement committed would be lost. After SIGTERM nothing is left behind: no reservation stays in the table."""
from __future__ import annotations

import http.client
import json
import signal
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from server.billing.prices import PriceChanges
from server.store import prices as price_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.conftest import Gateway, start_gateway
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.timeout(180)

MODEL = "crash-model"
IMAGE_MODEL = "crash-image-model"
CLIENTS_PER_TOKEN = 6
TOKENS = 3
LOAD_SECONDS = 1.5
HI = [{"role": "user", "content": "Hi"}]


@dataclass
class Load:
    """What the clients saw: the request ids answered in full, per token name."""
    answered: dict[str, list[str]] = field(default_factory=dict)
    sent: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # what the others got, for a failure's message
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self, token: str, request_id: str) -> None:
        with self.lock:
            self.answered.setdefault(token, []).append(request_id)

    def failed(self, what: str) -> None:
        with self.lock:
            self.refused[what] = self.refused.get(what, 0) + 1

    def total(self) -> int:
        return sum(len(ids) for ids in self.answered.values())


@pytest.fixture
def fake():
    fake = FakeOpenAI().start()
    fake.delay = 0.005  # requests overlap, so some are in flight whenever st-ai stops
    yield fake
    fake.stop()


def prepared_gateway(tmp_path, fake: FakeOpenAI) -> tuple[Gateway, dict[str, str]]:
    """A gateway with a priced chat model, a priced image model and TOKENS quota-limited
    tokens; returns it and the tokens' keys by name."""
    db_path = str(tmp_path / "st-ai.db")
    db = open_db(db_path)
    try:
        price_store.set_price(db, MODEL, PriceChanges(input=1_500_000, output=6_000_000, per_request=100))
        price_store.set_price(db, IMAGE_MODEL, PriceChanges(per_image={"1024x1024": 40_000}))
        keys = {}
        for i in range(TOKENS):
            _, keys[f"t{i}"] = token_store.create(db, f"t{i}", quota=10_000_000_000)
    finally:
        db.close()
    gateway = start_gateway(db_path)
    gateway.channel("upstream", "openai", [MODEL, IMAGE_MODEL], base_url=fake.base_url, key=fake.api_key)
    return gateway, keys


def one_request(conn: http.client.HTTPConnection, key: str, kind: int, request_id: str) -> str | None:
    """Send one request; None when its answer arrived in full, else what came instead."""
    if kind == 2:
        path, body = "/v1/images/generations", {"model": IMAGE_MODEL, "prompt": "a fox", "size": "1024x1024",
                                                "response_format": "b64_json"}
    else:
        path, body = "/v1/chat/completions", {"model": MODEL, "messages": HI, "stream": kind == 1}
    conn.request("POST", path, body=json.dumps(body), headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json", "x-request-id": request_id})
    response = conn.getresponse()
    raw = response.read()
    if response.status != 200:
        return f"{response.status} {raw[:200]!r}"
    if kind == 1:
        events = [line for line in raw.split(b"\n") if line.startswith(b"data: ")]
        return None if events and events[-1] == b"data: [DONE]" else f"a stream without [DONE] {raw[-200:]!r}"
    json.loads(raw)  # the whole JSON, or this raises
    return None


def client(gateway: Gateway, token: str, key: str, number: int, load: Load, stop: threading.Event) -> None:
    url = urlsplit(gateway.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    i = 0
    try:
        while not stop.is_set():
            request_id = f"{token}-{number}-{i}-{uuid.uuid4().hex[:6]}"
            i += 1
            with load.lock:
                load.sent += 1
            try:
                refused = one_request(conn, key, (number + i) % 3, request_id)
                if refused is None:
                    load.done(token, request_id)
                else:
                    load.failed(refused)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                load.failed(type(exc).__name__)
                conn.close()  # st-ai went away mid-answer: this one was not received in full
                if stop.wait(0.01):
                    return
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    finally:
        conn.close()


def run_load_then(gateway: Gateway, keys: dict[str, str], sig: signal.Signals,
                  lock_for: float = 0.0) -> Load:
    """Clients run for LOAD_SECONDS, then st-ai gets `sig` while they keep sending (after
    another connection has held the write lock for `lock_for` seconds, still holding it);
    the clients stop once st-ai has exited."""
    load, stop = Load(), threading.Event()
    threads = [threading.Thread(target=client, args=(gateway, token, key, n, load, stop), daemon=True)
               for token, key in keys.items() for n in range(CLIENTS_PER_TOKEN)]
    for thread in threads:
        thread.start()
    # the first answers wait for a cold start (the tokenizer loads on first use): signal once
    # answers are flowing, not after a fixed time that a busy machine may spend starting up
    warmed = time.monotonic() + 30
    while load.total() < 20 and time.monotonic() < warmed:
        time.sleep(0.05)
    time.sleep(LOAD_SECONDS)
    answered_before = load.total()
    locker = sqlite3.connect(gateway.db_path, timeout=10)
    try:
        if lock_for:
            locker.execute("BEGIN IMMEDIATE")
            time.sleep(lock_for)
        gateway.proc.send_signal(sig)
        gateway.proc.wait(30)
    finally:
        locker.rollback()
        locker.close()
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert not any(thread.is_alive() for thread in threads)
    assert answered_before > 50, (f"only {answered_before} answers before the signal, no load to speak of; "
                                  f"the others got {load.refused}")
    return load


def check_every_answer_booked(db_path: str, load: Load) -> None:
    db = open_db(db_path)
    try:
        booked = {row["request_id"] for row in db.query("SELECT request_id FROM ledger")}
        for token, ids in load.answered.items():
            missing = [rid for rid in ids if rid not in booked]
            assert not missing, f"{len(missing)} of {len(ids)} answers of {token} are not in the ledger"
            token_id = token_store.get(db, token).id
            assert quota_store.status(db, token).used == quota_store.ledger_total(db, token_id) > 0
        rows = db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
        assert rows >= load.total()
        assert db.execute("SELECT COUNT(*) FROM ledger GROUP BY request_id HAVING COUNT(*) > 1").fetchall() == []
    finally:
        db.close()


def test_sigkill_under_load_loses_no_request_a_client_saw_answered(tmp_path, fake):
    gateway, keys = prepared_gateway(tmp_path, fake)
    try:
        load = run_load_then(gateway, keys, signal.SIGKILL, lock_for=0.5)
    finally:
        if gateway.proc.poll() is None:
            gateway.proc.kill()
            gateway.proc.wait(10)
    assert gateway.proc.returncode == -signal.SIGKILL
    check_every_answer_booked(gateway.db_path, load)


def test_sigterm_under_load_books_every_answer_and_leaves_no_reservation(tmp_path, fake):
    gateway, keys = prepared_gateway(tmp_path, fake)
    try:
        load = run_load_then(gateway, keys, signal.SIGTERM)
    finally:
        if gateway.proc.poll() is None:
            gateway.proc.kill()
            gateway.proc.wait(10)
    assert gateway.proc.returncode == 0
    check_every_answer_booked(gateway.db_path, load)
    db = open_db(gateway.db_path)
    try:
        assert db["reservations"].count == 0
    finally:
        db.close()
