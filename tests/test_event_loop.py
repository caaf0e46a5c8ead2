"""`--loop`: the event loop st-ai runs on. uvloop when asked for, or by default when it is
installed (`auto`); asyncio's own otherwise. On uvloop a gateway answers REST and gRPC
streams as it does on asyncio."""
from __future__ import annotations

import subprocess
import sys

import pytest

from server.event_loop import LoopUnavailable, loop_factory
from tests.conftest import ROOT, start_gateway, stop_gateway
from tests.fakes.openai_upstream import FakeOpenAI, StreamPlan
from tests.test_relay_upstream import HI, SSEStream, auth, chunk, event_json, grpc_request, grpc_stub

pytestmark = pytest.mark.timeout(60)


def test_asyncio_is_asked_for_by_name():
    assert loop_factory("asyncio") is None


def test_without_uvloop_installed_auto_runs_on_asyncio_and_asking_for_uvloop_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an install without the extra has
    assert loop_factory("auto") is None
    with pytest.raises(LoopUnavailable) as refused:
        loop_factory("uvloop")
    assert "pip install 'st-ai[uvloop]'" in str(refused.value)


def test_serve_asking_for_uvloop_without_it_stops_with_one_line_before_creating_anything(tmp_path):
    db = tmp_path / "st-ai.db"
    code = ("import sys; sys.modules['uvloop'] = None; from server.cli import main; "
            f"main(['serve', '--db', {str(db)!r}, '--http-port', '0', '--grpc-port', '0', '--loop', 'uvloop'])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "st-ai: --loop uvloop needs uvloop: pip install 'st-ai[uvloop]'"
    assert not db.exists()


def test_a_gateway_on_uvloop_streams_over_rest_and_grpc(tmp_path):
    pytest.importorskip("uvloop", exc_type=ImportError)  # an install without the extra
    fake = FakeOpenAI("sk-upstream-uvloop").start()
    gateway = start_gateway(str(tmp_path / "st-ai.db"), "--loop", "uvloop")
    try:
        with open(f"/proc/{gateway.proc.pid}/maps") as maps:
            assert "uvloop" in maps.read()  # the loop's extension module is loaded
        gateway.channel("uv", "openai", ["uv-model"], base_url=fake.base_url, key=fake.api_key)
        key = gateway.token("uv")
        chunks = [chunk("uv-model", {"role": "assistant", "content": ""}), chunk("uv-model", {"content": "Hi"}),
                  chunk("uv-model", {}, "stop")]
        fake.stream_plan = StreamPlan(chunks)
        stream = SSEStream(gateway, key, {"model": "uv-model", "messages": HI})
        try:
            events = stream.rest()
        finally:
            stream.close()
        assert events[-1] == b"data: [DONE]\n\n"
        assert [event_json(e) for e in events[:-1]] == chunks

        channel, stub = grpc_stub(gateway)
        with channel:
            got = list(stub.StreamChatCompletion(grpc_request("uv-model"), metadata=auth(key), timeout=10))
        assert [c.choices[0].delta.text for c in got] == ["", "Hi", ""]
        assert got[-1].choices[0].finish_reason == "stop"
    finally:
        stop_gateway(gateway)
        fake.stop()
    assert gateway.proc.returncode == 0
