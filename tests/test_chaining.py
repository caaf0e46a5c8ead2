"""st-ai behind st-ai: an `openai` channel whose upstream is another st-ai. Chat,
streams, images and the whole video flow pass through both."""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.conftest import start_gateway, stop_gateway


def _call(gateway, key: str, method: str, path: str, body: dict | None = None) -> bytes:
    request = urllib.request.Request(f"{gateway.base_url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    fast = ("--video-poll-interval", "0.2")
    env = {"ST_AI_SIMULATOR_VIDEO_SECONDS": "1"}
    inner = start_gateway(str(tmp_path_factory.mktemp("inner") / "st-ai.db"), *fast, env=env)
    outer = start_gateway(str(tmp_path_factory.mktemp("outer") / "st-ai.db"), *fast, env=env)
    try:
        inner.channel("sim", "simulator", ["sim-chat", "sim-image", "sim-video"])
        inner_key = inner.token("outer-gateway")
        outer.channel("inner-st-ai", "openai", ["chat", "image", "video"], base_url=inner.base_url, key=inner_key,
                      model_map={"chat": "sim-chat", "image": "sim-image", "video": "sim-video"})
        yield inner, inner_key, outer, outer.token("client")
    finally:
        stop_gateway(outer)
        stop_gateway(inner)


def test_chat_passes_through_two_gateways(chain):
    _, _, outer, key = chain
    answer = json.loads(_call(outer, key, "POST", "/chat/completions",
                              {"model": "chat", "messages": [{"role": "user", "content": "Through two"}]}))
    assert answer["choices"][0]["message"]["content"] == "Simulated reply to: Through two"
    assert answer["system_fingerprint"] == "st-ai-simulator"


def test_a_stream_passes_through_two_gateways_chunk_by_chunk(chain):
    _, _, outer, key = chain
    raw = _call(outer, key, "POST", "/chat/completions",
                {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "Streamed twice"}]})
    events = [line[6:] for line in raw.decode().split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]
                   if json.loads(e)["choices"])
    assert text == "Simulated reply to: Streamed twice"


def test_an_image_url_from_the_inner_gateway_reaches_the_client(chain):
    _, _, outer, key = chain
    answer = json.loads(_call(outer, key, "POST", "/images/generations",
                              {"model": "image", "prompt": "A bridge", "size": "64x64"}))
    with urllib.request.urlopen(answer["data"][0]["url"], timeout=10) as response:
        assert response.read()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_video_task_runs_through_two_gateways_and_downloads_the_same_bytes(chain):
    inner, inner_key, outer, key = chain
    task = json.loads(_call(outer, key, "POST", "/videos",
                            {"model": "video", "prompt": "A chained cat", "seconds": "4", "size": "1280x720"}))
    assert task["status"] == "queued" and task["id"] == task["task_id"]
    deadline = time.monotonic() + 60
    while True:
        video = json.loads(_call(outer, key, "GET", f"/videos/{task['id']}"))
        if video["status"] in ("completed", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert video["status"] == "completed", video
    content = _call(outer, key, "GET", f"/videos/{task['id']}/content")
    assert content[4:8] == b"ftyp"
    # the inner gateway's own task (the one the outer created with its key) has the same bytes
    inner_tasks = json.loads(_call(inner, inner_key, "GET", "/videos"))["data"]
    assert len(inner_tasks) == 1 and inner_tasks[0]["status"] == "completed"
    assert _call(inner, inner_key, "GET", f"/videos/{inner_tasks[0]['id']}/content") == content
