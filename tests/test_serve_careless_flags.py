"""`st-ai serve` as a careless operator runs it: on an IPv6 address (the URLs it prints
must be usable), stopped by a closed terminal (SIGHUP, not only Ctrl-C or SIGTERM), and
with a video poll interval that would flood a provider."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import READY, ROOT
from tests.test_cli import run

pytestmark = pytest.mark.timeout(60)


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str, Path]:
    """`st-ai serve` with its temp directory inside tmp_path; returns (process, ready line, temp dir)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--db", str(tmp_path / "st-ai.db"), "--http-port", "0",
         "--grpc-port", "0", "--assets-dir", str(tmp_path / "assets"), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TMPDIR": str(temp), "ST_AI_LOG_LEVEL": "WARNING"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if READY.search(line):
            return proc, line, temp
    proc.kill()
    raise AssertionError("st-ai serve did not start")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_the_ready_line_of_an_ipv6_listener_is_a_url_that_works(tmp_path):
    proc, line, _ = _start(tmp_path, "--host", "::1")
    try:
        url = READY.search(line).group(1)
        assert url.startswith("http://[::1]:"), line
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_closed_terminal_stops_serve_cleanly_and_removes_its_private_socket_folder(tmp_path):
    proc, _, temp = _start(tmp_path, "--host", "127.0.0.1")
    assert [p.name for p in temp.iterdir() if p.name.startswith("st-ai-")], "no private socket folder"
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(15) == 0
    assert not list(temp.iterdir())


@pytest.mark.parametrize("interval", ["0.001", "1e-9", "0.05"])
def test_a_poll_interval_that_would_flood_the_provider_is_refused(tmp_path, interval):
    result = run("serve", "--video-poll-interval", interval, db=str(tmp_path / "st-ai.db"))
    assert result.code == 2 and "--video-poll-interval" in result.err and "Traceback" not in result.err
    assert not (tmp_path / "st-ai.db").exists()
