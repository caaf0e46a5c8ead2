"""Large requests cost memory in proportion to their size and the memory is given back.
A loose check of what scripts/bench_memory.py measures and prints: the bounds here are
generous (several times the measured figures), so only a regression of the kind the
issue found (GBs held for good) fails it."""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.store.db import open_db
from tests.conftest import start_gateway, stop_gateway

MODEL = "mem-sim"
BODY_MB = 30
CONCURRENT = 4
# scripts/bench_memory.py measures ~5 MB per MB in flight on this path; 12 is the alarm
MAX_GROWTH_PER_MB = 12
NEAR_BASELINE_MB = 80
# kept without a trim: ~100 MB after 4 x 30 MB; with it: a few MB
GRPC_NEAR_BASELINE_MB = 40
SETTLE_SECONDS = 60


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    db_path = str(tmp_path_factory.mktemp("mem") / "st-ai.db")
    open_db(db_path).close()
    gw = start_gateway(db_path)
    gw.channel("mem-sim", "simulator", [MODEL])
    gw.key = gw.token("mem-client")
    yield gw
    stop_gateway(gw)


def _chat(gateway, body: bytes) -> int:
    request = urllib.request.Request(f"{gateway.base_url}/chat/completions", data=body, headers={
        "Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        json.load(response)
        return response.status


def test_four_concurrent_30_mb_chat_bodies_cost_memory_in_proportion_and_give_it_back(gateway) -> None:
    small = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "warm up"}]}).encode()
    for _ in range(4):
        assert _chat(gateway, small) == 200
    baseline = _rss_mb(gateway.proc.pid)

    words = "memory " * (BODY_MB * 1024 * 1024 // 7)
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": words}]}).encode()
    del words
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mb(gateway.proc.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(CONCURRENT) as pool:
            statuses = list(pool.map(lambda _: _chat(gateway, body), range(CONCURRENT)))
    finally:
        done.set()
        sampler.join(5)
    assert statuses == [200] * CONCURRENT
    growth_per_mb = (peak[0] - baseline) / (BODY_MB * CONCURRENT)
    assert growth_per_mb < MAX_GROWTH_PER_MB, (baseline, peak[0], growth_per_mb)

    deadline = time.monotonic() + SETTLE_SECONDS
    while (after := _rss_mb(gateway.proc.pid)) > baseline + NEAR_BASELINE_MB and time.monotonic() < deadline:
        time.sleep(0.5)
    assert after <= baseline + NEAR_BASELINE_MB, (baseline, peak[0], after)


def test_memory_of_large_grpc_requests_is_given_back_too(gateway) -> None:
    """Straight over gRPC (no REST bridge in the way): the server trims after large requests."""
    import grpc

    from st_ai.v1 import chat_pb2, chat_pb2_grpc

    text = "memory " * (BODY_MB * 1024 * 1024 // 7)
    request = chat_pb2.ChatCompletionRequest(
        model=MODEL, messages=[chat_pb2.ChatMessage(role="user", text=text)])
    del text
    metadata = (("authorization", f"Bearer {gateway.key}"),)
    with grpc.insecure_channel(gateway.grpc_target, options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024)]) as channel:
        stub = chat_pb2_grpc.ChatStub(channel)
        stub.CreateChatCompletion(chat_pb2.ChatCompletionRequest(
            model=MODEL, messages=[chat_pb2.ChatMessage(role="user", text="warm up")]), metadata=metadata, timeout=30)
        time.sleep(2)  # past the trim that follows the previous test's large requests
        baseline = _rss_mb(gateway.proc.pid)
        with ThreadPoolExecutor(CONCURRENT) as pool:
            answers = list(pool.map(lambda _: stub.CreateChatCompletion(request, metadata=metadata, timeout=120),
                                    range(CONCURRENT)))
    assert all(a.choices[0].message.text.startswith("Simulated reply to: memory") for a in answers)
    deadline = time.monotonic() + SETTLE_SECONDS
    while (after := _rss_mb(gateway.proc.pid)) > baseline + GRPC_NEAR_BASELINE_MB and time.monotonic() < deadline:
        time.sleep(0.5)
    assert after <= baseline + GRPC_NEAR_BASELINE_MB, (baseline, after)
