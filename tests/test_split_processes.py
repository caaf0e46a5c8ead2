"""`st-ai grpc` and `st-ai bridge --grpc-target` run as two processes, the bridge
reaching the gRPC server over loopback: REST works through them as through `serve`."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store.db import open_db
from tests.conftest import ROOT


def _start(args: list[str], ready: str) -> tuple[subprocess.Popen, re.Match]:
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "ST_AI_LOG_LEVEL": "WARNING"})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if match := re.search(ready, line):
            return proc, match
    proc.kill()
    raise AssertionError("did not start:\n" + "".join(seen))


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_bridge_and_grpc_server_as_separate_processes(tmp_path):
    db_path = str(tmp_path / "st-ai.db")
    db = open_db(db_path)
    channel_store.add(db, "sim", "simulator", "", "", ["sim-model"])
    _, key = token_store.create(db, "split")
    db.close()
    grpc_proc, grpc_ready = _start(["grpc", "--db", db_path, "--grpc-port", "0",
                                    "--assets-dir", str(tmp_path / "assets")],
                                   r"st-ai gRPC ready: (\S+)")
    try:
        bridge_proc, bridge_ready = _start(
            ["bridge", "--grpc-target", grpc_ready.group(1), "--http-port", "0"],
            r"st-ai REST bridge ready: (http://\S+)/v1")
        try:
            request = urllib.request.Request(
                f"{bridge_ready.group(1)}/v1/chat/completions",
                data=json.dumps({"model": "sim-model", "messages": [{"role": "user", "content": "Split"}]}).encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.load(response)
            assert answer["choices"][0]["message"]["content"] == "Simulated reply to: Split"

            bad = urllib.request.Request(f"{bridge_ready.group(1)}/v1/models",
                                         headers={"Authorization": "Bearer sk-nope"})
            try:
                urllib.request.urlopen(bad, timeout=10)
                raise AssertionError("expected 401")
            except urllib.error.HTTPError as error:
                assert error.code == 401
                assert json.load(error)["error"]["code"] == "invalid_api_key"
        finally:
            _stop(bridge_proc)
    finally:
        _stop(grpc_proc)


def test_bridge_without_a_grpc_server_answers_503(tmp_path):
    bridge_proc, bridge_ready = _start(["bridge", "--grpc-target", "127.0.0.1:1", "--http-port", "0"],
                                       r"st-ai REST bridge ready: (http://\S+)/v1")
    try:
        request = urllib.request.Request(f"{bridge_ready.group(1)}/v1/models",
                                         headers={"Authorization": "Bearer sk-whatever"})
        try:
            urllib.request.urlopen(request, timeout=30)
            raise AssertionError("expected an error")
        except urllib.error.HTTPError as error:
            assert error.code == 503
            body = json.load(error)["error"]
            assert body["type"] == "service_unavailable_error"
    finally:
        _stop(bridge_proc)
