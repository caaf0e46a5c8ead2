"""Deleting a video the provider is still generating stops it upstream, where the
provider can (Runway's DELETE /v1/tasks/{id}); the delete itself never waits on it."""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.conftest import start_gateway, stop_gateway
from tests.fakes.runway import FakeRunway, TaskPlan

IMAGE = "https://example.com/first-frame.png"  # never fetched: the fake takes it as given


def _call(gateway, key: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{gateway.base_url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def runway_gateway(tmp_path):
    fake = FakeRunway().start()
    gateway = start_gateway(str(tmp_path / "st-ai.db"), "--video-poll-interval", "0.2")
    try:
        gateway.channel("runway", "runway", ["gen4_turbo"], base_url=fake.base_url, key=fake.api_key)
        yield fake, gateway, gateway.token("deleter")
    finally:
        stop_gateway(gateway)
        fake.stop()


def test_deleting_a_running_video_cancels_the_runway_task(runway_gateway):
    fake, gateway, key = runway_gateway
    fake.plan = TaskPlan(never_finish=True)
    task = _call(gateway, key, "POST", "/videos", {"model": "gen4_turbo", "prompt": "A slow tide",
                                                      "image": IMAGE, "duration": 5})
    deadline = time.monotonic() + 10
    while _call(gateway, key, "GET", f"/videos/{task['id']}")["status"] != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    upstream_id = next(iter(fake.tasks))
    assert _call(gateway, key, "DELETE", f"/videos/{task['id']}") == {
        "id": task["id"], "object": "video.deleted", "deleted": True}
    deletes = [r for r in fake.received if r.method == "DELETE"]
    assert [r.path for r in deletes] == [f"/v1/tasks/{upstream_id}"]
    assert deletes[0].headers["Authorization"] == f"Bearer {fake.api_key}"


def test_deleting_a_finished_video_sends_nothing_upstream(runway_gateway):
    fake, gateway, key = runway_gateway
    fake.plan = TaskPlan(polls=1)
    task = _call(gateway, key, "POST", "/videos", {"model": "gen4_turbo", "prompt": "A quick tide",
                                                      "image": IMAGE, "duration": 5})
    deadline = time.monotonic() + 15
    while _call(gateway, key, "GET", f"/videos/{task['id']}")["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    _call(gateway, key, "DELETE", f"/videos/{task['id']}")
    assert not [r for r in fake.received if r.method == "DELETE"]
